"""Hooks of the CometAPI Veo provider."""
