"""Read a document file into lazily produced sections (the readers are in rag.formats); which
files are documents, and the names they are stored under."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from rag.errors import LoaderError
from rag.formats import SUPPORTED_EXTENSIONS, SUPPORTED_TYPES, Limits, reader_for
from rag.formats.markdown import markdown_sections as markdown_sections  # re-exported
from rag.formats.sniff import detect
from rag.pdf import normalise_pdf_text as normalise_pdf_text  # re-exported
from rag.pdf import without_running_lines as without_running_lines  # re-exported
from rag.schema import DocumentInfo, Section

__all__ = ["SUPPORTED_EXTENSIONS", "SUPPORTED_TYPES", "FoundFiles", "Limits", "LoadedDocument",
           "check_size", "check_type", "document_name", "find_files", "is_supported",
           "iter_files", "load", "parse"]

_MB = 1 << 20


@dataclass
class LoadedDocument:
    """A file that was read successfully; its sections are produced lazily."""

    source: str
    kind: str
    sha256: str
    pages: int | None
    sections: Iterator[Section] = field(repr=False)
    # filled while the sections are read (e.g. "ocr_pages"); stored with the document
    meta: dict[str, Any] = field(default_factory=dict)

    def info(self, name: str, chunks: int) -> DocumentInfo:
        """The record of this document, stored as `name` with `chunks` chunks, as of now."""
        return DocumentInfo(doc_id=name, source=name, sha256=self.sha256, kind=self.kind,
                            pages=self.pages, chunks=chunks, added_at=time.time(),
                            meta=dict(self.meta))


def load(path: Path, source: str | None = None, *, max_file_mb: float | None = None,
         limits: Limits | None = None) -> LoadedDocument:
    """Read one document file; raises LoaderError, also for a file whose type is not one of
    SUPPORTED_EXTENSIONS or that is larger than `max_file_mb` (before reading it), and for
    whatever its reader refuses within `limits` (pages, PDF content, OCR: rag.formats.base).
    The format is found from the content first, the extension second (rag.formats.sniff)."""
    path = Path(path)
    source = source or path.name
    if path.is_file():  # a folder or a missing path fails below, with the OS's reason
        check_type(path, source)
        check_size(path.stat().st_size, source, max_file_mb)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(source, f"cannot read file: {exc.strerror or exc}") from exc
    return parse(data, path.name, source, limits)


def parse(data: bytes, name: str, source: str, limits: Limits | None = None) -> LoadedDocument:
    """Read a file's content (named `name`, stored as `source`) as a document; see load()."""
    if not data.strip():
        raise LoaderError(source, "empty file")
    kind = detect(data, name, source)
    parsed = reader_for(kind)(data, source, limits or Limits())
    return LoadedDocument(source, parsed.kind, hashlib.sha256(data).hexdigest(), parsed.pages,
                          parsed.sections, parsed.meta)


def is_supported(name: str | PurePath) -> bool:
    """Whether a file name has one of the knowledge base's document types."""
    return PurePath(name).suffix.lower() in SUPPORTED_EXTENSIONS


def check_size(size: int, source: str, max_file_mb: float | None) -> None:
    """Raise LoaderError if `size` bytes is over the limit of `max_file_mb` MB (2**20 bytes)."""
    if max_file_mb is not None and size > max_file_mb * _MB:
        raise LoaderError(source, f"the file is {size / _MB:.1f} MB, more than the limit of "
                          f"{max_file_mb:g} MB (MAX_FILE_MB); split it, or raise MAX_FILE_MB")


def check_type(name: str | PurePath, source: str | None = None) -> None:
    """Raise LoaderError unless the file name has one of the knowledge base's types."""
    if not is_supported(name):
        suffix = PurePath(name).suffix.lower()
        kind = f"({suffix})" if suffix else "(no extension)"
        raise LoaderError(source or PurePath(name).name,
                          f"unsupported file type {kind}: add {SUPPORTED_TYPES}")


def document_name(path: str | PurePath, root: str | PurePath | None = None) -> str:
    """The name a file is stored under, whichever way it comes in (CLI, web upload, API).

    The rule: a file found inside a folder that was given is named by its path relative to that
    folder, with "/" between folders (`rag ingest docs/` stores docs/reference/index.md as
    "reference/index.md"); a file given by itself, on the command line or uploaded, is named by
    its file name alone ("index.md").
    """
    path = PurePath(path)
    if root is None:
        return path.name
    return path.relative_to(root).as_posix()


@dataclass(slots=True)
class FoundFiles:
    """What a list of files and folders holds: (path, document name) of every document, and
    the files inside the folders that were passed over because they are of another type."""

    files: list[tuple[Path, str]]
    ignored: list[Path]

    def ignored_summary(self) -> str:
        """'3 files of other types (.png ×2, .yaml)', or '' when none were ignored."""
        if not self.ignored:
            return ""
        kinds = Counter(p.suffix.lower() or "no extension" for p in self.ignored)
        listed = ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in kinds.most_common())
        files = "file" if len(self.ignored) == 1 else "files"
        return f"{len(self.ignored)} {files} of other types ({listed})"


def find_files(paths: Iterable[Path | str]) -> FoundFiles:
    """Expand folders recursively into the documents they hold, named by document_name; files
    given directly are kept whatever their type (load() then says what is wrong with them)."""
    found = FoundFiles([], [])
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            found.files.append((path, document_name(path)))
            continue
        for entry in _walk(path, set()):
            if entry.is_dir() or is_supported(entry):  # an unreadable folder: load() says why
                found.files.append((entry, document_name(entry, path)))
            else:
                found.ignored.append(entry)
    return found


def iter_files(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """(path, document name) of every document in the given files and folders (find_files)."""
    yield from find_files(paths).files


def _walk(folder: Path, seen: set[Path]) -> Iterator[Path]:
    """Non-hidden files under folder in sorted order; unreadable folders pass through."""
    resolved = folder.resolve()
    if resolved in seen:  # a symlink loop
        return
    seen.add(resolved)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        yield folder  # load() reports the OS reason for this entry alone
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, seen)
        elif entry.is_file():
            yield entry
