"""Split sections into overlapping, token-bounded chunks along the text's own structure."""

from __future__ import annotations

import bisect
import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from rag.markup import heading_line
from rag.schema import Chunk, Section

TokenCounter = Callable[[list[str]], list[int]]

# Levels of refinement: a paragraph splits into sentences, a sentence into lines, a line into
# words; a "word" longer than a whole chunk (a hash, a base64 blob) is cut into characters.
_PARAGRAPH, _SENTENCE, _LINE, _WORD, _CHARS = range(5)
_SEPARATORS = {
    _PARAGRAPH: re.compile(r"\n[^\S\n]*\n\s*"),
    _SENTENCE: re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'”’)\]])\s+"),
    _LINE: re.compile(r"\s*\n\s*"),
    _WORD: re.compile(r"\s+"),
}
_PARAGRAPH_BATCH = 128  # paragraphs counted per call of count_tokens
_FLUSH_AT = 32  # drafts checked per call of count_tokens before they are yielded
_JOIN = "\n\n"  # between the texts of sections (PDF pages) chunked together
_GROUP_PARTS = 32  # a group of sections chunked together takes no more than this many


def chunk_id(doc_id: str, version: str, position: int, text: str) -> str:
    """Deterministic 32-hex-digit id of a chunk."""
    key = f"{doc_id}\0{version}\0{position}\0{text}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def chunk_sections(sections: Iterable[Section], *, doc_id: str, version: str, source: str,
                   count_tokens: TokenCounter, max_tokens: int = 200, overlap: int = 40,
                   min_tokens: int | None = None) -> Iterator[Chunk]:
    """Chunks of at most max_tokens tokens, overlapping within a section, in document order.

    No chunk has fewer than min_tokens tokens (default: a quarter of max_tokens) unless the
    whole document is that small: a small section joins the one before it, or leads the
    subsections that follow it (at the start of a document: the section after it), with its
    heading as a line of the text; the chunk keeps the heading of the first section in it. The
    last piece of a long section takes text from the piece before it. Whole PDF pages that fit
    one chunk together share it."""
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise ValueError(f"overlap must be in [0, max_tokens), got {overlap}")
    minimum = max_tokens // 4 if min_tokens is None else min_tokens
    if not 0 <= minimum <= max_tokens // 2:
        raise ValueError(f"min_tokens must be in [0, max_tokens // 2], got {min_tokens}")
    chunker = _Chunker(doc_id, version, source, count_tokens, max_tokens, overlap, minimum)
    return chunker.run(sections)


@dataclass(slots=True)
class _Unit:
    """A span [start, end) of a section's text, its token count and how it was cut."""

    start: int
    end: int
    tokens: int
    level: int


@dataclass(slots=True)
class _Part:
    """A section waiting in a group of sections that are chunked together."""

    text: str
    tokens: int
    page: int | None
    heading: tuple[str, ...]


@dataclass(slots=True)
class _Draft:
    """A chunk before its token count is checked and it gets a position."""

    text: str
    tokens: int
    page: int | None
    page_end: int | None
    heading: tuple[str, ...]


