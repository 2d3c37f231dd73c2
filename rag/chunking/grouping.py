"""Sections grouped with their neighbours, packed into chunks, counted once more and numbered.

Small sections join the one before them or lead their subsections; whole PDF pages that fit
one chunk share it. Each group's text goes to the token packer (rag.chunking.packing); the
drafts it returns are checked against the real token counter in batches and re-split if long.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rag.chunking.packing import CHARS_PER_TOKEN, BoundedCounter, Splitter, TokenCounter
from rag.markup import heading_line
from rag.schema import Chunk, Section

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
    one chunk together share it. Memory stays bounded for texts of any length, a paragraph of
    many megabytes included (see rag.chunking.packing)."""
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
        # a chunk holds at most max_tokens * CHARS_PER_TOKEN characters: longer paragraphs are
        # cut into windows of that size before they are counted
        self.window = max_tokens * CHARS_PER_TOKEN
        self.count = BoundedCounter(count, self.window)
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
        splitter = Splitter(text, self.count, self.max, self.overlap, self.min, starts,
                            self.window)
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
                pieces = Splitter(draft.text, self.count, budget, 0, 0, [0],
                                  self.window).drafts()
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


def _leads(parent: _Part, part: _Part) -> bool:
    """Whether `part` is under `parent`'s heading (a subsection of it)."""
    size = len(parent.heading)
    return len(part.heading) > size and part.heading[:size] == parent.heading

