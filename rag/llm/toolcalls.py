"""Streamed tool calls assembled from their deltas, with their JSON arguments parsed.

Servers differ: some repeat the id and name in every chunk, some split the name, some omit
the index or number every call 0. Deltas are read by attribute, so the SDK's
`ChoiceDeltaToolCall` and any object of the same shape work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rag.llm.errors import ToolCallingUnsupported
from rag.llm.events import ToolCall


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Assembles tool-call deltas by index; tolerates repeated ids and names."""

    def __init__(self) -> None:
        self.calls: list[_PendingCall] = []
        self._slot: dict[int, int] = {}

    def add(self, delta: Any) -> None:
        """Take one tool-call delta (`index`, `id`, `function.name`, `function.arguments`)."""
        index = getattr(delta, "index", None)
        call_id = getattr(delta, "id", None) or ""
        function = getattr(delta, "function", None)
        name = (getattr(function, "name", None) or "") if function is not None else ""
        arguments = (getattr(function, "arguments", None) or "") if function is not None else ""
        pending = self._pending(index, call_id)
        if call_id and not pending.id:
            pending.id = call_id
        if name and name != pending.name:  # a name repeated in every chunk is not doubled
            pending.name += name  # a split name is concatenated
        if arguments:
            pending.arguments.append(arguments)

    def _pending(self, index: int | None, call_id: str) -> _PendingCall:
        if index is None:  # servers that omit the index send whole calls
            if call_id:
                for pending in self.calls:
                    if pending.id == call_id:
                        return pending
            if not self.calls or call_id:
                self.calls.append(_PendingCall())
            return self.calls[-1]
        slot = self._slot.get(index)
        if slot is not None:
            pending = self.calls[slot]
            if not (call_id and pending.id and call_id != pending.id):
                return pending
        # a new index, or a new id reusing an index (some servers number every call 0)
        self.calls.append(_PendingCall())
        self._slot[index] = len(self.calls) - 1
        return self.calls[-1]

    def finish(self) -> list[ToolCall]:
        """The complete calls so far (then empty); ToolCallingUnsupported if one is broken."""
        calls = []
        for n, pending in enumerate(self.calls):
            text = "".join(pending.arguments).strip()
            if not pending.name:
                raise ToolCallingUnsupported(
                    "The LLM server streamed a tool call without a name, so its tool calling "
                    "does not work with this model.")
            calls.append(ToolCall(pending.id or f"call_{n}", pending.name,
                                  parse_arguments(pending.name, text)))
        self.calls = []
        self._slot = {}
        return calls


def parse_arguments(name: str, text: str) -> dict[str, Any]:
    """A tool call's arguments: a JSON object ({} for no text), else ToolCallingUnsupported."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolCallingUnsupported(
            f"The LLM server streamed broken arguments for tool '{name}' ({exc.msg}: "
            f"{text[:80]!r}), so its tool calling does not work with this model.") from exc
    if not isinstance(value, dict):
        raise ToolCallingUnsupported(
            f"The LLM server streamed arguments for tool '{name}' that are not a JSON object: "
            f"{text[:80]!r}.")
    return value
