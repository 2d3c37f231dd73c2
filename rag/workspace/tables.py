"""The app's own tables: accounts and their grants, conversations and their messages, feedback.

Milvus holds chunks and vectors; everything a person makes in the app lives here, in SQLite or
PostgreSQL through SQLAlchemy. The schema is created and upgraded by the Alembic migrations in
rag/workspace/migrations (never by `create_all`), so every database has one history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAME_LENGTH = 200  # account and knowledge-base names
OWNER_LENGTH = 240  # "user:NAME" or "browser:ID"
ALL_KBS = "*"  # a grant for every knowledge base


def now() -> datetime:
    """The current time in UTC (stored without a zone, read back as UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    """The declarative base of the workspace tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class AppKey(Base):
    """A value the app makes once and keeps, such as the key of the browser-side state."""

    __tablename__ = "app_keys"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class KnowledgeBaseRow(Base):
    """A knowledge base: its name, the Milvus collections' prefix, its embedding model."""

    __tablename__ = "knowledge_bases"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    collection: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    embedding_model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=now)


class User(Base):
    """An account: a unique name and an Argon2 hash of its password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=now)
    grants: Mapped[list[Grant]] = relationship(back_populates="user",
                                               cascade="all, delete-orphan",
                                               passive_deletes=True)


class Grant(Base):
    """A role of an account in one knowledge base (or in every one: kb = '*')."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("user_id", "kb", name="uq_grants_user_kb"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kb: Mapped[str] = mapped_column(String(NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(20))
    user: Mapped[User] = relationship(back_populates="grants")


class Conversation(Base):
    """A saved chat of one owner: an account ("user:NAME") or a browser ("browser:ID")."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_owner_updated", "owner", "updated_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LENGTH))
    kb: Mapped[str] = mapped_column(String(NAME_LENGTH))
    title: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Message.position")


class Message(Base):
    """One reply in a conversation: the question and the answer's record (rag.workspace.
    records), in order."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "position",
                                       name="uq_messages_conversation_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[dict[str, Any]] = mapped_column()  # the answer's record
    settings: Mapped[dict[str, Any]] = mapped_column()  # effort, k, mode, documents, agent
    created_at: Mapped[datetime] = mapped_column(default=now)
    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Feedback(Base):
    """A thumbs up or down on a reply, with what was asked, found and answered."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(OWNER_LENGTH))
    kb: Mapped[str] = mapped_column(String(NAME_LENGTH))
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), nullable=True)
    position: Mapped[int | None] = mapped_column(nullable=True)
    rating: Mapped[int] = mapped_column()  # 1 up, -1 down
    note: Mapped[str] = mapped_column(Text, default="")
    question: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[Any]] = mapped_column()
    settings: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=now)
