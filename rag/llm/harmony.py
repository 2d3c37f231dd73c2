"""Raw harmony and `<think>` markup inside content, split into reasoning and answer text.

Some servers (llama.cpp without a reasoning parser, older vLLM) stream gpt-oss's harmony
markup (`<|channel|>analysis<|message|>...<|end|>`) or `<think>` blocks as plain content.
Pure: no I/O, no SDK; `HarmonyParser` is fed chunks, `split_reasoning` takes a whole text.
"""

from __future__ import annotations

import re

from rag.llm.events import ContentDelta, ReasoningDelta

_HARMONY_TAGS = ("<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|return|>",
                 "<|call|>", "<|constrain|>")
_ENDS = ("<|end|>", "<|return|>", "<|call|>")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


class HarmonyParser:
    """Incrementally splits content into reasoning and answer text.

    Handles raw harmony markup (`<|channel|>analysis<|message|>...<|end|>`) and `<think>`
    blocks, split across chunks anywhere; only a possible partial tag is ever held back.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._state = "text"  # text | header | body | between | think
        self._header = ""
        self._channel = "final"
        self._recipient = ""
        self._answered = False  # non-whitespace answer text was emitted
        self._lstrip = False  # drop leading whitespace of the next answer text
        self._tool_body = ""
        self._out: list[tuple[str, str]] = []
        self.tool_call_text: list[tuple[str, str]] = []  # (recipient, body) of raw tool calls

    def feed(self, text: str) -> list[ReasoningDelta | ContentDelta]:
        """Parse more content; returns the deltas that are certain so far."""
        self._buf += text
        while self._buf:
            tags = self._tags()
            index, tag = _earliest(self._buf, tags)
            if tag is None:
                cut = len(self._buf) - _partial_suffix(self._buf, tags)
                ready, self._buf = self._buf[:cut], self._buf[cut:]
                self._text(ready)
                break
            if tag == _THINK_OPEN and self._buf[:index].strip():
                # answer text comes first: this <think> is literal text, not markup
                self._text(self._buf[:index])
                self._buf = self._buf[index:]
                continue
            self._text(self._buf[:index])
            self._buf = self._buf[index + len(tag):]
            self._tag(tag)
        return self._drain()

    def close(self) -> list[ReasoningDelta | ContentDelta]:
        """The stream ended: flush a held-back partial tag as text."""
        rest, self._buf = self._buf, ""
        self._text(rest)
        if self._state == "body" and self._recipient:
            self._end_message()
        return self._drain()

    def _tags(self) -> tuple[str, ...]:
        if self._state == "think":
            return (_THINK_CLOSE,)
        if self._state == "text" and not self._answered:
            return (*_HARMONY_TAGS, _THINK_OPEN)
        return _HARMONY_TAGS

    def _text(self, text: str) -> None:
        if not text:
            return
        state = self._state
        if state == "header":
            self._header += text
        elif state == "think":
            self._emit("reasoning", text)
        elif state == "between":
            if text.strip():  # stray text outside any message: keep it as answer
                self._state, self._channel, self._recipient = "body", "final", ""
                self._lstrip = True
                self._answer(text)
        elif state == "body":
            if self._recipient:
                self._tool_body += text
            elif self._channel == "final":
                self._answer(text)
            else:  # analysis, commentary preambles: chain of thought
                self._emit("reasoning", text)
        else:
            self._answer(text)

    def _answer(self, text: str) -> None:
        if self._lstrip:
            text = text.lstrip()
            if not text:
                return
            self._lstrip = False
        if text.strip():
            self._answered = True
        self._emit("content", text)

    def _tag(self, tag: str) -> None:
        if tag == _THINK_OPEN:
            self._state = "think"
        elif tag == _THINK_CLOSE:
            self._state, self._lstrip = "text", True
        elif tag == "<|start|>":
            self._end_message()
            self._state, self._header = "header", ""
        elif tag == "<|channel|>":
            if self._state != "header":
                self._end_message()
                self._state, self._header = "header", ""
            self._header += "<|channel|>"
        elif tag == "<|message|>":
            if self._state == "header":
                self._open_message(self._header)
            elif self._state in ("text", "between"):
                self._open_message("")
        elif tag == "<|constrain|>":
            if self._state == "header":
                self._header += " "
        elif tag in _ENDS:
            self._end_message()
            self._state = "between"

    def _open_message(self, header: str) -> None:
        channel = re.search(r"<\|channel\|>\s*([\w-]+)", header)
        recipient = re.search(r"\bto=([\w.\-]+)", header)
        self._channel = channel.group(1) if channel else "final"
        self._recipient = recipient.group(1) if recipient else ""
        self._tool_body = ""
        self._state = "body"
        if self._channel == "final":
            self._lstrip = not self._answered

    def _end_message(self) -> None:
        if self._state == "body" and self._recipient:
            self.tool_call_text.append((self._recipient, self._tool_body))
            self._recipient = ""

    def _emit(self, kind: str, text: str) -> None:
        if self._out and self._out[-1][0] == kind:
            self._out[-1] = (kind, self._out[-1][1] + text)
        else:
            self._out.append((kind, text))

    def _drain(self) -> list[ReasoningDelta | ContentDelta]:
        out: list[ReasoningDelta | ContentDelta] = [
            ReasoningDelta(text) if kind == "reasoning" else ContentDelta(text)
            for kind, text in self._out if text]
        self._out = []
        return out


def _earliest(buf: str, tags: tuple[str, ...]) -> tuple[int, str | None]:
    best, found = len(buf), None
    for tag in tags:
        index = buf.find(tag)
        if index != -1 and index < best:
            best, found = index, tag
    return best, found


def _partial_suffix(buf: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of buf that could be the start of a tag."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(buf)), longest, -1):
            if buf.endswith(tag[:size]):
                longest = size
                break
    return longest


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, answer) of a complete content string that may hold harmony markup."""
    parser = HarmonyParser()
    items = parser.feed(text) + parser.close()
    reasoning = "".join(i.text for i in items if isinstance(i, ReasoningDelta))
    answer = "".join(i.text for i in items if isinstance(i, ContentDelta))
    return reasoning, answer
