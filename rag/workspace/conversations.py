"""Saved conversations: each owner's list, its replies in order, rename, delete, export.

An owner is an account ("user:NAME") or, without logins, a browser ("browser:ID", an id kept in
the browser's local storage). Every call names the owner, and a conversation of another owner
is answered as if it did not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rag.errors import ConfigError
from rag.workspace.db import Database
from rag.workspace.tables import NAME_LENGTH, Conversation, Message, now

NEW_TITLE = "New chat"
TITLE_CHARS = 80


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A conversation as listed."""

    id: str
    title: str
    kb: str
    created_at: datetime
    updated_at: datetime
    replies: int = 0


@dataclass(frozen=True, slots=True)
class SavedReply:
    """One saved reply: the question, the answer's record, the settings it was asked with."""

    position: int
    question: str
    answer: dict[str, Any]
    settings: dict[str, Any]


def title_from(question: str) -> str:
    """A conversation's title from its first question: one line, at most 80 characters."""
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 1].rstrip() + "…"


class Conversations:
    """The conversations in the app's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, owner: str, kb: str, title: str = NEW_TITLE) -> ConversationInfo:
        """A new, empty conversation."""
        with self.db.session() as s:
            row = Conversation(id=uuid.uuid4().hex, owner=owner, kb=kb,
                               title=_title(title))
            s.add(row)
            s.flush()
            return _info(row, 0)

    def list(self, owner: str) -> list[ConversationInfo]:
        """The owner's conversations, the most recently used first."""
        counts = (select(Message.conversation_id, func.count().label("n"))
                  .group_by(Message.conversation_id).subquery())
        query = (select(Conversation, func.coalesce(counts.c.n, 0))
                 .outerjoin(counts, counts.c.conversation_id == Conversation.id)
                 .where(Conversation.owner == owner)
                 .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc()))
        with self.db.session() as s:
            return [_info(row, n) for row, n in s.execute(query)]

    def get(self, owner: str, conversation_id: str) -> ConversationInfo:
        """One of the owner's conversations."""
        with self.db.session() as s:
            row = _own(s, owner, conversation_id)
            return _info(row, len(row.messages))

    def replies(self, owner: str, conversation_id: str) -> list[SavedReply]:
        """A conversation's replies, in order."""
        with self.db.session() as s:
            return [SavedReply(m.position, m.question, m.answer, m.settings)
                    for m in _own(s, owner, conversation_id).messages]

    def add_reply(self, owner: str, conversation_id: str, question: str,
                  answer: dict[str, Any], settings: dict[str, Any]) -> int:
        """Append a reply; the first one titles a conversation that has no title yet.
        Returns its position."""
        with self.db.session() as s:
            row = _own(s, owner, conversation_id)
            position = max((m.position for m in row.messages), default=-1) + 1
            row.messages.append(Message(position=position, question=question, answer=answer,
                                        settings=settings))
            if row.title == NEW_TITLE:
                row.title = title_from(question) or NEW_TITLE
            row.updated_at = now()
            return position

    def replace_last(self, owner: str, conversation_id: str) -> None:
        """Remove the last reply (before it is asked again: regenerate, edit and resend)."""
        with self.db.session() as s:
            row = _own(s, owner, conversation_id)
            if row.messages:
                s.delete(row.messages[-1])

    def rename(self, owner: str, conversation_id: str, title: str) -> ConversationInfo:
        """Give a conversation a new title."""
        with self.db.session() as s:
            row = _own(s, owner, conversation_id)
            row.title = _title(title)
            return _info(row, len(row.messages))

    def delete(self, owner: str, conversation_id: str) -> None:
        """Delete a conversation and its replies (its feedback stays, unlinked)."""
        with self.db.session() as s:
            s.delete(_own(s, owner, conversation_id))


def _title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise ConfigError("A conversation's title may not be empty.")
    return title[:NAME_LENGTH]


def _own(session: Session, owner: str, conversation_id: str) -> Conversation:
    row = session.get(Conversation, conversation_id)
    if row is None or row.owner != owner:
        raise ConfigError("No such conversation: it was deleted, or it is someone else's.")
    return row


def _info(row: Conversation, replies: int) -> ConversationInfo:
    return ConversationInfo(row.id, row.title, row.kb, row.created_at, row.updated_at, replies)
