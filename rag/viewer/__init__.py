"""Viewing a cited passage in its document."""
