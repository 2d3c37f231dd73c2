"""The app's own data in SQL: accounts and roles, saved conversations, feedback."""

from __future__ import annotations

import secrets
from functools import cached_property

from rag.workspace.access import Access
from rag.workspace.accounts import Account, Accounts
from rag.workspace.conversations import ConversationInfo, Conversations, SavedReply
from rag.workspace.db import Database
from rag.workspace.feedback import FeedbackItem, FeedbackLog, as_question
from rag.workspace.kbs import KBInfo, KnowledgeBases
from rag.workspace.records import answer_from_record, answer_record
from rag.workspace.tables import AppKey

__all__ = ["Access", "Account", "Accounts", "ConversationInfo", "Conversations", "Database",
           "FeedbackItem", "FeedbackLog", "KBInfo", "KnowledgeBases", "SavedReply", "Workspace",
           "answer_from_record", "answer_record", "as_question"]


class Workspace:
    """The database and its parts, opened once per process."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)

    @cached_property
    def accounts(self) -> Accounts:
        """Accounts and their roles."""
        return Accounts(self.db)

    @cached_property
    def conversations(self) -> Conversations:
        """Saved conversations."""
        return Conversations(self.db)

    @cached_property
    def feedback(self) -> FeedbackLog:
        """Ratings of replies."""
        return FeedbackLog(self.db)

    def knowledge_bases(self, default: str, embedding_model: str) -> KnowledgeBases:
        """The list of knowledge bases; `default` (MILVUS_COLLECTION) is listed on first use."""
        return KnowledgeBases(self.db, default, embedding_model)

    def key(self, name: str) -> str:
        """A random secret made on first use and kept in the database (the same for every
        process and restart), e.g. the key that encrypts the browser-side state."""
        with self.db.session() as s:
            row = s.get(AppKey, name)
            if row is None:
                row = AppKey(name=name, value=secrets.token_urlsafe(32))
                s.add(row)
            value = row.value
        return value

    def close(self) -> None:
        """Close the database's connections."""
        self.db.close()
