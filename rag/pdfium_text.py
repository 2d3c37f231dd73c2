"""A PDF page's text as PDFium (pypdfium2) extracts it, with paragraph breaks.

PDFium's text is C++ and much faster than pypdf's (the benchmark's 605 pages: reading and
chunking 9.7 s against 39.9 s, README "Ingestion at scale"). It keeps words whole where pypdf
splits them at a kerning ("c apabilities"), spaces the cells of a table's rows, and marks a
word hyphenated at a line's end, which is joined again. It gives lines without blank lines
between paragraphs, so a paragraph break is read from the layout: a line whose baseline is
further below the line before it than _PARAGRAPH_PITCH times the page's usual line pitch, and
than _PARAGRAPH_FONT times its font's height.

Callers hold rag.pdf.PDFIUM_LOCK: PDFium is not thread-safe."""

from __future__ import annotations

import ctypes
import statistics
from typing import NamedTuple

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

_LINE_END = "\r\n"  # between PDFium's lines
_HYPHEN = "\ufffe"  # PDFium's mark of a word hyphenated at the end of a line, the lines joined
_PARAGRAPH_PITCH = 1.4
_PARAGRAPH_FONT = 1.5


class _Line(NamedTuple):
    text: str
    top: float | None  # the baseline of its first character, None for a blank line
    bottom: float | None  # the baseline of its last character
    size: float  # the height of its first character's font
    hyphen: bool = False  # ends in a word hyphenated at the line's end


def page_text(page: pdfium.PdfPage) -> str:
    """The page's text, its lines as PDFium orders them, a blank line between paragraphs, a
    hyphenated word joined where its second part starts the next line (not a footer far
    below, as PDFium has it)."""
    textpage = page.get_textpage()
    try:
        lines = _lines(textpage)
    finally:
        textpage.close()
    pitch = _usual_pitch(lines)
    out: list[str] = []
    previous: _Line | None = None
    at = 0  # index in out of the previous line's text
    for line in lines:
        if line.top is None:
            out.append(line.text)
            continue
        if previous is not None and previous.hyphen:
            if not _far(previous, line, pitch):
                out[at] += line.text
                previous = line
                continue
            out[at] += "-"
        if previous is not None and _breaks(previous, line, pitch):
            out.append("")
        out.append(line.text)
        previous, at = line, len(out) - 1
    if previous is not None and previous.hyphen:
        out[at] += "-"
    return "\n".join(out)


def _far(previous: _Line, line: _Line, pitch: float) -> bool:
    """Whether a line is further below the one before it than lines of a paragraph are."""
    assert previous.bottom is not None and line.top is not None
    return previous.bottom - line.top > _PARAGRAPH_PITCH * pitch


def _breaks(previous: _Line, line: _Line, pitch: float) -> bool:
    """Whether a paragraph ends between two lines: a wider gap than lines have."""
    assert previous.bottom is not None and line.top is not None
    return bool(pitch) and _far(previous, line, pitch) and \
        previous.bottom - line.top > _PARAGRAPH_FONT * max(previous.size, line.size)


def _usual_pitch(lines: list[_Line]) -> float:
    """The median drop from one line's baseline to the next one's, 0 for a page without two
    lines one below the other."""
    drops = []
    previous: _Line | None = None
    for line in lines:
        if line.top is None:
            continue
        if previous is not None and previous.bottom is not None and previous.bottom > line.top:
            drops.append(previous.bottom - line.top)
        previous = line
    return statistics.median(drops) if drops else 0.0


def _lines(textpage: pdfium.PdfTextPage) -> list[_Line]:
    """The page's lines, split after each word hyphenated at a line's end (PDFium joins the
    next line to it), with the baselines of their ends. Text offsets count UTF-16 units, as
    PDFium's text does; PDFium maps them to its characters."""
    raw = textpage.raw
    x, y = ctypes.c_double(), ctypes.c_double()
    box = pdfium_c.FS_RECTF()

    def character(offset: int) -> int | None:
        index = pdfium_c.FPDFText_GetCharIndexFromTextIndex(raw, offset)
        return index if index >= 0 else None

    def baseline(index: int) -> float | None:
        return y.value if pdfium_c.FPDFText_GetCharOrigin(raw, index, x, y) else None

    def height(index: int) -> float:
        """The font's height as drawn (FPDFText_GetFontSize leaves out a scaled text matrix)."""
        return box.top - box.bottom if pdfium_c.FPDFText_GetLooseCharBox(raw, index, box) \
            else 0.0

    lines: list[_Line] = []
    offset = 0
    for row in textpage.get_text_range().split(_LINE_END):
        pieces = row.split(_HYPHEN)
        for number, text in enumerate(pieces):
            hyphen = number < len(pieces) - 1
            start = offset + _units(text[:len(text) - len(text.lstrip())])
            end = offset + _units(text.rstrip()) - 1
            offset += _units(text) + (1 if hyphen else len(_LINE_END))
            first = character(start) if text.strip() else None
            last = character(end) if first is not None else None
            top = baseline(first) if first is not None else None
            bottom = baseline(last) if last is not None and top is not None else None
            if first is None or top is None or bottom is None:
                lines.append(_Line(text, None, None, 0.0, hyphen))
            else:
                lines.append(_Line(text, top, bottom, height(first), hyphen))
    return lines


def _units(text: str) -> int:
    """Length of a text in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2
