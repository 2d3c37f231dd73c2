"""The knowledge base's document formats: the one list of types, and the reader of each.

Each format has a module of its own with a reader `read(data, source, limits) -> Parsed`
(rag.formats.base); a file's format is found from its content first and its extension second
(rag.formats.sniff), and the reader is imported when a file of its kind is first read, so
the libraries of formats nobody uses are never loaded."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import PurePath

from rag.formats.base import Limits, Parsed, Reader

__all__ = [
    "FORMATS",
    "SUPPORTED_EXTENSIONS",
    "SUPPORTED_TYPES",
    "Format",
    "Limits",
    "Parsed",
    "format_for",
    "reader_for",
]


@dataclass(frozen=True, slots=True)
class Format:
    """A document type: its kind (stored with each document), how it is named to users, its
    file name extensions, and the module holding its reader."""

    kind: str
    label: str
    extensions: tuple[str, ...]
    module: str


FORMATS: tuple[Format, ...] = (
    Format("pdf", "PDF", (".pdf",), "rag.formats.pdf"),
    Format("markdown", "Markdown", (".md", ".markdown", ".mdx"), "rag.formats.markdown"),
    Format("text", "text", (".txt", ".text", ".rst"), "rag.formats.text"),
    Format("docx", "Word", (".docx",), "rag.formats.docx"),
    Format("odt", "OpenDocument text", (".odt",), "rag.formats.odt"),
    Format("pptx", "PowerPoint", (".pptx",), "rag.formats.pptx"),
    Format("xlsx", "Excel", (".xlsx", ".xlsm"), "rag.formats.xlsx"),
    Format("csv", "CSV", (".csv", ".tsv"), "rag.formats.csv"),
    Format("html", "HTML", (".html", ".htm", ".xhtml"), "rag.formats.html"),
    Format("epub", "EPUB", (".epub",), "rag.formats.epub"),
    Format("email", "e-mail", (".eml",), "rag.formats.email"),
    Format("image", "image", (".png", ".jpg", ".jpeg", ".tif", ".tiff"), "rag.formats.image"),
)
_BY_KIND = {f.kind: f for f in FORMATS}
_BY_EXTENSION = {extension: f for f in FORMATS for extension in f.extensions}

SUPPORTED_EXTENSIONS = frozenset(_BY_EXTENSION)
_LISTED = [f"{f.label} ({', '.join(f.extensions)})" for f in FORMATS]
# "PDF (.pdf), Markdown (.md, .markdown, .mdx), ... or image (.png, ...) files"
SUPPORTED_TYPES = f"{', '.join(_LISTED[:-1])} or {_LISTED[-1]} files"


def format_for(kind: str | None = None, *, name: str | PurePath | None = None) -> Format | None:
    """The format of a kind, or of a file name's extension; None when there is none."""
    if kind is not None:
        return _BY_KIND.get(kind)
    return _BY_EXTENSION.get(PurePath(name or "").suffix.lower())


def reader_for(kind: str) -> Reader:
    """The reader of a format, its module imported on first use."""
    return importlib.import_module(_BY_KIND[kind].module).read
