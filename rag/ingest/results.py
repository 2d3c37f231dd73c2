"""What ingest says about each file, and the checks and text it shares with the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from rag.errors import LoaderError
from rag.schema import Chunk
from rag.store import MAX_NAME_BYTES

Status = Literal["added", "replaced", "skipped", "failed"]


@dataclass(slots=True)
class IngestResult:
    """What happened to one file; `seconds` is the file's own time (its reading, and its share
    of the encoder and store batches it was in), not the whole group's."""

    source: str
    status: Status
    pages: int | None = None
    chunks: int = 0
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def displayable(source: str) -> str:
    """The name as it can be shown: bytes that were not UTF-8 become U+FFFD."""
    return source.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def check_name(source: str) -> None:
    """Raise LoaderError for a document name the store cannot keep, before any work is done."""
    shown = displayable(source)
    if shown != source:
        raise LoaderError(shown, "the file name is not valid UTF-8; rename the file and add it "
                                 "again")
    size = len(source.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise LoaderError(shown[:80] + "…", f"the name is {size} bytes long (with its folders); "
                          f"at most {MAX_NAME_BYTES} are kept, so shorten it")


def embedding_text(chunk: Chunk) -> str:
    """What the encoder and BM25 see: the heading path, then the chunk text."""
    heading = chunk.heading_path
    return f"{heading}\n{chunk.text}" if heading else chunk.text
