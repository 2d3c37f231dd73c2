"""Typed events that the answering pipeline yields and every front end renders."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rag.schema import Hit


@dataclass(slots=True)
class Source:
    """A retrieved chunk as numbered in the prompt: [n]."""

    n: int
    hit: Hit

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON form: n plus the hit's fields."""
        return {"n": self.n, **self.hit.to_dict()}


@dataclass(frozen=True, slots=True)
class Claim:
    """One sentence of an answer, checked against the sources it cites.

    `start`/`end` are its offsets in the answer text; `cites` the source numbers it cites
    that exist; `support` the best score against them (None when nothing could be scored);
    `reason` says why it is not supported ('' when it is)."""

    text: str
    start: int
    end: int
    cites: list[int] = field(default_factory=list)
    support: float | None = None
    supported: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(slots=True)
class QueryEvent:
    """The search query actually used (a follow-up rewritten into a standalone question)."""

    query: str
    original: str
    type: Literal["query"] = "query"


@dataclass(slots=True)
class SourcesEvent:
    """The sources given to the model, numbered [1]..[k]."""

    sources: list[Source]
    type: Literal["sources"] = "sources"


@dataclass(slots=True)
class ReasoningEvent:
    """A delta of the model's chain of thought; never part of the answer."""

    text: str
    type: Literal["reasoning"] = "reasoning"


@dataclass(slots=True)
class AnswerEvent:
    """A delta of the answer text."""

    text: str
    type: Literal["answer"] = "answer"


@dataclass(slots=True)
class ToolCallEvent:
    """The model called a tool (agentic search); hits are the sources it got back."""

    name: str
    arguments: dict[str, Any]
    sources: list[Source] = field(default_factory=list)
    type: Literal["tool_call"] = "tool_call"


@dataclass(slots=True)
class NoticeEvent:
    """Something the user should know that is not an error (a fallback, a retry)."""

    message: str
    type: Literal["notice"] = "notice"


@dataclass(slots=True)
class DoneEvent:
    """The answer is complete."""

    citations: list[int]
    unknown_citations: list[int]
    timings: dict[str, float]
    usage: dict[str, int] | None = None
    claims: list[Claim] = field(default_factory=list)  # the answer's sentences, checked
    type: Literal["done"] = "done"


@dataclass(slots=True)
class ErrorEvent:
    """The answer failed; message says what to do. Sources already sent stay valid."""

    message: str
    type: Literal["error"] = "error"


Event = (
    QueryEvent
    | SourcesEvent
    | ReasoningEvent
    | AnswerEvent
    | ToolCallEvent
    | NoticeEvent
    | DoneEvent
    | ErrorEvent
)


def to_dict(event: Event) -> dict[str, Any]:
    """JSON-ready form of any event, with its `type` key."""
    if isinstance(event, SourcesEvent):
        return {"type": event.type, "sources": [s.to_dict() for s in event.sources]}
    if isinstance(event, ToolCallEvent):
        return {
            "type": event.type,
            "name": event.name,
            "arguments": event.arguments,
            "sources": [s.to_dict() for s in event.sources],
        }
    return asdict(event)
