"""Triggers of the CometAPI Veo provider."""
