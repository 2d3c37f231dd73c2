"""Word (.docx) files, opened with python-docx: the body walked in document order, paragraphs
and tables as they come. Headings (styles Title and Heading 1-9, or an outline level) make
the heading path, list items keep their bullet ("- ") or number ("2. ", "a) "), tables become
rows (rag.formats.base.table_sections). Headers, footers, footnotes and comments are not read:
headers and footers repeat on every page (titles, dates, page numbers).

Pages: a file Word saved records where it laid out each page (w:lastRenderedPageBreak); then
every section has its page, a section running over pages is cut at each page, and the file's
page count is known. Without that record (files made by other programs) pages are None: page
breaks typed by hand alone would number the handbook's 872 pages 1 to 83."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import docx
from docx.document import Document as DocxDocument
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.exceptions import OpcError
from lxml import etree

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed, cell_text
from rag.formats.office_xml import (
    NS,
    Numbering,
    Outline,
    Styles,
    W,
    check_parts,
    damaged,
    lazily,
)
from rag.schema import Section

_LABEL = "Word"
# What python-docx and lxml raise on a damaged package: a missing part (KeyError), a main
# part of another type (ValueError), bad XML, a broken ZIP, an OPC error.
_ERRORS = (KeyError, ValueError, etree.XMLSyntaxError, OpcError, OSError)
# What a paragraph's text is made of, in document order; a paragraph inside it is in a text
# box (a line of its own). mc:Fallback repeats an mc:Choice for older programs.
_RUN_ITEMS = etree.XPath(
    ".//w:r[not(ancestor::mc:Fallback)]/*[self::w:t or self::w:tab or self::w:br or self::w:cr"
    " or self::w:noBreakHyphen or self::w:lastRenderedPageBreak]"
    " | .//w:p[not(ancestor::mc:Fallback)]", namespaces=NS)
_HAS_TEXT = etree.XPath("boolean(.//w:t[normalize-space()])", namespaces=NS)
_RECORDS_PAGES = etree.XPath("boolean(.//w:lastRenderedPageBreak)", namespaces=NS)
_SECTION_END = etree.XPath("boolean(./w:pPr/w:sectPr)", namespaces=NS)
_SECTION_TYPES = etree.XPath(".//w:pPr/w:sectPr | ./w:sectPr", namespaces=NS)
_PLAIN = {W + "tab": "\t", W + "cr": "\n", W + "noBreakHyphen": "-", W + "p": "\n"}
_MAX_SKIPPED_COLUMNS = 64  # empty cells written for the grid columns a row starts after
_CONTAINERS = {W + "sdt", W + "sdtContent", W + "customXml", W + "smartTag"}


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A Word file's sections; a damaged file fails with "damaged Word file (...)"."""
    check_parts(data, source, _LABEL)
    try:
        document = docx.Document(BytesIO(data))
        styles = Styles(document.styles.element)
        numbering = Numbering(_numbering_part(document))
    except _ERRORS as exc:
        raise damaged(source, _LABEL, exc) from exc
    body = document.element.body
    if not _HAS_TEXT(body):
        raise LoaderError(source, "no text in the Word file (only pictures or empty pages; "
                                  "scanned pages in a Word file are not read by OCR)")
    pages = None
    if _RECORDS_PAGES(body):  # a first walk counts the pages; the sections are dropped
        counter = _Walker(body, styles, Numbering(numbering.root), limits.table_chars, True)
        for _ in counter.sections():
            pass
        pages = counter.pager.page
    walker = _Walker(body, styles, numbering, limits.table_chars, pages is not None)
    return Parsed("docx", pages, lazily(walker.sections(),
                                        lambda exc: damaged(source, _LABEL, exc), _ERRORS))


def _numbering_part(document: DocxDocument) -> etree._Element | None:
    """The root of the file's numbering part, None when it has no numbered lists."""
    try:
        return document.part.part_related_by(RT.NUMBERING).element
    except KeyError:  # python-docx's numbering_part would fail making a new one
        return None


