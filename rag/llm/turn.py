"""One streamed chat turn's chunks folded into stream items, and the checks at its end.

Pure (no SDK import): each chunk is first read into `ChunkShape` (pydantic, by attribute, so
the SDK's `ChatCompletionChunk` and any object of the same shape work), which checks the type
of every field this module reads; a chunk of another shape raises pydantic's ValidationError,
which the client translates (rag.llm.translate) like the SDK's own exceptions. The SDK builds
chunks without validating them, so without this a number where text belongs would crash deep
in the parser, and a list where an object belongs would be skipped without a word.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from rag.errors import LLMError
from rag.llm.errors import STOPPED_MID_ANSWER, ToolCallingUnsupported
from rag.llm.events import ContentDelta, ReasoningDelta, StreamItem, ToolCallsReady, Usage
from rag.llm.harmony import HarmonyParser
from rag.llm.toolcalls import ToolCallAccumulator

MAX_ANSWER_CHARS = 200_000  # the default of LLM_MAX_ANSWER_CHARS (rag.settings)


class _Shape(BaseModel):
    """Read by attribute; fields this project does not read are ignored, whatever they hold."""

    model_config = ConfigDict(from_attributes=True, extra="ignore", frozen=True)


class FunctionShape(_Shape):
    name: str | None = None
    arguments: str | None = None


class ToolCallShape(_Shape):
    index: int | None = None
    id: str | None = None
    function: FunctionShape | None = None


class DeltaShape(_Shape):
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallShape] | None = None


class ChoiceShape(_Shape):
    delta: DeltaShape | None = None
    finish_reason: str | None = None


class UsageShape(_Shape):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChunkShape(_Shape):
    """What this project reads of a `chat.completion.chunk`."""

    choices: list[ChoiceShape] | None = None
    usage: UsageShape | None = None


class MessageShape(_Shape):
    content: str | None = None


class CompletionChoiceShape(_Shape):
    message: MessageShape


class CompletionShape(_Shape):
    """What this project reads of a non-streamed `chat.completion`."""

    choices: list[CompletionChoiceShape] | None = None


class TurnReader:
    """Feed every chunk to `chunk()`, then take `end()`; both yield the items to stream."""

    def __init__(self, *, max_output_tokens: int, tools_requested: bool,
                 max_answer_chars: int = MAX_ANSWER_CHARS) -> None:
        self.max_output_tokens = max_output_tokens
        self.tools_requested = tools_requested
        self.max_answer_chars = max_answer_chars
        self._chars = 0  # of answer, reasoning and tool calls received so far
        self._parser = HarmonyParser()
        self._tools = ToolCallAccumulator()
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._answered = False

    def chunk(self, raw: Any) -> Iterator[StreamItem]:
        """The items one chunk completes (usage is kept for the end); pydantic's
        ValidationError if the chunk is not of `ChunkShape`."""
        chunk = ChunkShape.model_validate(raw)
        if chunk.usage is not None:
            self._usage = usage_of(chunk.usage)
        for choice in chunk.choices or []:
            if choice.delta is not None:
                yield from self._delta(choice.delta)
            if choice.finish_reason:
                self._finish = choice.finish_reason
                if self._finish == "error":
                    raise LLMError(f"{STOPPED_MID_ANSWER}: it reported an error.")
                if self._tools.calls:
                    yield ToolCallsReady(self._tools.finish())

    def _delta(self, delta: DeltaShape) -> Iterator[StreamItem]:
        reasoning = reasoning_text(delta)
        self._take(len(reasoning) + len(delta.content or "") + sum(
            len(c.function.arguments or "") + len(c.function.name or "")
            for c in delta.tool_calls or [] if c.function is not None))
        if reasoning:
            yield ReasoningDelta(reasoning)
        yield from self._content(self._parser.feed(delta.content or ""))
        for call in delta.tool_calls or []:
            self._tools.add(call)

    def _take(self, chars: int) -> None:
        """Count received characters; LLMError once the reply is longer than the limit."""
        self._chars += chars
        if self._chars > self.max_answer_chars:
            raise answer_too_long(self.max_answer_chars, self.max_output_tokens)

    def _content(self, items: list[ReasoningDelta | ContentDelta]) -> Iterator[StreamItem]:
        for item in items:
            self._answered = self._answered or isinstance(item, ContentDelta)
            yield item

    def end(self) -> Iterator[StreamItem]:
        """The stream ended: flush the parser, pending tool calls and usage, or raise."""
        yield from self._content(self._parser.close())
        if self._parser.tool_call_text and self.tools_requested:
            raise ToolCallingUnsupported(
                "The LLM server returned the tool call as raw harmony text instead of a "
                "tool call, so its tool calling does not work with gpt-oss.")
        if self._finish is None:
            raise LLMError(f"{STOPPED_MID_ANSWER}: the stream ended before the model finished.")
        if self._tools.calls:
            yield ToolCallsReady(self._tools.finish())
        elif self._finish == "length" and not self._answered:
            raise LLMError(
                f"The model used all {self.max_output_tokens} output tokens before "
                "answering: raise LLM_MAX_OUTPUT_TOKENS or lower the reasoning effort.")
        if self._usage is not None:
            yield self._usage


def answer_too_long(limit: int, max_output_tokens: int) -> LLMError:
    """The error for a reply longer than LLM_MAX_ANSWER_CHARS."""
    return LLMError(
        f"The LLM server sent more than {limit} characters of answer and reasoning (the "
        f"limit, LLM_MAX_ANSWER_CHARS), ignoring max_tokens={max_output_tokens}, so the answer "
        "was stopped. Check the server, or raise LLM_MAX_ANSWER_CHARS.")


def reasoning_text(delta: DeltaShape) -> str:
    """Reasoning carried beside content: `reasoning` (vLLM, Ollama, OpenRouter, LM Studio)
    or `reasoning_content` (llama.cpp, older vLLM); servers that send both repeat the text."""
    return delta.reasoning or delta.reasoning_content or ""


def usage_of(raw: UsageShape) -> Usage:
    """Usage from the server's counts; a missing total is the sum of the other two."""
    prompt = raw.prompt_tokens or 0
    completion = raw.completion_tokens or 0
    return Usage(prompt, completion, raw.total_tokens or prompt + completion)


def completion_text(raw: Any) -> str | None:
    """The first choice's message text of a non-streamed completion (None: no choices);
    pydantic's ValidationError if the reply is not of `CompletionShape`."""
    response = CompletionShape.model_validate(raw)
    if not response.choices:
        return None
    return response.choices[0].message.content or ""
