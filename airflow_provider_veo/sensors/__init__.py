"""Sensors of the CometAPI Veo provider."""
