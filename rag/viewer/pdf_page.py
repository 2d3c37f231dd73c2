"""A PDF page rendered with PDFium (pypdfium2), with a cited passage boxed where it sits.

The passage is a chunk's stored text, cleaner than the page's (running headers dropped, words
hyphenated across lines joined, dot leaders and spaces collapsed), and it may begin or end on
another page. So both texts are compared on their letters and digits only, casefolded (NFKC):
windows of the passage are looked up in the page's text (str.find), the hits on one diagonal
joined into runs and stretched as far as the texts agree, the heaviest chain of runs in the
order of both texts kept, and of it the stretches long enough not to be chance. Their
characters' boxes (PDFium's loose char boxes) become one box per text line, as fractions of
the page as PDFium renders it (top-left origin, crop box and /Rotate applied), so that a UI
places them as percentages over the image at any zoom. Every PDFium call holds PDFIUM_LOCK.
"""

from __future__ import annotations

import ctypes
import io
import itertools
import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from rag.errors import LoaderError, RagError
from rag.pdf import PASSWORD_REASON, PDFIUM_LOCK

BASE_WIDTH = 900  # pixels of a page's width at zoom 1
MIN_ZOOM, MAX_ZOOM = 0.5, 3.0
MAX_PIXELS = 24_000_000  # a longer page is rendered narrower than its zoom asks
_WINDOW = 12  # letters and digits of the passage looked up at once
_STRIDE = 4  # between the starts of two windows
_MAX_HITS = 6  # a window found more often on the page tells nothing of where the passage is
_JUMP = 400  # page characters a stretch may skip that the passage lacks (a footer, a figure)
_MIN_STRETCH = 24  # a shorter stretch of the passage on the page can be chance
_FILL = 8  # page characters between two found stretches that are boxed with them
_CHAINS = 6  # chains of found stretches taken, each from what the ones before left
_MAX_RUNS = 600  # the longest runs that are chained: the work stays bounded
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


Run = tuple[int, int, int]  # passage start, passage end, page text start: the same letters


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", ch).casefold() if c.isalnum())


def _fold(chars: list[str] | str) -> tuple[str, list[int]]:
    """Letters and digits of a text, casefolded, with each one's index in `chars`."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(chars):
        if ch.isascii():
            if ch.isalnum():
                out.append(ch.lower())
                where.append(i)
        elif folded := _fold_char(ch):
            out.append(folded)
            where.extend([i] * len(folded))
    return "".join(out), where


def _runs(text: str, passage: str) -> set[Run]:
    """(passage start, passage end, page start) of the stretches where windows of the
    passage were found, each stretched as far as both texts agree."""
    k = min(_WINDOW, len(passage))
    starts = [*range(0, len(passage) - k + 1, _STRIDE), len(passage) - k]
    open_runs: dict[int, list[int]] = {}  # diagonal (page - passage position) -> run
    runs: list[list[int]] = []
    for i in starts:
        window, hits, pos = passage[i:i + k], [], text.find(passage[i:i + k])
        while pos >= 0 and len(hits) <= _MAX_HITS:
            hits.append(pos)
            pos = text.find(window, pos + 1)
        for pos in hits if len(hits) <= _MAX_HITS else ():
            run = open_runs.get(pos - i)
            if run is not None and run[1] >= i:
                run[1] = max(run[1], i + k)
            else:
                open_runs[pos - i] = run = [i, i + k, pos]
                runs.append(run)
    stretched: set[Run] = set()
    for p0, p1, t0 in runs:
        while p0 > 0 and t0 > 0 and passage[p0 - 1] == text[t0 - 1]:
            p0, t0 = p0 - 1, t0 - 1
        while p1 < len(passage) and t0 + p1 - p0 < len(text) and \
                passage[p1] == text[t0 + p1 - p0]:
            p1 += 1
        stretched.add((p0, p1, t0))
    return stretched


def _chain(runs: list[Run]) -> list[Run]:
    """The heaviest chain of runs in the order of both texts, each run trimmed to begin
    where the one before it ends (dynamic programming over the runs sorted by passage)."""
    best: list[tuple[int, int]] = []  # (weight of the best chain ending here, previous)
    for j, (p0, p1, t0) in enumerate(runs):
        weight, before = p1 - p0, -1
        for i in range(j):
            q0, q1, s0 = runs[i]
            if q1 < p1 and s0 < t0 and s0 + q1 - q0 <= t0 + max(0, q1 - p0) and \
                    best[i][0] + p1 - max(p0, q1) > weight:
                weight, before = best[i][0] + p1 - max(p0, q1), i
        best.append((weight, before))
    at = max(range(len(best)), key=lambda j: best[j][0], default=-1)
    chain: list[Run] = []
    while at >= 0:
        p0, p1, t0 = runs[at]
        at = best[at][1]
        cut = max(0, runs[at][1] - p0) if at >= 0 else 0
        chain.append((p0 + cut, p1, t0 + cut))
    return chain[::-1]


def _pieces(chain: list[Run], least: int) -> list[list[Run]]:
    """The chain cut where the page skips more than _JUMP characters the passage lacks (a
    footer, a figure), without the pieces that hold no run of `least` characters: chance."""
    pieces: list[list[Run]] = []
    for run in chain:
        if pieces:
            q0, q1, s0 = pieces[-1][-1]
            if run[2] - (s0 + q1 - q0) <= 2 * (run[0] - q1) + _JUMP:
                pieces[-1].append(run)
                continue
        pieces.append([run])
    return [p for p in pieces if max(r[1] - r[0] for r in p) >= least]


def _uncovered(runs: list[Run], kept: list[Run]) -> list[Run]:
    """The parts of the runs outside the passage's stretches in `kept`."""
    out = []
    for p0, p1, t0 in runs:
        start = p0
        for k0, k1, _ in sorted(k for k in kept if k[0] < p1 and k[1] > p0):
            if k0 > start:
                out.append((start, k0, t0 + start - p0))
            start = max(start, k1)
        if start < p1:
            out.append((start, p1, t0 + start - p0))
    return out


