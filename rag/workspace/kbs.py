"""The list of knowledge bases: each a name people see, the prefix of its Milvus collections,
and the embedding model its vectors were made with.

The configured collection (MILVUS_COLLECTION) is the default knowledge base, listed under its
own name on first use. A new knowledge base gets collections named `kb_<random hex>` (Milvus
names allow only ASCII letters, digits and underscores; a knowledge base's name may be any
text). Renaming one keeps its collections and moves its conversations and grants along.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rag.errors import ConfigError
from rag.workspace.accounts import check_name
from rag.workspace.db import Database
from rag.workspace.tables import ALL_KBS, Conversation, Feedback, Grant, KnowledgeBaseRow


@dataclass(frozen=True, slots=True)
class KBInfo:
    """A knowledge base as listed."""

    name: str
    collection: str
    embedding_model: str
    created_at: datetime


class KnowledgeBases:
    """The knowledge bases in the app's database."""

    def __init__(self, db: Database, default: str, embedding_model: str) -> None:
        self.db = db
        self.default = default
        with self.db.session() as s:
            taken = s.scalar(select(KnowledgeBaseRow).where(
                KnowledgeBaseRow.collection == default))
            if taken is None:
                s.add(KnowledgeBaseRow(name=_unique(s, default), collection=default,
                                       embedding_model=embedding_model))

    def list(self) -> list[KBInfo]:
        """Every knowledge base, the default first, then by name."""
        with self.db.session() as s:
            rows = [_info(r) for r in s.scalars(select(KnowledgeBaseRow))]
        return sorted(rows, key=lambda kb: (kb.collection != self.default, kb.name.casefold()))

    def get(self, name: str | None) -> KBInfo:
        """A knowledge base by name (None or empty: the default)."""
        with self.db.session() as s:
            if not name:
                row = s.scalar(select(KnowledgeBaseRow).where(
                    KnowledgeBaseRow.collection == self.default))
            else:
                row = s.get(KnowledgeBaseRow, name.strip())
            if row is None:
                raise ConfigError(f"No knowledge base is named {name!r}. The list: "
                                  f"{', '.join(kb.name for kb in self.list())}.")
            return _info(row)

    def create(self, name: str, embedding_model: str) -> KBInfo:
        """A new, empty knowledge base (its collections are made when it is first opened)."""
        name = check_name(name, "A knowledge base's name")
        if name == ALL_KBS:
            raise ConfigError(f"{ALL_KBS!r} means every knowledge base; pick another name.")
        with self.db.session() as s:
            if s.get(KnowledgeBaseRow, name) is not None:
                raise ConfigError(f"A knowledge base named {name!r} already exists.")
            row = KnowledgeBaseRow(name=name, collection=f"kb_{uuid.uuid4().hex[:16]}",
                                   embedding_model=embedding_model)
            s.add(row)
            s.flush()
            return _info(row)

    def rename(self, name: str, new: str) -> KBInfo:
        """Rename a knowledge base; its conversations, feedback and grants follow."""
        new = check_name(new, "A knowledge base's name")
        old = self.get(name)
        with self.db.session() as s:
            if s.get(KnowledgeBaseRow, new) is not None:
                raise ConfigError(f"A knowledge base named {new!r} already exists.")
            s.execute(update(KnowledgeBaseRow).where(KnowledgeBaseRow.name == old.name)
                      .values(name=new))
            for table in (Conversation, Feedback, Grant):
                s.execute(update(table).where(table.kb == old.name).values(kb=new))
        return self.get(new)

    def remove(self, name: str) -> KBInfo:
        """Forget a knowledge base with its conversations and grants (the caller drops its
        collections); the default cannot be removed."""
        info = self.get(name)
        if info.collection == self.default:
            raise ConfigError(f"{info.name!r} is the default knowledge base (MILVUS_COLLECTION)"
                              " and cannot be deleted; delete its documents instead.")
        with self.db.session() as s:
            for row in s.scalars(select(Conversation).where(Conversation.kb == info.name)):
                s.delete(row)
            for grant in s.scalars(select(Grant).where(Grant.kb == info.name)):
                s.delete(grant)
            s.delete(s.get(KnowledgeBaseRow, info.name))
        return info


def _unique(session: Session, name: str) -> str:
    candidate, n = name, 1
    while session.get(KnowledgeBaseRow, candidate) is not None:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def _info(row: KnowledgeBaseRow) -> KBInfo:
    return KBInfo(row.name, row.collection, row.embedding_model, row.created_at)
