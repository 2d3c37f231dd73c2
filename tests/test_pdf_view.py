"""A cited passage on its rendered PDF page (rag.viewer.pdf_page), with real chunks of the
shared PDFs made as the ingest makes them: found on their pages, boxed where PDFium's own text
search puts their words and over the page's ink, on each page of a passage that spans two,
in one column of two- and three-column pages, on cropped and rotated pages; nothing boxed
for a passage of another document; clear errors for bad pages, zooms and PDFs."""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import RectangleObject

from rag.chunking import chunk_sections
from rag.embedding import LocalEmbedder
from rag.errors import LoaderError
from rag.formats import Limits
from rag.formats.pdf import read
from rag.loading import load
from rag.schema import Chunk
from rag.viewer.pdf_page import (
    BASE_WIDTH,
    MAX_ZOOM,
    MIN_ZOOM,
    Box,
    PageView,
    ViewerError,
    best_page,
    passage_boxes,
    render_page,
)
from tests.helpers import CLOUD_PDF, PDFS

NIST_64 = PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf"
ACL_2COL = PDFS / "acl2016-sennrich-subword-nmt-2col.pdf"
FR_3COL = PDFS / "federal-register-2020-17221-3col.pdf"
FBI_TABLE = PDFS / "fbi-nics-checks-2015-11-table.pdf"
TRUNCATED = PDFS / "edge-truncated-nist-sp800-145.pdf"
ENCRYPTED = PDFS / "edge-encrypted-aes256-nist-sp800-145.pdf"
CHUNK_TOKENS, CHUNK_OVERLAP = 200, 40  # the Settings defaults, as the ingest chunks
WORD = re.compile(r"[A-Za-z]{8,}")  # a word long enough to be distinctive on its page
INK = 160  # a gray level darker than this is ink

Chunks = Callable[[Path], list[Chunk]]


