"""Split sections into overlapping, token-bounded chunks along the text's own structure."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

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
_PAGE_JOIN = "\n\n"  # between the texts of PDF pages merged into one chunk


def chunk_id(doc_id: str, version: str, position: int, text: str) -> str:
    """Deterministic 32-hex-digit id of a chunk."""
    key = f"{doc_id}\0{version}\0{position}\0{text}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def chunk_sections(sections: Iterable[Section], *, doc_id: str, version: str, source: str,
                   count_tokens: TokenCounter, max_tokens: int = 200,
                   overlap: int = 40) -> Iterator[Chunk]:
    """Chunks of at most max_tokens tokens, overlapping within a section, in document order."""
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    if not 0 <= overlap < max_tokens:
        raise ValueError(f"overlap must be in [0, max_tokens), got {overlap}")
    chunker = _Chunker(doc_id, version, source, count_tokens, max_tokens, overlap)
    return chunker.run(sections)


@dataclass(slots=True)
class _Unit:
    """A span [start, end) of a section's text, its token count and how it was cut."""

    start: int
    end: int
    tokens: int
    level: int


@dataclass(slots=True)
class _Draft:
    """A chunk before its token count is checked and it gets a position."""

    text: str
    tokens: int
    page: int | None
    page_end: int | None
    heading: tuple[str, ...]


class _Chunker:
    """Streams sections in, chunks out; holds back at most one section's worth of drafts."""

    def __init__(self, doc_id: str, version: str, source: str, count: TokenCounter,
                 max_tokens: int, overlap: int) -> None:
        self.doc_id = doc_id
        self.version = version
        self.source = source
        self.count = count
        self.max = max_tokens
        self.overlap = overlap
        self.position = 0
        self.pending: list[_Draft] = []
        self.held: _Draft | None = None  # a whole small page that the next page may join

    def run(self, sections: Iterable[Section]) -> Iterator[Chunk]:
        """Chunk every section in order."""
        for section in sections:
            if not section.text.strip():
                continue
            pieces = _Splitter(section.text, self.count, self.max, self.overlap).drafts()
            first = next(pieces, None)
            if first is None:
                continue
            second = next(pieces, None)
            if second is None:
                self._single(_Draft(first[0], first[1], section.page, section.page,
                                    section.heading))
            else:
                self._release_held()
                for text, tokens in itertools.chain((first, second), pieces):
                    self.pending.append(_Draft(text, tokens, section.page, section.page,
                                               section.heading))
                    if len(self.pending) >= _FLUSH_AT:
                        yield from self._flush()
            yield from self._flush()
        self._release_held()
        yield from self._flush()

    def _single(self, draft: _Draft) -> None:
        """A section that fits one chunk: join it to the held page or hold it for the next."""
        held = self.held
        if (held is not None and draft.page is not None and held.heading == draft.heading
                and held.tokens + draft.tokens <= self.max):
            held.text = f"{held.text}{_PAGE_JOIN}{draft.text}"
            held.tokens += draft.tokens
            held.page_end = draft.page_end
            return
        self._release_held()
        if draft.page is None:
            self.pending.append(draft)
        else:
            self.held = draft

    def _release_held(self) -> None:
        """Queue the held page: nothing more will join it."""
        if self.held is not None:
            self.pending.append(self.held)
            self.held = None

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
                pieces = _Splitter(draft.text, self.count, budget, 0).drafts()
                retry.extend(_Draft(text, n, draft.page, draft.page_end, draft.heading)
                             for text, n in pieces)
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
    """Packs one section's text greedily into chunks of whole units."""

    def __init__(self, text: str, count: TokenCounter, max_tokens: int, overlap: int) -> None:
        self.text = text
        self.count = count
        self.max = max_tokens
        self.overlap = overlap

    def drafts(self) -> Iterator[tuple[str, int]]:
        """(text, tokens) of each chunk of the section, in order."""
        current: list[_Unit] = []
        total = 0
        for unit in self._units():
            if total + unit.tokens <= self.max:
                current.append(unit)
                total += unit.tokens
                continue
            if current:
                yield self._slice(current), total
                budget = min(self.overlap, total // 2, self.max - unit.tokens)
                current = self._tail(current, budget)
                total = sum(u.tokens for u in current)
            current.append(unit)
            total += unit.tokens
        if current:
            yield self._slice(current), total

    def _slice(self, units: list[_Unit]) -> str:
        """The section text the units cover, separators included."""
        return self.text[units[0].start:units[-1].end]

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

    def _tail(self, units: list[_Unit], budget: int) -> list[_Unit]:
        """The end of a chunk to repeat at the start of the next: whole units within budget."""
        taken: list[_Unit] = []
        index = len(units) - 1
        while index >= 0 and budget > 0:
            unit = units[index]
            if unit.tokens <= budget:
                taken.append(unit)
                budget -= unit.tokens
                index -= 1
                continue
            if taken:  # stop at a sentence (or coarser) boundary rather than mid-sentence
                break
            spans, level = self._refine(unit, _WORD)
            if not spans:
                break
            counts = self.count([self.text[s:e] for s, e in spans])
            units = [_Unit(s, e, n, level) for (s, e), n in zip(spans, counts, strict=True)]
            index = len(units) - 1
        taken.reverse()
        return taken


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
