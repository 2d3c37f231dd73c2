"""Feedback on replies, and its export as evaluation questions that `rag eval --qa` reads.

A thumbs-down says retrieval or the answer went wrong; its note names the passage that should
have been found (the web app asks for "a phrase from the passage that answers it"), and that
phrase becomes the question's evidence. A thumbs-up keeps a good reply from regressing: its
evidence is the opening of the first source it cited, from that file and page. A thumbs-down
without a note has no evidence to check, so it is skipped, and the export says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.errors import ConfigError
from rag.matching import letters_and_digits
from rag.prompting import cited_numbers
from rag.workspace.db import Database
from rag.workspace.tables import Feedback

EVIDENCE_CHARS = 160  # the opening of a cited chunk used as a thumbs-up's evidence


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """A stored rating with what was asked, found and answered."""

    id: int
    owner: str
    kb: str
    rating: int
    note: str
    question: str
    query: str
    answer: str
    sources: list[dict[str, Any]]
    settings: dict[str, Any]
    conversation_id: str | None
    position: int | None
    created_at: datetime


class FeedbackLog:
    """The feedback in the app's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, *, owner: str, kb: str, rating: int, note: str, answer: dict[str, Any],
               settings: dict[str, Any], conversation_id: str | None = None,
               position: int | None = None) -> int:
        """Store a rating (1 or -1) of an answer (its record); returns the feedback's id."""
        if rating not in (1, -1):
            raise ConfigError("A rating is 1 (thumbs up) or -1 (thumbs down).")
        row = Feedback(owner=owner, kb=kb, rating=rating, note=note.strip(),
                       question=answer.get("question", ""), query=answer.get("query", ""),
                       answer=answer.get("text", ""), sources=list(answer.get("sources", [])),
                       settings=dict(settings), conversation_id=conversation_id,
                       position=position)
        with self.db.session() as s:
            s.add(row)
            s.flush()
            return row.id

    def set_note(self, feedback_id: int, note: str) -> None:
        """Add or replace the note of a rating (the web app asks for it after a thumbs-down)."""
        with self.db.session() as s:
            _row(s, feedback_id).note = note.strip()

    def set_rating(self, feedback_id: int, rating: int) -> None:
        """Change a rating (a second click on the other thumb)."""
        if rating not in (1, -1):
            raise ConfigError("A rating is 1 (thumbs up) or -1 (thumbs down).")
        with self.db.session() as s:
            _row(s, feedback_id).rating = rating

    def list(self, kb: str | None = None, rating: int | None = None) -> list[FeedbackItem]:
        """Stored feedback, oldest first, optionally of one knowledge base or rating."""
        query = select(Feedback).order_by(Feedback.id)
        if kb is not None:
            query = query.where(Feedback.kb == kb)
        if rating is not None:
            query = query.where(Feedback.rating == rating)
        with self.db.session() as s:
            return [_item(row) for row in s.scalars(query)]


def as_question(item: FeedbackItem) -> tuple[dict[str, Any] | None, str]:
    """The evaluation question (a `rag eval --qa` line) a feedback item makes, or None with
    the reason it makes none."""
    base = {"id": f"feedback-{item.id}", "question": item.question}
    if item.rating < 0:
        if not letters_and_digits(item.note):
            return None, f"feedback {item.id} (thumbs down) has no note naming the passage"
        return base | {"evidence": item.note, "kind": "feedback-down"}, ""
    cited = _first_cited(item)
    if cited is None:
        return None, f"feedback {item.id} (thumbs up) cites no source"
    row = base | {"evidence": _opening(cited.get("text", "")), "source": cited.get("source"),
                  "kind": "feedback-up"}
    if cited.get("page") is not None:
        row["page"] = cited["page"]
    return row, ""


def _first_cited(item: FeedbackItem) -> dict[str, Any] | None:
    by_number = {s.get("n"): s for s in item.sources}
    for n in cited_numbers(item.answer):
        if n in by_number and letters_and_digits(by_number[n].get("text", "")):
            return by_number[n]
    return None


def _opening(text: str) -> str:
    words = " ".join(text.split())
    if len(words) <= EVIDENCE_CHARS:
        return words
    return words[:EVIDENCE_CHARS].rsplit(" ", 1)[0]


def _row(session: Session, feedback_id: int) -> Feedback:
    row = session.get(Feedback, feedback_id)
    if row is None:
        raise ConfigError(f"No feedback has the id {feedback_id}.")
    return row


def _item(row: Feedback) -> FeedbackItem:
    return FeedbackItem(row.id, row.owner, row.kb, row.rating, row.note, row.question,
                        row.query, row.answer, list(row.sources), dict(row.settings),
                        row.conversation_id, row.position, row.created_at)