@pytest.fixture(scope="module")
def chunks(embedder: LocalEmbedder) -> Chunks:
    """The chunks of a PDF as rag.ingest makes them (read by rag.loading, chunked by
    chunk_sections with the ingest's limits and sizes), made once per file."""
    made: dict[Path, list[Chunk]] = {}

    def of(path: Path) -> list[Chunk]:
        if path not in made:
            doc = load(path, limits=Limits(table_chars=CHUNK_TOKENS * 5 // 2))
            made[path] = list(chunk_sections(
                doc.sections, doc_id=path.name, version="v", source=path.name,
                count_tokens=embedder.count_tokens, max_tokens=CHUNK_TOKENS,
                overlap=CHUNK_OVERLAP))
        return made[path]

    return of


def _pages(chunk: Chunk) -> range:
    assert chunk.page is not None
    return range(chunk.page, (chunk.page_end or chunk.page) + 1)


def _coverage(path: Path, chunk: Chunk) -> float:
    """The share of the chunk found on its pages together (at most 1)."""
    return min(1.0, sum(passage_boxes(path, page, chunk.text)[1] for page in _pages(chunk)))


def _inside(x: float, y: float, boxes: list[Box] | tuple[Box, ...], slack: float = 0.002
            ) -> bool:
    return any(b.left - slack <= x <= b.left + b.width + slack and
               b.top - slack <= y <= b.top + b.height + slack for b in boxes)


def _gray(view: PageView) -> np.ndarray:
    image = Image.open(io.BytesIO(view.image))
    assert image.size == (view.width, view.height)
    return np.asarray(image.convert("L"), dtype=float)


def _unrotated(page: pdfium.PdfPage, x: float, y: float) -> tuple[float, float]:
    """A point of page space as fractions of the crop box, top-left origin, before /Rotate."""
    left, bottom, right, top = page.get_cropbox()
    return (x - left) / (right - left), (top - y) / (top - bottom)


def _rotated(u: float, v: float, rotation: int) -> tuple[float, float]:
    """A point of the unrotated page where it shows with /Rotate (clockwise)."""
    return {0: (u, v), 90: (1 - v, u), 180: (1 - u, 1 - v), 270: (v, 1 - u)}[rotation]


def _word_points(path: Path, page_number: int, text: str, limit: int = 4
                 ) -> list[tuple[str, float, float]]:
    """Where words of `text` that are on the page exactly once sit (the middle of their middle
    character), found by PDFium's own text search and the crop box and rotation: independent
    of the viewer's matching and of its conversion to fractions."""
    pdf = pdfium.PdfDocument(path)
    try:
        page = pdf[page_number - 1]
        rotation = page.get_rotation()
        textpage = page.get_textpage()
        # PDFium's search does not find a word hyphenated at a line's end: such a word counts
        # as well, in the page's text with its hyphen marks (U+FFFE) dropped
        plain = textpage.get_text_range().replace("\ufffe", "")
        points = []
        for word in dict.fromkeys(WORD.findall(text)):
            if len(re.findall(rf"(?<!\w){re.escape(word)}(?!\w)", plain)) != 1:
                continue
            searcher = textpage.search(word, match_case=True, match_whole_word=True)
            found = [hit for hit in iter(searcher.get_next, None)]
            if len(found) != 1:
                continue
            index, count = found[0]
            left, bottom, right, top = textpage.get_charbox(index + count // 2)
            u, v = _unrotated(page, (left + right) / 2, (bottom + top) / 2)
            points.append((word, *_rotated(u, v, rotation)))
            if len(points) == limit:
                break
        return points
    finally:
        pdf.close()


@pytest.mark.parametrize("path", [CLOUD_PDF, NIST_64, ACL_2COL, FR_3COL, FBI_TABLE],
                         ids=lambda p: p.name[:14])
def test_nearly_every_chunk_is_found_on_its_pages(path: Path, chunks: Chunks) -> None:
    made = chunks(path)
    coverage = [_coverage(path, chunk) for chunk in made]
    found = [c for c in coverage if c >= 0.9]
    assert len(found) >= 0.95 * len(made), sorted(coverage)[:10]
    assert sum(coverage) / len(coverage) >= 0.97


@pytest.mark.parametrize("path", [CLOUD_PDF, NIST_64, ACL_2COL, FR_3COL],
                         ids=lambda p: p.name[:14])
def test_boxes_are_where_pdfium_finds_the_words(path: Path, chunks: Chunks) -> None:
    """Distinctive words of each single-page chunk (every third of the long PDFs) lie in
    one of its boxes, where PDFium's search finds them."""
    made = [c for c in chunks(path) if c.page_end == c.page]
    sample = made if len(made) <= 20 else made[::3]
    checked, missed = 0, []
    for chunk in sample:
        assert chunk.page is not None
        boxes, _ = passage_boxes(path, chunk.page, chunk.text)
        for word, x, y in _word_points(path, chunk.page, chunk.text):
            checked += 1
            if not _inside(x, y, boxes):
                missed.append((chunk.page, word))
    assert checked >= 2 * len(sample)
    assert len(missed) <= 0.02 * checked, missed


@pytest.mark.parametrize("path", [CLOUD_PDF, NIST_64, FR_3COL], ids=lambda p: p.name[:14])
def test_boxes_lie_over_the_text_at_every_zoom(path: Path, chunks: Chunks) -> None:
    """The rendered page is darker inside the boxes than in its blank margin; zoomed in, the
    image is larger and the boxes the same."""
    made = [c for c in chunks(path) if c.page_end == c.page]
    for chunk in made[:: max(1, len(made) // 6)]:
        assert chunk.page is not None
        view = render_page(path, chunk.page, chunk.text)
        assert view.mime == "image/png" and view.width == BASE_WIDTH and view.boxes
        assert view.matched >= 0.9 and view.pages == len(pdfium.PdfDocument(path))
        gray = _gray(view)
        margin = gray[:, : view.width // 40].mean()  # the left margin: blank paper
        assert margin > 250
        inside = np.concatenate([
            gray[round(b.top * view.height):round((b.top + b.height) * view.height),
                 round(b.left * view.width):round((b.left + b.width) * view.width)].ravel()
            for b in view.boxes])
        assert inside.mean() < margin - 15
        assert (inside < INK).mean() > 0.05  # text strokes
        zoomed = render_page(path, chunk.page, chunk.text, zoom=2)
        assert zoomed.width == 2 * BASE_WIDTH
        assert abs(zoomed.height - 2 * view.height) <= 2
        assert zoomed.boxes == view.boxes and zoomed.matched == view.matched


def test_a_chunk_of_two_pages_is_boxed_on_each(chunks: Chunks) -> None:
    """The title-page chunk of the 7-page PDF holds pages 1 and 2: both show part of it."""
    [chunk] = [c for c in chunks(CLOUD_PDF) if c.page_end != c.page]
    for page in _pages(chunk):
        boxes, matched = passage_boxes(CLOUD_PDF, page, chunk.text)
        assert boxes and matched >= 0.2
    assert _coverage(CLOUD_PDF, chunk) >= 0.9


def test_a_passage_across_a_page_break_is_boxed_in_its_parts(chunks: Chunks) -> None:
    """The end of page 12's last chunk and the start of page 13's first, as one passage:
    each page boxes its part, inside the boxes of the chunk it came from, and its share of
    the passage; the page with the longer part is the best page."""
    made = chunks(NIST_64)
    before = [c for c in made if c.page == c.page_end == 12][-1]
    after = next(c for c in made if c.page == c.page_end == 13)
    head, tail = before.text[-600:].split(" ", 1)[1], after.text[:300].rsplit(" ", 1)[0]
    passage = f"{head}\n{tail}"
    shares = []
    for page, part, source in ((12, head, before), (13, tail, after)):
        boxes, matched = passage_boxes(NIST_64, page, passage)
        own, _ = passage_boxes(NIST_64, page, source.text)
        expected = len(re.sub(r"\W|_", "", part)) / len(re.sub(r"\W|_", "", passage))
        assert boxes and expected - 0.03 <= matched <= expected + 0.06  # phrases recur
        top, bottom = min(b.top for b in own), max(b.top + b.height for b in own)
        assert all(top - 0.002 <= b.top and b.top + b.height <= bottom + 0.002 for b in boxes)
        shares.append(matched)
    assert sum(shares) >= 0.95
    assert best_page(NIST_64, passage, 12, 13) == 12
    assert best_page(NIST_64, after.text, 12, 13) == 13


def test_a_passage_of_another_document_boxes_nothing(chunks: Chunks) -> None:
    for chunk in chunks(ACL_2COL)[::8]:
        for page in range(1, 8):
            boxes, matched = passage_boxes(CLOUD_PDF, page, chunk.text)
            assert not boxes and matched < 0.05
    assert passage_boxes(CLOUD_PDF, 3, "")[0] == []


def _gutters(view: PageView) -> list[tuple[float, float]]:
    """The blank vertical strips between columns of the rendered page (no ink from 15% to
    85% of its height, between 20% and 80% of its width), as fractions of its width."""
    gray = _gray(view)
    body = gray[int(view.height * 0.15):int(view.height * 0.85)]
    blank = (body < 200).sum(axis=0) == 0
    strips, start = [], None
    for x in range(int(view.width * 0.2), int(view.width * 0.8)):
        if blank[x] and start is None:
            start = x
        elif not blank[x] and start is not None:
            if x - start >= 8:
                strips.append((start / view.width, x / view.width))
            start = None
    return strips


@pytest.mark.parametrize(("path", "columns"), [(ACL_2COL, 2), (FR_3COL, 3)],
                         ids=["2-column", "3-column"])
def test_boxes_keep_to_one_column(path: Path, columns: int, chunks: Chunks) -> None:
    """On the pages whose columns run from top to bottom, no box crosses a gutter."""
    pages = 0
    for number in range(2, len(pdfium.PdfDocument(path)) + 1):
        gutters = _gutters(render_page(path, number))
        if len(gutters) != columns - 1:
            continue  # a figure or table across the columns
        pages += 1
        for chunk in [c for c in chunks(path) if number in _pages(c)]:
            boxes, matched = passage_boxes(path, number, chunk.text)
            assert matched >= 0.3 and boxes
            for box in boxes:
                assert not any(box.left < g0 and box.left + box.width > g1
                               for g0, g1 in gutters), (number, box, gutters)
                assert box.width <= 1 / columns
    assert pages >= 3


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_boxes_follow_the_crop_box_and_rotation(rotation: int, tmp_path: Path,
                                                chunks: Chunks) -> None:
    """Page 5 of the 7-page PDF cropped and rotated (a copy in tmp_path): the image has the
    rotated shape, the words sit in the boxes where the crop box and /Rotate put them, and
    the boxes lie over ink."""
    copy = PdfWriter(clone_from=CLOUD_PDF)
    copy.pages[4].cropbox = RectangleObject([50, 100, 562, 742])
    copy.pages[4].rotation = rotation
    path = tmp_path / f"rotated-{rotation}.pdf"
    copy.write(path)
    chunk = next(c for c in chunks(CLOUD_PDF) if c.page == c.page_end == 5)
    view = render_page(path, 5, chunk.text)
    width, height = (512, 642) if rotation in (0, 180) else (642, 512)
    assert view.width == BASE_WIDTH and abs(view.height - BASE_WIDTH * height / width) <= 1
    assert view.matched >= 0.9
    points = _word_points(path, 5, chunk.text, limit=8)
    assert len(points) >= 5
    # PDFium orders a rotated page's characters its own way (upside down: "Authority 1.1"),
    # and a heading's words may not be found; the body's are
    missed = [word for word, x, y in points if not _inside(x, y, view.boxes)]
    assert len(missed) <= 1, (missed, points, view.boxes)
    gray = _gray(view)
    inside = [gray[round(b.top * view.height):round((b.top + b.height) * view.height),
                   round(b.left * view.width):round((b.left + b.width) * view.width)].mean()
              for b in view.boxes]
    assert np.mean(inside) < 235


def test_zoom_is_clamped_and_must_be_a_number() -> None:
    assert render_page(CLOUD_PDF, 1, zoom=MAX_ZOOM * 10).width == BASE_WIDTH * MAX_ZOOM
    small = render_page(CLOUD_PDF, 1, zoom=0.01)
    assert small.width == BASE_WIDTH * MIN_ZOOM and small.boxes == () and small.matched == 0
    for zoom in (math.nan, math.inf):
        with pytest.raises(ViewerError, match="zoom"):
            render_page(CLOUD_PDF, 1, zoom=zoom)


@pytest.mark.parametrize("page", [0, -1, 8, 1000])
def test_a_page_the_pdf_lacks_is_a_clear_error(page: int) -> None:
    with pytest.raises(ViewerError, match=rf"no page {page}; the PDF has 7 pages"):
        render_page(CLOUD_PDF, page, "cloud")
    with pytest.raises(ViewerError, match="the PDF has 7 pages"):
        passage_boxes(CLOUD_PDF, page, "cloud")
    if page < 1 or page > 7:
        with pytest.raises(ViewerError):
            best_page(CLOUD_PDF, "cloud", page, page + 1)


def test_best_page_keeps_to_the_pdf() -> None:
    assert best_page(CLOUD_PDF, "anything", 7, 12) == 7
    assert best_page(CLOUD_PDF, "", 2, 4) == 2


@pytest.mark.parametrize(("path", "reason"), [
    (TRUNCATED, "damaged or truncated PDF"),
    (ENCRYPTED, "password-protected"),
    (PDFS / "no-such-file.pdf", "the file is not there"),
])
def test_a_broken_or_locked_pdf_is_a_clear_error(path: Path, reason: str) -> None:
    for call in (lambda: render_page(path, 1, "cloud"), lambda: passage_boxes(path, 1, "x"),
                 lambda: best_page(path, "cloud", 1, 2)):
        with pytest.raises(LoaderError, match=reason) as caught:
            call()
        assert caught.value.source == path.name


def test_threads_share_pdfium_safely(chunks: Chunks) -> None:
    """Pages rendered from four threads at once, while another reads a PDF with PDFium
    (rag.formats.pdf, the same lock), are the pages rendered one after another."""
    made = [c for c in chunks(NIST_64) if c.page == c.page_end][:24]
    alone = [render_page(NIST_64, c.page or 1, c.text) for c in made]
    together: dict[int, PageView] = {}
    errors: list[BaseException] = []

    def work(indices: range) -> None:
        try:
            for i in indices:
                together[i] = render_page(NIST_64, made[i].page or 1, made[i].text)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(range(k, len(made), 4),)) for k in range(4)]
    for thread in threads:
        thread.start()
    sections = list(read(FBI_TABLE.read_bytes(), FBI_TABLE.name, Limits(table_chars=500)).sections)
    for thread in threads:
        thread.join()
    assert not errors and sections
    assert [together[i] for i in range(len(made))] == alone
