"""Comparing passages as a reader does: on letters and digits only (no dependencies, so the
workspace and the evaluation share it without loading the knowledge base)."""

from __future__ import annotations


def letters_and_digits(text: str) -> str:
    """The text case-folded with everything but letters and digits dropped (any script)."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())
