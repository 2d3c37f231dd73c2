"""A PDF page rendered with PDFium (pypdfium2), with a cited passage boxed where it sits.

The passage is a chunk's stored text, cleaner than the page's (running lines dropped, broken
words joined, spaces collapsed), and may begin or end on another page. Both texts are compared
on their letters and digits, casefolded (NFKC): windows of the passage found in the page's
text (str.find) make runs, stretched as far as the texts agree; the heaviest chains of runs in
the order of both texts are kept, less what is chance. The characters' loose boxes make one
box per text line, as fractions of the page as PDFium renders it (top-left origin, crop box
and /Rotate applied): a UI places them over the image at any zoom. PDFium calls hold
PDFIUM_LOCK (rag.pdf): PDFium is not thread-safe.
"""

from __future__ import annotations

import ctypes
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from rag.errors import LoaderError, RagError
from rag.pdf import PASSWORD_REASON, PDFIUM_LOCK
from rag.viewer.matching import fold, match

BASE_WIDTH = 900  # pixels of a page's width at zoom 1
MIN_ZOOM, MAX_ZOOM = 0.5, 3.0
MAX_PIXELS = 24_000_000  # a longer page is rendered narrower than its zoom asks
_DEVICE = 1_000_000  # device size of the page for FPDF_PageToDevice: fractions to 1e-6


class ViewerError(RagError):
    """A page or zoom the viewer cannot show."""


@dataclass(frozen=True, slots=True)
class Box:
    """A highlighted rectangle, as fractions of the page's width and height (top-left)."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class PageView:
    """One rendered page with the passage's boxes on it."""

    page: int  # 1-based
    pages: int
    image: bytes
    mime: str
    width: int  # pixels
    height: int
    boxes: tuple[Box, ...]  # one per text line of the passage on this page
    matched: float  # share of the passage's letters and digits found on this page


def _open(path: Path) -> pdfium.PdfDocument:
    """The PDF opened by PDFium (hold PDFIUM_LOCK); LoaderError if it cannot be."""
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise LoaderError(path.name, PASSWORD_REASON) from None
        raise LoaderError(path.name, f"damaged or truncated PDF, its pages cannot be shown "
                          f"({exc})") from None
    except FileNotFoundError:
        raise LoaderError(path.name, "the file is not there (moved or deleted)") from None
    except OSError as exc:
        raise LoaderError(path.name, f"cannot read the file ({exc.strerror or exc})") from None


def _fractions(page: pdfium.PdfPage) -> list[tuple[float, float]]:
    """Where page points (0, 0), (1, 0) and (0, 1) show, as fractions of the rendered page:
    PDFium's own display matrix (crop box, /Rotate), an affine map."""
    out = []
    for x, y in ((0.0, 0.0), (1000.0, 0.0), (0.0, 1000.0)):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        if not pdfium_c.FPDF_PageToDevice(page, 0, 0, _DEVICE, _DEVICE, 0, x, y, dx, dy):
            raise pdfium.PdfiumError("FPDF_PageToDevice failed")
        out.append((dx.value / _DEVICE, dy.value / _DEVICE))
    (x0, y0), (ax, ay), (bx, by) = out
    return [(x0, y0), ((ax - x0) / 1000, (ay - y0) / 1000), ((bx - x0) / 1000, (by - y0) / 1000)]


def _lines(rects: list[tuple[float, float, float, float]]) -> list[list[float]]:
    """Consecutive characters' boxes (left, bottom, right, top, in page points) on one text
    line merged: the next one overlaps the line's height by half its own and starts within a
    height of the line's ends (not in the next column). Lines that overlap the one before in
    height (loose boxes are taller than the line pitch) meet half-way instead."""
    lines: list[list[float]] = []
    for left, bottom, right, top in rects:
        height = top - bottom
        if lines:
            line = lines[-1]
            if min(top, line[3]) - max(bottom, line[1]) >= height / 2 and \
                    line[0] - height <= left <= line[2] + height:
                line[:] = [min(line[0], left), min(line[1], bottom), max(line[2], right),
                           max(line[3], top)]
                continue
        lines.append([left, bottom, right, top])
    for above, below in itertools.pairwise(lines):
        if below[3] > above[1] > below[1] and min(above[2], below[2]) > max(above[0], below[0]):
            above[1] = below[3] = (above[1] + below[3]) / 2
    return lines


def _box(m: list[tuple[float, float]], line: list[float]) -> Box | None:
    """A line's box (page points) as fractions of the page, clipped to it; None if off it."""
    (x0, y0), (xx, yx), (xy, yy) = m
    corners = [(x, y) for x in (line[0], line[2]) for y in (line[1], line[3])]
    xs, ys = [x0 + xx * x + xy * y for x, y in corners], [y0 + yx * x + yy * y for x, y in corners]
    left, top, right, bottom = max(0.0, min(xs)), max(0.0, min(ys)), min(1.0, max(xs)), \
        min(1.0, max(ys))
    return Box(left, top, right - left, bottom - top) if right > left and bottom > top else None