class _Chunker:
    """Streams sections in, chunks out; holds back one group of sections at a time."""

    def __init__(self, doc_id: str, version: str, source: str, count: TokenCounter,
                 max_tokens: int, overlap: int, min_tokens: int) -> None:
        self.doc_id = doc_id
        self.version = version
        self.source = source
        self.count = count
        self.max = max_tokens
        self.overlap = overlap
        self.min = min_tokens
        self.position = 0
        self.pending: list[_Draft] = []

    def run(self, sections: Iterable[Section]) -> Iterator[Chunk]:
        """Group small sections with a neighbour, then chunk each group in order."""
        group: list[_Part] = []
        total = 0
        held: _Part | None = None  # a small section: it joins the group, or leads its children
        for part in self._parts(sections):
            if held is not None:
                if _leads(held, part):
                    yield from self._emit(group)
                    group, total = [held], held.tokens
                else:
                    group.append(held)
                    total += held.tokens
                held = None
            if group and part.tokens < self.min <= total and len(group) < _GROUP_PARTS:
                held = part
                continue
            if group and self._joins(group, total, part):
                group.append(part)
                total += part.tokens
                continue
            if group:
                yield from self._emit(group)
            group, total = [part], part.tokens
        if held is not None:
            group.append(held)
        if group:
            yield from self._emit(group)

    def _parts(self, sections: Iterable[Section]) -> Iterator[_Part]:
        """The sections with text, counted."""
        for section in sections:
            text = section.text.strip()
            if text:
                yield _Part(text, self.count([text])[0], section.page, section.heading)

    def _joins(self, group: list[_Part], total: int, part: _Part) -> bool:
        """Whether a section joins the group before it rather than starting a new one."""
        last = group[-1]
        if len(group) >= _GROUP_PARTS:  # bounds memory on a long run of tiny sections
            return False
        if total < self.min or part.tokens < self.min:
            return True
        return (part.page is not None and last.page is not None and part.heading == last.heading
                and total + part.tokens <= self.max)

    def _emit(self, group: list[_Part]) -> Iterator[Chunk]:
        """Chunk a group's sections as one text; a section after the first starts with its
        heading as a line of text."""
        pieces: list[str] = []
        starts: list[int] = []
        offset = 0
        for index, part in enumerate(group):
            line = heading_line(group[index - 1].heading, part.heading) if index else ""
            piece = f"{line}\n{part.text}" if line else part.text
            offset += len(_JOIN) if index else 0
            starts.append(offset)
            pieces.append(piece)
            offset += len(piece)
        text = _JOIN.join(pieces)
        splitter = _Splitter(text, self.count, self.max, self.overlap, self.min, starts)
        for start, end, tokens in splitter.drafts():
            first = group[bisect.bisect_right(starts, start) - 1]
            last = group[bisect.bisect_right(starts, end - 1) - 1]
            self.pending.append(_Draft(text[start:end], tokens, first.page, last.page,
                                       first.heading))
            if len(self.pending) >= _FLUSH_AT:
                yield from self._flush()
        yield from self._flush()

    def _flush(self) -> Iterator[Chunk]:
        """Check the queued drafts' real token counts in one call, re-split any too long."""
        drafts, self.pending = self.pending, []
        while drafts:
            counts = self.count([d.text for d in drafts])
            retry: list[_Draft] = []
            for draft, tokens in zip(drafts, counts, strict=True):
                if tokens <= self.max or len(draft.text) <= 1:
                    if retry:  # keep document order: re-split pieces go first
                        retry.append(draft)
                        continue
                    yield self._chunk(draft)
                    continue
                budget = max(1, self.max * self.max // tokens - 1)
                pieces = _Splitter(draft.text, self.count, budget, 0, 0, [0]).drafts()
                retry.extend(_Draft(draft.text[s:e], n, draft.page, draft.page_end,
                                    draft.heading) for s, e, n in pieces)
            drafts = retry

    def _chunk(self, draft: _Draft) -> Chunk:
        """Give a draft its position and id."""
        position = self.position
        self.position += 1
        return Chunk(
            id=chunk_id(self.doc_id, self.version, position, draft.text), doc_id=self.doc_id,
            source=self.source, text=draft.text, position=position, page=draft.page,
            page_end=draft.page_end, heading=draft.heading,
        )


class _Splitter:
    """Packs a text greedily into chunks of whole units; no chunk is small if it can be helped.

    `starts` are the offsets where the sections of the text begin: overlap never reaches back
    across one."""

    def __init__(self, text: str, count: TokenCounter, max_tokens: int, overlap: int,
                 min_tokens: int, starts: list[int]) -> None:
        self.text = text
        self.count = count
        self.max = max_tokens
        self.overlap = overlap
        self.min = min_tokens
        self.starts = starts

    def drafts(self) -> Iterator[tuple[int, int, int]]:
        """(start, end, tokens) of each chunk of the text, in order."""
        chunks = self._pack()
        self._fix_tail(chunks)
        for units in chunks:
            yield units[0].start, units[-1].end, sum(u.tokens for u in units)

    def _pack(self) -> list[list[_Unit]]:
        """Chunks as lists of units, each chunk starting with the overlap from the one before."""
        chunks: list[list[_Unit]] = []
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
                chunks.append(current)
                budget = min(self.overlap, total // 2, self.max - unit.tokens)
                current = self._tail(current, budget, self._barrier(unit.start))
                total = sum(u.tokens for u in current)
            current.append(unit)
            total += unit.tokens
        if current:
            chunks.append(current)
        return chunks

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
        for span in _spans(self.text, 0, len(self.text), _PARAGRAPH):
            batch.append(span)
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


def _leads(parent: _Part, part: _Part) -> bool:
    """Whether `part` is under `parent`'s heading (a subsection of it)."""
    size = len(parent.heading)
    return len(part.heading) > size and part.heading[:size] == parent.heading


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
