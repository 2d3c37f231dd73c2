"""What the viewer shows for one cited chunk: its PDF page with the passage boxed, or the
section around it with the passage marked.

A PDF whose original file is kept (rag.files) shows as its rendered page (rag.viewer.pdf_page);
every other document, or a PDF whose file is not kept, shows as text: the chunks of the same
section (heading path, slide, sheet rows) around the cited one, their overlaps trimmed, the
cited chunk marked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rag.schema import DocumentInfo, Hit
from rag.viewer.pdf_page import PageView, best_page, render_page

if TYPE_CHECKING:
    from rag.kb import KnowledgeBase

CONTEXT_CHUNKS = 2  # chunks shown before and after the cited one, within its section
NOT_KEPT = ("The original file is not kept (it was added before files were kept, or FILES_DIR "
            "is empty): add it again to see its pages and download it.")


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch of the section's text; `cited` is the passage itself."""

    text: str
    cited: bool = False


@dataclass(frozen=True, slots=True)
class Passage:
    """One cited chunk as the viewer shows it."""

    hit: Hit
    kind: str  # the document's kind: pdf, markdown, docx, ...
    page: PageView | None = None  # a PDF page, rendered, with the passage's boxes
    pieces: list[Piece] = field(default_factory=list)  # otherwise: the section's text
    original: Path | None = None  # the kept file, for "Open original"
    note: str = ""  # what the reader should know (the file is not kept)

    @property
    def title(self) -> str:
        """The document's name."""
        return self.hit.source

    @property
    def where(self) -> str:
        """Where the passage is: the page shown, or the chunk's location."""
        if self.page is not None:
            heading = f", {self.hit.heading}" if self.hit.heading else ""
            return f"p. {self.page.page} of {self.page.pages}{heading}"
        return self.hit.location()


def kept_file(kb: KnowledgeBase, info: DocumentInfo | None) -> Path | None:
    """The kept original of a document, if any."""
    if kb.files is None or info is None:
        return None
    return kb.files.path(info.doc_id, str(info.meta.get("version", "")))


def open_passage(kb: KnowledgeBase, hit: Hit, *, page: int | None = None,
                 zoom: float = 1.0) -> Passage:
    """The passage of `hit` in its document: on `page` (default: the page holding most of
    it) at `zoom` for a kept PDF, else as its section's text."""
    info = kb.store.get_document(hit.doc_id)
    original = kept_file(kb, info)
    kind = info.kind if info is not None else ""
    if kind == "pdf" and original is not None:
        if page is None:
            first = hit.page or 1
            page = best_page(original, hit.text, first, hit.page_end or first)
        return Passage(hit, kind, page=render_page(original, page, hit.text, zoom=zoom),
                       original=original)
    note = NOT_KEPT if original is None else ""
    around = (hit.position - CONTEXT_CHUNKS, hit.position + CONTEXT_CHUNKS)
    chunks = kb.store.document_chunks(hit.doc_id, around)  # the neighbours only, not all
    return Passage(hit, kind, pieces=section_pieces(chunks, hit), original=original, note=note)


def section_pieces(chunks: list[Hit], hit: Hit) -> list[Piece]:
    """The cited chunk with up to CONTEXT_CHUNKS neighbours each side from its section
    (same heading path), each neighbour without the text it shares with the next."""
    at = next((i for i, c in enumerate(chunks) if c.chunk_id == hit.chunk_id), None)
    if at is None:  # the document changed since the answer: show the passage as cited
        return [Piece(hit.text, True)]
    same = [i for i in range(max(0, at - CONTEXT_CHUNKS), min(len(chunks), at + CONTEXT_CHUNKS + 1))
            if chunks[i].heading == hit.heading]
    texts = [hit.text if i == at else chunks[i].text for i in same]
    cited = [i == at for i in same]
    for j in range(1, len(texts)):
        shared = overlap(texts[j - 1], texts[j])
        if cited[j]:  # the passage stays whole: the text before it gives up the overlap
            texts[j - 1] = texts[j - 1][:len(texts[j - 1]) - shared]
        else:
            texts[j] = texts[j][shared:]
    return [Piece(t, c) for t, c in zip(texts, cited, strict=True) if t.strip() or c]


def overlap(before: str, after: str, limit: int = 2000) -> int:
    """Length of the longest start of `after` that ends `before` (the chunker's overlap)."""
    for size in range(min(len(before), len(after), limit), 0, -1):
        if before.endswith(after[:size]):
            return size
    return 0
