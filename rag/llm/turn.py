"""One streamed chat turn's chunks folded into stream items, and the checks at its end.

Pure (no SDK import): chunks are read by attribute, so the SDK's `ChatCompletionChunk` and any
object of the same shape work. The client catches the SDK's exceptions around the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rag.errors import LLMError
from rag.llm.errors import STOPPED_MID_ANSWER, ToolCallingUnsupported
from rag.llm.events import ContentDelta, ReasoningDelta, StreamItem, ToolCallsReady, Usage
from rag.llm.harmony import HarmonyParser
from rag.llm.toolcalls import ToolCallAccumulator


class TurnReader:
    """Feed every chunk to `chunk()`, then take `end()`; both yield the items to stream."""

    def __init__(self, *, max_output_tokens: int, tools_requested: bool) -> None:
        self.max_output_tokens = max_output_tokens
        self.tools_requested = tools_requested
        self._parser = HarmonyParser()
        self._tools = ToolCallAccumulator()
        self._usage: Usage | None = None
        self._finish: str | None = None
        self._answered = False

    def chunk(self, chunk: Any) -> Iterator[StreamItem]:
        """The items one chunk completes (usage is kept for the end)."""
        if getattr(chunk, "usage", None) is not None:
            self._usage = usage_of(chunk.usage)
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            if delta is not None:
                yield from self._delta(delta)
            if getattr(choice, "finish_reason", None):
                self._finish = choice.finish_reason
                if self._finish == "error":
                    raise LLMError(f"{STOPPED_MID_ANSWER}: it reported an error.")
                if self._tools.calls:
                    yield ToolCallsReady(self._tools.finish())

    def _delta(self, delta: Any) -> Iterator[StreamItem]:
        reasoning = reasoning_text(delta)
        if reasoning:
            yield ReasoningDelta(reasoning)
        yield from self._content(self._parser.feed(getattr(delta, "content", None) or ""))
        for call in getattr(delta, "tool_calls", None) or []:
            self._tools.add(call)

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


def reasoning_text(delta: Any) -> str:
    """Reasoning carried beside content: `reasoning` (vLLM, Ollama, OpenRouter, LM Studio)
    or `reasoning_content` (llama.cpp, older vLLM); servers that send both repeat the text."""
    extra = getattr(delta, "model_extra", None) or {}
    for name in ("reasoning", "reasoning_content"):
        value = getattr(delta, name, None)
        if value is None:
            value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def usage_of(raw: Any) -> Usage:
    """Usage from the server's counts; a missing total is the sum of the other two."""
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    total = int(getattr(raw, "total_tokens", 0) or 0) or prompt + completion
    return Usage(prompt, completion, total)
