"""The token packer: one text cut into token-bounded chunks of whole units, with overlap.

A paragraph splits into sentences, a sentence into lines, a line into words; a "word" longer
than a whole chunk (a hash, a base64 blob) is cut into characters. Chunks overlap by whole
units, never reaching back across the start of a section, and a small last chunk is made whole.

Memory stays bounded whatever the text: a paragraph longer than a window of characters (a
file of one 18 MB line) is cut into windows, on whitespace where it can be, before anything
is counted, and `BoundedCounter` counts long texts window by window and in batches of bounded
size. It also counts at least one token per `CHARS_PER_TOKEN` characters, so no chunk is
longer than that many characters per token of its budget, even of text the tokenizer takes
as one unknown token per word.
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

TokenCounter = Callable[[list[str]], list[int]]

# Levels of refinement, coarsest first.
_PARAGRAPH, _SENTENCE, _LINE, _WORD, _CHARS = range(5)
_SEPARATORS = {
    _PARAGRAPH: re.compile(r"\n[^\S\n]*\n\s*"),
    _SENTENCE: re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'”’)\]])\s+"),
    _LINE: re.compile(r"\s*\n\s*"),
    _WORD: re.compile(r"\s+"),
}
_PARAGRAPH_BATCH = 128  # paragraphs counted per call of count_tokens
CHARS_PER_TOKEN = 32  # a text counts at least one token per this many characters
_BATCH_CHARS = 1 << 20  # characters handed to the tokenizer in one call, at most
_BATCH_TEXTS = 1024  # texts handed to the tokenizer in one call, at most
_WHITESPACE = re.compile(r"\s")
_HELD = 3  # chunks the packer holds back: the tail fix changes the last two, reads the third


class BoundedCounter:
    """A token counter whose memory does not grow with the texts it is given.

    Texts go to `count` in calls of at most _BATCH_CHARS characters; a text longer than
    `window` characters is counted window by window (cut on whitespace where it can be) and
    its counts added up. Each count is at least len(text) / CHARS_PER_TOKEN."""

    def __init__(self, count: TokenCounter, window: int) -> None:
        self.count = count
        self.window = max(window, 1)

    def __call__(self, texts: list[str]) -> list[int]:
        pieces: list[str] = []
        owners: list[int] = []
        totals = [0] * len(texts)
        size = 0
        for index, text in enumerate(texts):
            for start, end in windows(text, 0, len(text), self.window):
                pieces.append(text[start:end])
                owners.append(index)
                size += end - start
                if len(pieces) >= _BATCH_TEXTS or size >= _BATCH_CHARS:
                    self._add(pieces, owners, totals)
                    pieces, owners, size = [], [], 0
        self._add(pieces, owners, totals)
        return [max(total, -(-len(text) // CHARS_PER_TOKEN))
                for total, text in zip(totals, texts, strict=True)]

    def _add(self, pieces: list[str], owners: list[int], totals: list[int]) -> None:
        if pieces:
            for owner, tokens in zip(owners, self.count(pieces), strict=True):
                totals[owner] += tokens


def windows(text: str, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """text[start:end] cut into consecutive spans of at most `size` characters, each ending
    after the last whitespace in its second half when there is one; together they cover
    every character."""
    while end - start > size:
        cut = start + size
        half = start + size // 2
        space = None
        for match in _WHITESPACE.finditer(text, half, cut):
            space = match.end()
        if space is not None and space > start:
            cut = space
        yield start, cut
        start = cut
    if start < end:
        yield start, end


@dataclass(slots=True)
class _Unit:
    """A span [start, end) of a section's text, its token count and how it was cut."""

    start: int
    end: int
    tokens: int
    level: int


