"""The chat: each browser session's replies, and one question streamed through the pipeline.

The stream folds the pipeline's events into an `Answer` (rag.answer) and only renders it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from rag.answer import Answer
from rag.errors import RagError
from rag.events import AnswerEvent, NoticeEvent, ReasoningEvent
from rag.pipeline import AskOptions
from rag.prompting import Turn
from rag.ui.cards import sources_html
from rag.ui.render import chat_messages, safe_markdown, status_text
from rag.ui.services import Services

# Events that change neither the sources nor the searched query: the panel stays as it is.
_TEXT_EVENTS = (ReasoningEvent, AnswerEvent, NoticeEvent)


@dataclass
class Reply:
    """One answer in a chat, where its chatbot messages are, and how it was asked."""

    answer: Answer
    first: int  # index of its question's chatbot message
    end: int = 0  # one past its last chatbot message
    settings: dict[str, Any] = field(default_factory=dict)  # the AskOptions, JSON-ready
    position: int | None = None  # its position in the saved conversation, once saved
    feedback: int | None = None  # the id of its rating, once rated


@dataclass
class ChatSession:
    """Everything one browser session's chat holds (kept in gr.State, never shared)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    conversation: str | None = None  # the saved conversation's id, once it has one
    kb: str | None = None  # the knowledge base it asks (None: the default)
    editing: bool = False  # the next question replaces the last reply (edit, regenerate)
    noted: int | None = None  # the feedback a note is asked for (after a thumbs-down)

    @property
    def turns(self) -> list[Turn]:
        """The answered exchanges, for follow-up questions."""
        return [t for t in (r.answer.turn() for r in self.replies) if t is not None]

    def drop_last(self) -> Reply | None:
        """Remove the last reply from the chat (to ask it again); returns it."""
        if not self.replies:
            return None
        reply = self.replies.pop()
        del self.messages[reply.first:]
        return reply

    def reply_at(self, message_index: int) -> Reply | None:
        """The reply that a chatbot message belongs to."""
        for reply in self.replies:
            if reply.first <= message_index < max(reply.end, reply.first + 1):
                return reply
        return None


class ChatUpdate(NamedTuple):
    """What the chat shows after a step: its messages, the sources panel (None: unchanged)
    and the status line."""

    messages: list[dict[str, Any]]
    panel: str | None
    status: str


def chat_stream(services: Services, text: str, session: ChatSession,
                options: AskOptions) -> Iterator[ChatUpdate]:
    """Ask one question in a session; yields what to show after every event."""
    question = (text or "").strip()
    if not question:
        yield ChatUpdate(session.messages, None, "Type a question first.")
        return
    answer = Answer(question)
    reply = Reply(answer, first=len(session.messages), settings=options.to_dict())
    session.replies.append(reply)
    session.messages.append({"role": "user", "content": safe_markdown(question)})

    def show(panel: bool) -> ChatUpdate:
        session.messages[reply.first + 1:] = chat_messages(answer)
        reply.end = len(session.messages)
        return ChatUpdate(session.messages, sources_html(answer) if panel else None,
                          status_text(answer))

    yield show(panel=True)
    try:
        events = services.pipeline(session.kb).ask(question, list(session.turns), options)
        for event in answer.follow(events):
            yield show(panel=not isinstance(event, _TEXT_EVENTS))
    except RagError as exc:
        answer.fail(str(exc))
    finally:
        answer.finish()  # also when the user stops it: nothing stays "thinking"
    yield show(panel=True)
