"""The claim check in the chat: unsupported sentences underlined, the reason as a tooltip.

The answer's Markdown passes `safe_markdown` (no HTML of the model's reaches the page); the
sentences to mark are bracketed first with two private-use characters that the answer itself
cannot hold (any it holds become spaces), and only after escaping do those become our own
<span> tags, whose only attribute values (the reasons) are escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from rag.events import Claim

OPEN, CLOSE = "\ue000", "\ue001"


def bracket(text: str, claims: Sequence[Claim]) -> str:
    """The text with each unsupported claim between OPEN and CLOSE (offsets kept)."""
    text = text.replace(OPEN, " ").replace(CLOSE, " ")
    marks = sorted((c for c in claims if not c.supported and 0 <= c.start < c.end <= len(text)),
                   key=lambda c: c.start)
    out, at = [], 0
    for claim in marks:
        if claim.start < at:
            continue  # overlapping spans: the first one wins
        out += [text[at:claim.start], OPEN, text[claim.start:claim.end], CLOSE]
        at = claim.end
    out.append(text[at:])
    return "".join(out)


def tooltip(claim: Claim) -> str:
    """What the underline's tooltip says."""
    if claim.reason == "no citation":
        return "Not checked against a source: this sentence cites none."
    return f"Not supported by its sources: {claim.reason}."


def unbracket(markdown: str, claims: Sequence[Claim]) -> str:
    """Escaped Markdown with OPEN/CLOSE turned into underlined spans with their reasons."""
    reasons = iter([tooltip(c) for c in sorted(claims, key=lambda c: c.start)
                    if not c.supported])
    out: list[str] = []
    for i, piece in enumerate(markdown.split(OPEN)):
        if i:
            reason = html.escape(next(reasons, "Not supported by its sources."), quote=True)
            out.append(f"<span class='rag-unsupported' title='{reason}'>")
        out.append(piece.replace(CLOSE, "</span>"))
    return "".join(out)


def marked_markdown(text: str, claims: Sequence[Claim],
                    safe: Callable[[str], str]) -> str:
    """The answer as safe Markdown (`safe` escapes it) with its unsupported claims marked."""
    unsupported = [c for c in claims if not c.supported]
    if not unsupported:
        return safe(text)
    return unbracket(safe(bracket(text, unsupported)), unsupported)


def claims_note(claims: Sequence[Claim]) -> str:
    """'2 of 5 sentences not backed by their sources' for the status line; '' if all are."""
    weak = sum(not c.supported for c in claims)
    if not weak:
        return f"all {len(claims)} sentences backed by their sources" if claims else ""
    return (f"{weak} of {len(claims)} sentence{'s' if len(claims) != 1 else ''} not backed by "
            "their sources (underlined)")
