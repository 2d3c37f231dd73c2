"""EPUB e-books: the chapters in reading (spine) order, their headings the heading path.

ebooklib reads the package (manifest, spine, table of contents); each chapter's XHTML goes
through the HTML reader (rag.formats.html: decoded by its declared charset, scripts and
navigation dropped) with one outline for the whole book, so a chapter file that continues
the chapter before it stays under its heading. A chapter file without headings of its own is
headed by its entry in the table of contents; the book's own title is not a heading level
(the document's name says it)."""

from __future__ import annotations

import posixpath
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from io import BytesIO

import ebooklib
from ebooklib import epub
from lxml import etree

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed
from rag.formats.html import HEADINGS, Outline, clean, content_root, decode_html, nonempty, parse
from rag.formats.office_xml import check_parts, damaged
from rag.schema import Section

_LABEL = "EPUB"
# What ebooklib raises on a damaged book: ZIP errors, a missing part (KeyError), XML that does
# not parse, and the errors of its parsing code meeting an unexpected structure (a missing
# element read as None: AttributeError, TypeError, IndexError, ValueError).
_EPUB_ERRORS = (epub.EpubException, zipfile.BadZipFile, KeyError, etree.XMLSyntaxError,
                AttributeError, TypeError, IndexError, ValueError, OSError)


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A book's chapters as sections; raises LoaderError when it is damaged or has no
    chapter, and (while reading) when no chapter holds text."""
    check_parts(data, source, _LABEL)
    book = _open(data, source)
    chapters, missing = _chapters(book)
    if not chapters:
        raise LoaderError(source, "empty e-book (its reading order lists no chapters)")
    titles = [value for value, _ in book.get_metadata("DC", "title") if value]
    outline = Outline(skip=frozenset(" ".join(t.split()).casefold() for t in titles))
    toc = _toc_titles(book.toc)
    meta = {"missing_chapters": missing} if missing else {}
    sections = _sections(chapters, toc, outline, source)
    return Parsed("epub", None, nonempty(sections, source), meta)


def _open(data: bytes, source: str) -> epub.EpubBook:
    try:
        with warnings.catch_warnings():
            # ebooklib warns of its options' future defaults
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return epub.read_epub(BytesIO(data), {"ignore_ncx": False})
    except _EPUB_ERRORS as exc:
        raise damaged(source, _LABEL, exc) from exc


def _chapters(book: epub.EpubBook) -> tuple[list[epub.EpubItem], list[str]]:
    """The spine's documents in reading order, and the ids it lists that the book lacks."""
    chapters: list[epub.EpubItem] = []
    missing: list[str] = []
    for entry in book.spine:
        idref = entry[0] if isinstance(entry, tuple) else entry
        item = book.get_item_with_id(idref)
        if item is None:
            missing.append(str(idref))
        elif item.get_type() == ebooklib.ITEM_DOCUMENT:
            chapters.append(item)
    return chapters, missing


def _toc_titles(toc: Iterable[object]) -> dict[str, str]:
    """File name -> the title of the first table of contents entry pointing into it."""
    titles: dict[str, str] = {}
    stack = [iter(toc)]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        if isinstance(entry, tuple) and len(entry) == 2:  # (section, its entries)
            entry, children = entry
            stack.append(iter(children))
        href = getattr(entry, "href", "") or ""
        title = " ".join(str(getattr(entry, "title", "") or "").split())
        if href and title:
            titles.setdefault(posixpath.normpath(href.split("#", 1)[0]), title)
    return titles


def _sections(chapters: list[epub.EpubItem], toc: dict[str, str], outline: Outline,
              source: str) -> Iterator[Section]:
    for item in chapters:
        content = item.content or b""
        if not content.strip():
            continue
        text, _ = decode_html(content, source)
        root = clean(content_root(parse(text, source)), page=False)  # no page chrome
        title = toc.get(posixpath.normpath(item.get_name()))
        if title and root.find(HEADINGS) is None:
            outline.enter(1, title)
        yield from outline.sections(root)
