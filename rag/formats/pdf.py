"""PDF documents: one section per page with text, read lazily: each page's text as PDFium
extracts it (rag.pdfium_text), normalised and without running lines (rag.pdf).

A page without a text layer (fewer than _OCR_CHARS characters, and images on it) is a scanned
page: it is rendered with PDFium (pypdfium2) at 300 dpi and read by OCR (rag.formats.ocr);
only those pages are, and they are listed in meta["ocr_pages"]. With OCR off they are listed
in meta["ocr_skipped_pages"] instead, and a PDF of such pages only fails saying so.

Tables keep PDFium's rows, one line each, their cells spaced apart, and a table longer than
Limits.table_chars repeats its header line before every group of rows, a paragraph each, so
that every chunk of the table holds its column names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pypdfium2 as pdfium
from PIL import Image
from pypdf import PdfReader

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed, table_sections
from rag.formats.ocr import OCR_PIXELS, TESSERACT, check_engine, ocr_image
from rag.pdf import (
    PDF_ERRORS,
    PDFIUM_LOCK,
    check_content,
    normalise_pdf_text,
    open_pdf,
    pdf_error_reason,
    without_running_lines,
)
from rag.pdfium_text import page_text
from rag.schema import Section

_OCR_CHARS = 20  # a page with fewer non-space characters than this, and images, is scanned
_DPI = 300.0
_TABLE_ROWS = 3  # consecutive lines of numbers that make a table
# The rows of a group take this share of table_chars, its header line comes on top: a page's
# groups are paragraphs of one section, so the chunker's overlap (a fifth of a chunk by
# default) comes on top as well, and numbers take more tokens per character than prose. So
# every chunk of the shared FBI table but one holds its header (at 100%, 10 of 17 chunks do).
_GROUP_SHARE = 0.7
_HEADER_SHARE = 2 / 3  # of the rows' share: a longer header would crowd out the rows
_NUMBER = re.compile(r"[(+-]?[$€£¥]?\d[\d,.]*%?\)?[,;]?")


def read(data: bytes, source: str, limits: Limits, *,
         tesseract_cmd: str = TESSERACT) -> Parsed:
    """A PDF as a document of pages; raises LoaderError up front for a damaged or
    password-protected file, more than limits.max_pages pages or more content than the
    limits allow (rag.pdf.check_content), and while the pages are read for a damaged page, a
    failed OCR, or a PDF without any text."""
    reader, pages = open_pdf(data, source)
    if limits.max_pages is not None and pages > limits.max_pages:
        raise LoaderError(source, f"the PDF has {pages} pages, more than the limit of "
                          f"{limits.max_pages} (MAX_PAGES); split it, or raise MAX_PAGES")
    check_content(reader, pages, source, max_pdf_mb=limits.max_pdf_content_mb,
                  max_page_mb=limits.max_page_content_mb)
    document = _Document(reader, pages, data, source, limits, tesseract_cmd)
    return Parsed("pdf", pages, document.sections(), document.meta)


class _Document:
    """The pages of one PDF as sections: PDFium's text, OCR for scanned pages, tables as rows."""

    def __init__(self, reader: PdfReader, pages: int, data: bytes, source: str,
                 limits: Limits, tesseract_cmd: str) -> None:
        self.reader = reader
        self.pages = pages
        self.source = source
        self.limits = limits
        self.tesseract_cmd = tesseract_cmd
        self.pdfium = _Pdfium(data, source)
        self.meta: dict[str, Any] = {"ocr_pages": []}
        self._engine_checked = False

    def sections(self) -> Iterator[Section]:
        """One section per page with text, each page read as it is asked for (a few pages
        ahead, to recognise running headers and footers)."""
        found = False
        try:
            for number, text in without_running_lines(self._texts()):
                if text:
                    found = True
                    yield Section(text=self._tables(text), page=number)
        finally:
            self.pdfium.close()
        if not found:
            raise LoaderError(self.source, self._no_text_reason())

    def _texts(self) -> Iterator[tuple[int, str]]:
        """(page number, text) of each page: its text layer, or OCR's text of a scanned page
        (when OCR finds more than the few characters of its text layer, if any)."""
        for number in range(1, self.pages + 1):
            text = self.pdfium.text(number)
            layer = len("".join(text.split()))
            if layer < _OCR_CHARS and self._has_images(number):
                scanned = self._scanned(number)
                text = scanned if len("".join(scanned.split())) > layer else text
            yield number, text

    def _has_images(self, number: int) -> bool:
        try:
            return len(self.reader.pages[number - 1].images) > 0
        except PDF_ERRORS as exc:
            raise LoaderError(self.source, pdf_error_reason(exc, f"page {number}: ")) from exc

    def _scanned(self, number: int) -> str:
        """A scanned page's text by OCR ("" with OCR off: the page is listed as skipped)."""
        if not self.limits.ocr:
            self.meta.setdefault("ocr_skipped_pages", []).append(number)
            return ""
        if not self._engine_checked:
            check_engine(self.source, self.limits.ocr_languages, tesseract_cmd=self.tesseract_cmd)
            self._engine_checked = True
        image, dpi = self.pdfium.render(number)
        if image is None:
            return ""
        text = ocr_image(image, self.source, self.limits.ocr_languages, where=f"page {number}",
                         dpi=dpi, tesseract_cmd=self.tesseract_cmd)
        self.meta["ocr_pages"].append(number)
        return text

    def _no_text_reason(self) -> str:
        if self.meta.get("ocr_skipped_pages"):
            return ("no extractable text: the pages are scanned images; turn OCR on (OCR=true) "
                    "with Tesseract installed")
        if self.meta["ocr_pages"]:
            return "no extractable text: OCR found no text on its scanned pages"
        return "no extractable text: its pages hold neither text nor images of text"

    def _tables(self, text: str) -> str:
        """The page with long tables cut into groups of rows each led by the header line."""
        lines = text.split("\n")
        blocks = _row_blocks(lines)
        if not blocks:
            return text
        return _grouped(lines, blocks, int(self.limits.table_chars * _GROUP_SHARE))