class _Walker:
    """The sections of a document body, in document order."""

    def __init__(self, body: etree._Element, styles: Styles, numbering: Numbering,
                 budget: int, paged: bool) -> None:
        self.body = body
        self.styles = styles
        self.numbering = numbering
        self.paged = paged
        self.pager = _Pager(_section_starts(body))
        self.outline = Outline(budget, 1 if paged else None)

    def sections(self) -> Iterator[Section]:
        """Every section of the body; the pager holds the page count at the end."""
        yield from self._blocks(self.body)
        yield from self.outline.flush()

    def _blocks(self, parent: etree._Element) -> Iterator[Section]:
        for child in parent.iterchildren(tag=etree.Element):
            if child.tag == W + "p":
                yield from self._paragraph(child)
            elif child.tag == W + "tbl":
                yield from self.outline.table(self._rows(child))
            elif child.tag in _CONTAINERS:  # content controls and custom XML wrap blocks
                yield from self._blocks(child)

    def _page(self) -> int | None:
        return self.pager.page if self.paged else None

    def _paragraph(self, p: etree._Element) -> Iterator[Section]:
        level, number = self.styles.paragraph(p)
        marker = self.numbering.marker(*number) if number else ""
        pieces = self._pieces(p)
        if level is not None:
            yield from self._heading(level, marker, pieces)
        else:
            item = bool(number)
            for page, text in _by_page(pieces):
                yield from self.outline.set_page(page)
                yield from self.outline.add(marker + text if item else text, item=item)
                marker = ""  # the rest of an item cut by a page break has no marker
        if _SECTION_END(p):
            self.pager.section_end()

    def _heading(self, level: int, marker: str, pieces: list[tuple[int | None, str]]
                 ) -> Iterator[Section]:
        title = " ".join("".join(text for _, text in pieces).split())
        if not title:
            return
        if marker.strip() != "-":  # a numbered heading keeps its number ("2.1 Scope")
            title = f"{marker}{title}"
        first = next((page for page, text in pieces if text.strip()), self._page())
        yield from self.outline.set_page(first)
        yield from self.outline.add_heading(level, title)
        yield from self.outline.set_page(self._page())

    def _pieces(self, p: etree._Element) -> list[tuple[int | None, str]]:
        """The text of a paragraph's runs, each piece with the page it is on."""
        pieces: list[tuple[int | None, str]] = []
        for item in _RUN_ITEMS(p):
            tag = item.tag
            if tag == W + "t":
                text = item.text or ""
                self.pager.text(text)
            elif tag == W + "lastRenderedPageBreak":
                self.pager.rendered()
                continue
            elif tag == W + "br":
                if item.get(W + "type") == "page":
                    self.pager.hard()
                    continue
                text = "\n"
            else:
                text = _PLAIN[tag]
            pieces.append((self._page(), text))
        return pieces

    def _rows(self, table: etree._Element) -> Iterator[tuple[int | None, list[str]]]:
        """A table's rows as (page of the row's first text, cell texts). A cell spanning
        columns is one cell; a cell merged down repeats its text in each row it spans."""
        merged: dict[int, str] = {}  # grid column -> text of the cell merged down from it
        for tr in table.iterchildren(W + "tr"):
            page: int | None = None
            column = _grid_value(tr, "trPr/w:gridBefore", 0)
            cells = [""] * min(column, _MAX_SKIPPED_COLUMNS)
            for tc in tr.iterchildren(W + "tc"):
                merge = tc.find("w:tcPr/w:vMerge", NS)
                if merge is not None and merge.get(W + "val", "continue") == "continue":
                    text = merged.get(column, "")
                else:
                    first, text = self._cell(tc)
                    page = page or first
                    if merge is not None:
                        merged[column] = text
                    else:
                        merged.pop(column, None)
                cells.append(text)
                column += _grid_value(tc, "tcPr/w:gridSpan", 1)
            yield page or self._page(), cells

    def _cell(self, container: etree._Element) -> tuple[int | None, str]:
        """The page of a cell's first text, and its text on one line; a table inside it
        flattened ("a, b; c, d")."""
        first: int | None = None
        parts: list[str] = []
        for child in container.iterchildren(tag=etree.Element):
            if child.tag == W + "p":
                pieces = self._pieces(child)
                first = first or next((page for page, text in pieces if text.strip()), None)
                parts.append("".join(text for _, text in pieces))
            elif child.tag == W + "tbl":
                rows = [(page, ", ".join(c for c in cells if c))
                        for page, cells in self._rows(child)]
                first = first or next((page for page, row in rows if row), None)
                parts.append("; ".join(row for _, row in rows if row))
            elif child.tag in _CONTAINERS:
                page, text = self._cell(child)
                first = first or page
                parts.append(text)
        return first, cell_text(" ".join(parts))


def _by_page(pieces: list[tuple[int | None, str]]) -> Iterator[tuple[int | None, str]]:
    """A paragraph's text cut where its pages change: (page, text) for each page."""
    page: int | None = None
    texts: list[str] = []
    for piece_page, text in pieces:
        if texts and piece_page != page:
            yield page, "".join(texts)
            texts = []
        page = piece_page
        texts.append(text)
    if texts:
        yield page, "".join(texts)


def _grid_value(element: etree._Element, path: str, default: int) -> int:
    """The integer w:val of a grid property (w:gridBefore, w:gridSpan), else `default`."""
    found = element.find(f"w:{path}", NS)
    value = found.get(W + "val") if found is not None else None
    return int(value) if value and value.isdigit() else default


class _Pager:
    """The page the walk is on, from the breaks Word recorded. A page break typed by hand, a
    section that starts on a new page and Word's record of where a page began
    (w:lastRenderedPageBreak) each start a page, but only once: a break met before any text
    of the page it started is the same break. A section to start on an odd (even) page
    skips a page when needed, as Word prints an empty one."""

    def __init__(self, starts: list[str]) -> None:
        self.page = 1
        self._fresh = True  # no text on this page yet
        self._starts = starts  # how each section starts: nextPage, continuous, oddPage...
        self._section = 0

    def text(self, text: str) -> None:
        """Text met on the current page."""
        if self._fresh and text.strip():
            self._fresh = False

    def hard(self) -> None:
        """A page break typed by hand."""
        self.page += 1
        self._fresh = True

    def rendered(self) -> None:
        """Where Word began a page when it last laid the document out."""
        if not self._fresh:
            self.hard()

    def section_end(self) -> None:
        """The end of a section: the next one starts as its properties say."""
        self._section += 1
        start = self._starts[self._section] if self._section < len(self._starts) else ""
        if start == "continuous":
            return
        self.rendered()
        if (start == "oddPage" and self.page % 2 == 0) or (start == "evenPage" and
                                                           self.page % 2):
            self.page += 1


def _section_starts(body: etree._Element) -> list[str]:
    """How each section of the body starts (w:type of its properties; nextPage if unset)."""
    starts = []
    for properties in _SECTION_TYPES(body):
        kind = properties.find("w:type", NS)
        starts.append(kind.get(W + "val", "nextPage") if kind is not None else "nextPage")
    return starts
