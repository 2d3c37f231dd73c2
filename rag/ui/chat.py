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
from rag.ui.render import chat_messages, safe_markdown, sources_html, status_text
from rag.ui.services import Services

# Events that change neither the sources nor the searched query: the panel stays as it is.
_TEXT_EVENTS = (ReasoningEvent, AnswerEvent, NoticeEvent)


@dataclass
class Reply:
    """One answer in a chat and where its chatbot messages are."""

    answer: Answer
    first: int  # index of its question's chatbot message
    end: int = 0  # one past its last chatbot message


@dataclass
class ChatSession:
    """Everything one browser session's chat holds (kept in gr.State, never shared)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

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
    reply = Reply(answer, first=len(session.messages))
    session.replies.append(reply)
    session.messages.append({"role": "user", "content": safe_markdown(question)})

    def show(panel: bool) -> ChatUpdate:
        session.messages[reply.first + 1:] = chat_messages(answer)
        reply.end = len(session.messages)
        return ChatUpdate(session.messages, sources_html(answer) if panel else None,
                          status_text(answer))

    yield show(panel=True)
    try:
        events = services.pipeline().ask(question, list(session.turns), options)
        for event in answer.follow(events):
            yield show(panel=not isinstance(event, _TEXT_EVENTS))
    except RagError as exc:
        answer.fail(str(exc))
    finally:
        answer.finish()  # also when the user stops it: nothing stays "thinking"
    turn = answer.turn()
    if turn is not None:
        session.turns.append(turn)
    yield show(panel=True)
