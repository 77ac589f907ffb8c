"""Operators of the CometAPI Veo provider."""