class Splitter:
    """Packs a text greedily into chunks of whole units; no chunk is small if it can be helped.

    `starts` are the offsets where the sections of the text begin: overlap never reaches back
    across one."""

    def __init__(self, text: str, count: TokenCounter, max_tokens: int, overlap: int,
                 min_tokens: int, starts: list[int], window: int) -> None:
        self.text = text
        self.count = count
        self.window = window  # paragraphs longer than this many characters are cut first
        self.max = max_tokens
        self.overlap = overlap
        self.min = min_tokens
        self.starts = starts

    def drafts(self) -> Iterator[tuple[int, int, int]]:
        """(start, end, tokens) of each chunk of the text, in order, as they are packed: only
        the last _HELD chunks wait (the tail fix may change the last two), so memory stays
        bounded on a text of millions of words."""
        held: deque[list[_Unit]] = deque()
        for units in self._pack():
            held.append(units)
            if len(held) > _HELD:
                yield _draft(held.popleft())
        chunks = list(held)
        self._fix_tail(chunks)
        for units in chunks:
            yield _draft(units)

    def _pack(self) -> Iterator[list[_Unit]]:
        """Chunks as lists of units, each chunk starting with the overlap from the one before."""
        current: list[_Unit] = []
        total = 0
        queue: deque[_Unit] = deque()
        units = self._units()
        while (unit := queue.popleft() if queue else next(units, None)) is not None:
            if total + unit.tokens <= self.max:
                current.append(unit)
                total += unit.tokens
                continue
            if total < self.min:  # closing here leaves a small chunk: cut the unit finer
                finer = self._finer(unit)
                if finer:
                    queue.extendleft(reversed(finer))
                    continue
            if current:
                yield current
                budget = min(self.overlap, total // 2, self.max - unit.tokens)
                current = self._tail(current, budget, self._barrier(unit.start))
                total = sum(u.tokens for u in current)
            current.append(unit)
            total += unit.tokens
        if current:
            yield current

    def _fix_tail(self, chunks: list[list[_Unit]]) -> None:
        """Make a small last chunk whole: join it to the one before, or move text into it."""
        if len(chunks) < 2 or sum(u.tokens for u in chunks[-1]) >= self.min:
            return
        before = list(chunks[-2])
        own = [u for u in chunks[-1] if u.start >= before[-1].end]  # without its overlap
        if sum(u.tokens for u in before + own) <= self.max:
            chunks[-2:] = [before + own]
            return
        size = sum(u.tokens for u in own)
        protected = chunks[-3][-1].end if len(chunks) > 2 else 0  # the overlap `before` starts with
        while size < self.min:
            unit = before[-1]
            only = len(before) < 2 or before[-2].start < protected  # `before`'s last own unit
            if only or size + unit.tokens > self.max // 2:
                finer = self._finer(unit)
                if not finer:
                    break
                before[-1:] = finer
                continue
            own.insert(0, before.pop())
            size += unit.tokens
        if size < self.min:
            return
        kept = sum(u.tokens for u in before)
        budget = min(self.overlap, kept // 2, self.max - size)
        chunks[-2:] = [before, self._tail(before, budget, self._barrier(own[0].start)) + own]

    def _barrier(self, position: int) -> int:
        """Where the section holding `position` begins."""
        return self.starts[bisect.bisect_right(self.starts, position) - 1]

    def _finer(self, unit: _Unit) -> list[_Unit]:
        """The unit cut at the next finer level that splits it (down to words), counted."""
        spans, level = self._refine(unit, _WORD)
        if not spans:
            return []
        counts = self.count([self.text[s:e] for s, e in spans])
        return [_Unit(s, e, n, level) for (s, e), n in zip(spans, counts, strict=True)]

    def _units(self) -> Iterator[_Unit]:
        """Paragraphs, or finer units where a paragraph is longer than a chunk."""
        batch: list[tuple[int, int]] = []
        for paragraph in _spans(self.text, 0, len(self.text), _PARAGRAPH):
            for window in windows(self.text, *paragraph, self.window):
                batch.extend(_trimmed(self.text, *window))
                if len(batch) >= _PARAGRAPH_BATCH:
                    yield from self._fit_all(batch, _PARAGRAPH)
                    batch = []
        yield from self._fit_all(batch, _PARAGRAPH)

    def _fit_all(self, spans: list[tuple[int, int]], level: int) -> Iterator[_Unit]:
        """Count spans in one call; split those longer than a chunk."""
        if not spans:
            return
        counts = self.count([self.text[s:e] for s, e in spans])
        for (start, end), tokens in zip(spans, counts, strict=True):
            unit = _Unit(start, end, tokens, level)
            if tokens <= self.max or end - start <= 1:
                yield unit
            else:
                finer, finer_level = self._refine(unit, _CHARS)
                yield from self._fit_all(finer, finer_level)

    def _refine(self, unit: _Unit, finest: int) -> tuple[list[tuple[int, int]], int]:
        """Spans of the next level that splits the unit into several pieces (or none)."""
        level = unit.level
        while level < finest:
            level += 1
            if level == _CHARS:
                return self._char_spans(unit), level
            spans = list(_spans(self.text, unit.start, unit.end, level))
            if len(spans) > 1:
                return spans, level
        return [], level

    def _char_spans(self, unit: _Unit) -> list[tuple[int, int]]:
        """Cut an over-long word into pieces sized to fit a chunk."""
        length = unit.end - unit.start
        size = max(1, length * self.max // max(unit.tokens, 1) // 2)
        return [(s, min(s + size, unit.end)) for s in range(unit.start, unit.end, size)]

    def _tail(self, units: list[_Unit], budget: int, barrier: int) -> list[_Unit]:
        """The end of a chunk to repeat at the start of the next: whole units within budget,
        none before `barrier` (the start of the next chunk's section)."""
        taken: list[_Unit] = []
        index = len(units) - 1
        while index >= 0 and budget > 0 and units[index].start >= barrier:
            unit = units[index]
            if unit.tokens <= budget:
                taken.append(unit)
                budget -= unit.tokens
                index -= 1
                continue
            if taken:  # stop at a sentence (or coarser) boundary rather than mid-sentence
                break
            units = self._finer(unit)
            if not units:
                break
            index = len(units) - 1
        taken.reverse()
        return taken


def _draft(units: list[_Unit]) -> tuple[int, int, int]:
    """(start, end, tokens) of a chunk's units."""
    return units[0].start, units[-1].end, sum(u.tokens for u in units)


def _spans(text: str, start: int, end: int, level: int) -> Iterator[tuple[int, int]]:
    """Non-blank pieces of text[start:end] between the separators of a level, whitespace trimmed."""
    position = start
    for match in _SEPARATORS[level].finditer(text, start, end):
        yield from _trimmed(text, position, match.start())
        position = match.end()
    yield from _trimmed(text, position, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The span without surrounding whitespace, if anything is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end