def _locate(page: pdfium.PdfPage, passage: str) -> tuple[list[Box], float]:
    """The passage's boxes on the page, and the share of it found there; `passage` is
    folded already (hold PDFIUM_LOCK)."""
    if not passage:
        return [], 0.0
    textpage = page.get_textpage()
    try:
        codes = (pdfium_c.FPDFText_GetUnicode(textpage, i) for i in range(textpage.count_chars()))
        chars = [chr(c) if 0 < c < 0x110000 else " " for c in codes]
        text, where = fold(chars)
        spans, found = match(text, passage)
        rects = [textpage.get_charbox(i, loose=True) for start, end in spans
                 for i in range(where[start], where[end - 1] + 1)
                 if not chars[i].isspace() and pdfium_c.FPDFText_IsGenerated(textpage, i) != 1]
    finally:
        textpage.close()
    m = _fractions(page) if rects else []
    boxes = [_box(m, line) for line in _lines([r for r in rects if r[2] > r[0] and r[3] > r[1]])]
    return [b for b in boxes if b is not None], found / len(passage)


def _on_page(path: Path, number: int, folded: str, zoom: float | None = None
             ) -> tuple[list[Box], float, int, Image.Image | None]:
    """The folded passage's boxes on page `number` (1-based), the share of it found there,
    the PDF's page count, and with a zoom the page rendered in grayscale (see page_scale)."""
    with PDFIUM_LOCK:
        pdf = _open(path)
        try:
            pages = len(pdf)
            if not 1 <= number <= pages:
                raise ViewerError(f"{path.name}: there is no page {number}; the PDF has "
                                  f"{pages} page{'s' if pages != 1 else ''}")
            page = pdf[number - 1]
            try:
                boxes, matched = _locate(page, folded)
                if zoom is None:
                    return boxes, matched, pages, None
                bitmap = page.render(scale=page_scale(*page.get_size(), zoom), grayscale=True)
                image = bitmap.to_pil()  # shares the buffer, which outlives the bitmap
                bitmap.close()
                return boxes, matched, pages, image
            finally:
                page.close()
        except pdfium.PdfiumError as exc:
            raise LoaderError(path.name, f"damaged PDF: page {number} cannot be read ({exc})"
                              ) from None
        finally:
            pdf.close()


def passage_boxes(path: Path, page: int, passage: str) -> tuple[list[Box], float]:
    """The passage's boxes on page `page` (1-based) of the PDF, one per text line, and the
    share of its letters and digits found there (0 when it is not on the page). Raises
    LoaderError for a PDF PDFium cannot open, ViewerError for a page it does not have."""
    boxes, matched, _, _ = _on_page(path, page, fold(passage)[0])
    return boxes, matched


def best_page(path: Path, passage: str, first: int, last: int) -> int:
    """The page of first..last (1-based, a chunk's Hit.page..Hit.page_end) that holds most of
    the passage; the first of them on a tie. Pages past the PDF's end are left out; raises
    ViewerError if `first` is not a page of it, LoaderError for a PDF PDFium cannot open."""
    folded = fold(passage)[0] if last > first else ""
    shares: dict[int, float] = {}
    for number in range(first, max(first, last) + 1):
        try:
            shares[number] = _on_page(path, number, folded)[1]
        except ViewerError:
            if number == first:
                raise
            break
    return max(shares, key=lambda number: shares[number])


def page_scale(width: float, height: float, zoom: float) -> float:
    """Pixels per point for a page of width x height points at `zoom` (clamped to
    MIN_ZOOM..MAX_ZOOM): BASE_WIDTH * zoom pixels wide, less if over MAX_PIXELS. Raises
    ViewerError for a zoom that is not a number or a page of no area."""
    if not math.isfinite(zoom):
        raise ViewerError(f"zoom must be a number from {MIN_ZOOM:g} to {MAX_ZOOM:g}, not {zoom}")
    if not (width >= 1 and height >= 1):
        raise ViewerError(f"the page has no area to show ({width:g} x {height:g} points)")
    pixels = min(round(BASE_WIDTH * min(max(zoom, MIN_ZOOM), MAX_ZOOM)),
                 math.floor(width * math.sqrt(MAX_PIXELS / (width * height))))
    return (max(pixels, 1) - 1e-6) / width  # PDFium's bitmap is ceil(width * scale) wide


def render_page(path: Path, page: int, passage: str = "", *, zoom: float = 1.0) -> PageView:
    """Page `page` (1-based) as a grayscale PNG BASE_WIDTH * zoom pixels wide (see
    page_scale), with the boxes of the passage's lines on it (passage_boxes). Raises
    LoaderError for a PDF PDFium cannot open or render, ViewerError for a page it does not
    have or a zoom that is not a number."""
    boxes, matched, pages, image = _on_page(path, page, fold(passage)[0], zoom)
    assert image is not None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return PageView(page, pages, buffer.getvalue(), "image/png", image.width, image.height,
                    tuple(boxes), round(matched, 4))
