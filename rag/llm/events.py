"""What a streamed chat turn yields: reasoning and answer deltas, tool calls, usage, retries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call with its JSON arguments parsed."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's chain of thought."""

    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallsReady:
    """The model finished a turn by calling these tools."""

    calls: list[ToolCall]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts the server reported for the request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Retrying:
    """The request failed transiently and is about to be retried."""

    message: str


StreamItem = ReasoningDelta | ContentDelta | ToolCallsReady | Usage | Retrying