def match(text: str, passage: str) -> tuple[list[tuple[int, int]], int]:
    """Where a passage lies in a page's text, both folded (letters and digits): spans
    [start, end) of the text, and how many of the passage's characters were found. Up to
    _CHAINS chains of runs are taken, each from the runs outside the passage's stretches
    found before (two texts may order a table's rows or a figure's labels differently)."""
    runs = sorted(_runs(text, passage), key=lambda r: r[0] - r[1])[:_MAX_RUNS]
    least = min(_MIN_STRETCH, max(1, len(passage) // 2))
    kept: list[Run] = []
    for _ in range(_CHAINS):
        runs = sorted(_uncovered(runs, kept))
        pieces = _pieces(_chain(runs), least)
        if not pieces:
            break
        kept.extend(run for piece in pieces for run in piece)
    spans: list[tuple[int, int]] = []
    for p0, p1, t0 in sorted(kept, key=lambda r: r[2]):
        if spans and 0 <= t0 - spans[-1][1] <= _FILL:
            spans[-1] = (spans[-1][0], max(spans[-1][1], t0 + p1 - p0))
        else:
            spans.append((t0, t0 + p1 - p0))
    return spans, sum(p1 - p0 for p0, p1, _ in kept)


def _open(path: Path) -> pdfium.PdfDocument:
    """The PDF opened by PDFium (hold PDFIUM_LOCK); LoaderError if it cannot be."""
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise LoaderError(path.name, PASSWORD_REASON) from None
        raise LoaderError(path.name, f"damaged or truncated PDF, its pages cannot be shown "
                          f"({exc})") from None
    except OSError as exc:
        raise LoaderError(path.name, f"cannot read the file: {exc.strerror or exc}") from None


def _fractions(page: pdfium.PdfPage) -> tuple[float, ...]:
    """The affine map from page points to fractions of the rendered page (x right, y down),
    as (x0, y0, xx, yx, xy, yy): PDFium's own display matrix (crop box, /Rotate)."""
    out = []
    for x, y in ((0.0, 0.0), (1000.0, 0.0), (0.0, 1000.0)):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        if not pdfium_c.FPDF_PageToDevice(page, 0, 0, _DEVICE, _DEVICE, 0, x, y, dx, dy):
            raise pdfium.PdfiumError("FPDF_PageToDevice failed")
        out.append((dx.value / _DEVICE, dy.value / _DEVICE))
    (x0, y0), (ax, ay), (bx, by) = out
    return x0, y0, (ax - x0) / 1000, (ay - y0) / 1000, (bx - x0) / 1000, (by - y0) / 1000


def _to_page(m: tuple[float, ...], left: float, bottom: float, right: float,
             top: float) -> tuple[float, float, float, float]:
    """A rectangle of page points as (left, top, right, bottom) fractions of the page."""
    xs = [m[0] + m[2] * x + m[4] * y for x in (left, right) for y in (bottom, top)]
    ys = [m[1] + m[3] * x + m[5] * y for x in (left, right) for y in (bottom, top)]
    return min(xs), min(ys), max(xs), max(ys)


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


def _box(m: tuple[float, ...], line: list[float]) -> Box | None:
    """A line's box as fractions of the page, clipped to it; None if off the page."""
    left, top, right, bottom = _to_page(m, *line)
    left, top, right, bottom = max(0.0, left), max(0.0, top), min(1.0, right), min(1.0, bottom)
    return Box(left, top, right - left, bottom - top) if right > left and bottom > top else None


def _locate(page: pdfium.PdfPage, passage: str) -> tuple[list[Box], float]:
    """The passage's boxes on the page, and the share of it found there; `passage` is
    folded already (hold PDFIUM_LOCK)."""
    if not passage:
        return [], 0.0
    textpage = page.get_textpage()
    try:
        chars = [chr(pdfium_c.FPDFText_GetUnicode(textpage, i) or 32)
                 for i in range(textpage.count_chars())]
        text, where = _fold(chars)
        spans, found = match(text, passage)
        rects = [textpage.get_charbox(i, loose=True) for start, end in spans
                 for i in range(where[start], where[end - 1] + 1)
                 if not chars[i].isspace() and pdfium_c.FPDFText_IsGenerated(textpage, i) != 1]
    finally:
        textpage.close()
    m = _fractions(page) if rects else ()
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
    boxes, matched, _, _ = _on_page(path, page, _fold(passage)[0])
    return boxes, matched


def best_page(path: Path, passage: str, first: int, last: int) -> int:
    """The page of first..last (1-based, a chunk's Hit.page..Hit.page_end) that holds most of
    the passage; the first of them on a tie. Pages past the PDF's end are left out; raises
    ViewerError if `first` is not a page of it, LoaderError for a PDF PDFium cannot open."""
    folded = _fold(passage)[0]
    best, most, pages = first, -1.0, last
    for number in range(first, max(first, last) + 1):
        if number > pages:
            break
        _, matched, pages, _ = _on_page(path, number, folded if last > first else "")
        if matched > most:
            best, most = number, matched
    return best


def page_scale(width: float, height: float, zoom: float) -> float:
    """Pixels per point for a page of width x height points at `zoom` (clamped to
    MIN_ZOOM..MAX_ZOOM): BASE_WIDTH * zoom pixels wide, less if over MAX_PIXELS. Raises
    ViewerError for a zoom that is not a number or a page of no area."""
    if not math.isfinite(zoom):
        raise ViewerError(f"zoom must be a number from {MIN_ZOOM:g} to {MAX_ZOOM:g}, not {zoom}")
    if not (width >= 1 and height >= 1):
        raise ViewerError(f"the page has no area to show ({width:g} x {height:g} points)")
    scale = BASE_WIDTH * min(max(zoom, MIN_ZOOM), MAX_ZOOM) / width
    return min(scale, math.sqrt(MAX_PIXELS / (width * height)))


def render_page(path: Path, page: int, passage: str = "", *, zoom: float = 1.0) -> PageView:
    """Page `page` (1-based) as a grayscale PNG BASE_WIDTH * zoom pixels wide (see
    page_scale), with the boxes of the passage's lines on it (passage_boxes). Raises
    LoaderError for a PDF PDFium cannot open or render, ViewerError for a page it does not
    have or a zoom that is not a number."""
    boxes, matched, pages, image = _on_page(path, page, _fold(passage)[0], zoom)
    assert image is not None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return PageView(page, pages, buffer.getvalue(), "image/png", image.width, image.height,
                    tuple(boxes), round(matched, 4))
