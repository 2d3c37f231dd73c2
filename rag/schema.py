"""Plain data types shared by loading, chunking, the store and retrieval."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text from one place of a document: one PDF page, one Markdown section."""

    text: str
    page: int | None = None
    heading: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document sized for the embedding model."""

    id: str
    doc_id: str
    source: str
    text: str
    position: int
    page: int | None = None
    page_end: int | None = None
    heading: tuple[str, ...] = ()

    @property
    def heading_path(self) -> str:
        """The heading path joined for display, e.g. 'FAQ > Installation'."""
        return " > ".join(self.heading)


@dataclass(slots=True)
class Hit:
    """A retrieved chunk with the scores that ranked it."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    position: int
    page: int | None
    page_end: int | None
    heading: str
    score: float
    dense_score: float | None = None
    bm25_score: float | None = None
    rank: int = 0
    rerank_score: float | None = None  # the reranker's relevance, when a reranker ran
    sentence_score: float | None = None  # cosine of the chunk's closest sentence (hybrid)
    # The chunk's sentence vectors as stored (rag.sentences), for scoring; not part of to_dict.
    sentences: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the sentence vectors), with its `location`."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sentences"}
        return data | {"location": self.location()}

    @property
    def page_label(self) -> str:
        """'p. 3', 'pp. 3-5', or '' when the chunk has no page."""
        if self.page is None:
            return ""
        if self.page_end in (None, self.page):
            return f"p. {self.page}"
        return f"pp. {self.page}-{self.page_end}"

    def location(self, sep: str = ", ") -> str:
        """Where the chunk is: its page label and heading path, whichever it has."""
        return sep.join(part for part in (self.page_label, self.heading) if part)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document as the knowledge base records it."""

    doc_id: str
    source: str
    sha256: str
    kind: str
    pages: int | None
    chunks: int
    added_at: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with its `notes`."""
        return asdict(self) | {"notes": self.notes}

    @property
    def notes(self) -> str:
        """How the document was read, where a reader should know: 'OCR: pages 1-3, 7'."""
        pages = self.meta.get("ocr_pages") or []
        if not pages:
            return ""
        if self.kind == "image" and len(pages) == (self.pages or 1):
            return "OCR"
        return f"OCR: {page_ranges(pages)}"


def page_ranges(pages: list[int]) -> str:
    """'page 3', 'pages 1-3, 7': page numbers as ranges."""
    numbers = sorted(set(pages))
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"{'page' if len(numbers) == 1 else 'pages'} {text}"
