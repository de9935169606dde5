"""Uploaded corpora."""