def _is_row(line: str) -> bool:
    """A line of a table of numbers: three numbers at least, and as many numbers as words."""
    words = line.split()
    numbers = sum(1 for word in words if _NUMBER.fullmatch(word))
    return numbers >= 3 and 2 * numbers >= len(words)


def _is_header(line: str, budget: int) -> bool:
    """Whether the line before a table can be its header: names of three columns at least
    (its rows have three numbers), leaving room for rows in a group, not ending a sentence."""
    return len(line.split()) >= _TABLE_ROWS and len(line) <= budget * _HEADER_SHARE and \
        not line.endswith((".", ",", ";"))


def _row_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each run of at least _TABLE_ROWS consecutive table rows."""
    blocks: list[tuple[int, int]] = []
    start = None
    for index, line in enumerate([*lines, ""]):
        if _is_row(line):
            start = index if start is None else start
            continue
        if start is not None and index - start >= _TABLE_ROWS:
            blocks.append((start, index))
        start = None
    return blocks


def _grouped(lines: list[str], blocks: list[tuple[int, int]], budget: int) -> str:
    """The lines with each table longer than `budget` characters as paragraphs of rows of
    about `budget` characters, each led by the line before the table (its header: column
    names); shorter tables, and tables without a line that can be their header, stay as
    they are."""
    out: list[str] = []
    position = 0
    for start, end in blocks:
        header = lines[start - 1] if start - 1 >= position else ""
        rows = lines[start:end]
        if not _is_header(header, budget) or \
                len(header) + sum(len(row) + 1 for row in rows) <= budget:
            continue
        out.extend(lines[position:start - 1])
        if out and out[-1]:
            out.append("")
        groups = table_sections([[header], *([row] for row in rows)], budget=budget)
        out.append("\n\n".join(group.text for group in groups))
        if end < len(lines) and lines[end]:
            out.append("")
        position = end
    out.extend(lines[position:])
    return "\n".join(out)


class _Pdfium:
    """The PDF opened with PDFium: its pages' text, and scanned pages rendered for OCR."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.document: pdfium.PdfDocument | None = None

    def _page(self, number: int) -> pdfium.PdfPage:
        if self.document is None:
            self.document = pdfium.PdfDocument(self.data)  # decrypted with the empty password
        return self.document[number - 1]

    def render(self, number: int) -> tuple[Image.Image | None, float]:
        """Page `number` as an RGB image at _DPI (less for a page so large that it would be
        more than OCR_PIXELS), and its resolution; None for a page of no area."""
        with PDFIUM_LOCK:
            try:
                page = self._page(number)
                width, height = page.get_size()
                if width * height < 1:
                    return None, _DPI
                scale = min(_DPI / 72, (OCR_PIXELS / (width * height)) ** 0.5)
                image = page.render(scale=scale).to_pil().convert("RGB")  # a copy of its own
                page.close()
            except (pdfium.PdfiumError, IndexError) as exc:
                raise LoaderError(self.source, f"damaged PDF (page {number} cannot be rendered "
                                  f"for OCR: {exc})") from exc
        return image, scale * 72

    def text(self, number: int) -> str:
        """Page `number`'s text as PDFium extracts it, normalised."""
        with PDFIUM_LOCK:
            try:
                page = self._page(number)
                raw = page_text(page)
                page.close()
            except (pdfium.PdfiumError, IndexError) as exc:
                raise LoaderError(self.source, f"damaged PDF (page {number} cannot be read: "
                                  f"{exc})") from exc
        return normalise_pdf_text(raw)

    def close(self) -> None:
        with PDFIUM_LOCK:
            if self.document is not None:
                self.document.close()
                self.document = None
