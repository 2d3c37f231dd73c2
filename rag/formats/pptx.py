"""PowerPoint (.pptx) files, opened with python-pptx: one location per slide, heading
("slide 7: Title",), or ("slide 7",) for a slide without a title. A slide's text is the text
of its shapes in reading order (top to bottom, then left to right; shapes in a group in the
group's place; shapes without a position after the others), its tables as rows (a large table
is cut into sections each led by its header row), then its speaker notes after a line
"Notes:". Slides with no text are skipped; pages is the number of slides. Pictures, charts
and SmartArt are not read (python-pptx holds the pictures' bytes, never decodes them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from io import BytesIO

import pptx
from lxml import etree
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.exc import PythonPptxError
from pptx.shapes.base import BaseShape
from pptx.slide import Slide
from pptx.table import Table
from pptx.text.text import TextFrame

from rag.formats.base import Limits, Parsed, cell_text, row_line
from rag.formats.office_xml import Outline, check_parts, damaged, lazily
from rag.schema import Section

_LABEL = "PowerPoint"
# What python-pptx and lxml raise on a damaged package: a missing part or relationship
# (KeyError), a main part of another type (ValueError), bad XML, a broken ZIP.
_ERRORS = (KeyError, ValueError, etree.XMLSyntaxError, PythonPptxError, OSError)
_TITLES = {PP_PLACEHOLDER.TITLE, PP_PLACEHOLDER.CENTER_TITLE, PP_PLACEHOLDER.VERTICAL_TITLE}


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A PowerPoint file's sections, one or more per slide with text."""
    check_parts(data, source, _LABEL)
    try:
        presentation = pptx.Presentation(BytesIO(data))
        slides = list(presentation.slides)
        for slide in slides:  # a missing or broken notes part fails here, not halfway
            _ = slide.has_notes_slide and slide.notes_slide.notes_text_frame
    except _ERRORS as exc:
        raise damaged(source, _LABEL, exc) from exc
    sections = _sections(slides, limits.table_chars)
    return Parsed("pptx", len(slides), lazily(sections, lambda exc: damaged(source, _LABEL, exc),
                                              _ERRORS))


def _sections(slides: list[Slide], budget: int) -> Iterator[Section]:
    for number, slide in enumerate(slides, start=1):
        yield from _slide(number, slide, budget)


def _slide(number: int, slide: Slide, budget: int) -> Iterator[Section]:
    """A slide's sections: its shapes' text and tables, then its notes; a slide of its title
    alone has the title as its text."""
    title_shape = next((s for s in slide.placeholders
                        if s.placeholder_format.type in _TITLES and s.has_text_frame), None)
    title = " ".join(title_shape.text_frame.text.split()) if title_shape else ""
    outline = Outline(budget)
    outline.add_heading(1, f"slide {number}: {title}" if title else f"slide {number}")
    produced = False
    for section in _content(outline, slide, title_shape):
        produced = True
        yield section
    if title and not produced and not outline.has_text:
        outline.add(title)
    yield from outline.flush()


def _content(outline: Outline, slide: Slide, title: BaseShape | None) -> Iterator[Section]:
    for shape in _reading_order(slide.shapes):
        if title is not None and shape.shape_id == title.shape_id:
            continue  # the title is the slide's heading
        if getattr(shape, "has_table", False) and shape.has_table:
            yield from _table(outline, shape.table)
        elif shape.has_text_frame:
            yield from outline.add(_frame_text(shape.text_frame))
    notes = _notes(slide)
    if notes:
        yield from outline.add(f"Notes:\n{notes}")


def _reading_order(shapes: Iterable[BaseShape]) -> Iterator[BaseShape]:
    """Shapes top to bottom, then left to right, a group's shapes in the group's place;
    shapes whose position is not recorded come last, in the order of the file."""
    placed = [s for s in shapes if s.top is not None and s.left is not None]
    unplaced = [s for s in shapes if s.top is None or s.left is None]
    for shape in [*sorted(placed, key=lambda s: (s.top, s.left)), *unplaced]:
        if hasattr(shape, "shapes"):  # a group shape
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _table(outline: Outline, table: Table) -> Iterator[Section]:
    """A table's rows: within the slide's text when they fit the budget, else as sections of
    their own, each led by the header row."""
    rows = list(_rows(table))
    lines = [line for line in (row_line(cells) for cells in rows) if line]
    if sum(len(line) + 1 for line in lines) <= outline.budget:
        yield from outline.add("\n".join(lines))
    else:
        yield from outline.table((None, cells) for cells in rows)


def _rows(table: Table) -> Iterator[list[str]]:
    """A table's rows of cell texts: a cell merged across columns is one cell, a cell merged
    down repeats its text in each row."""
    above: dict[int, str] = {}
    for row in table.rows:
        cells: list[str] = []
        for column, cell in enumerate(row.cells):
            tc = cell._tc  # python-pptx tells whether a cell is spanned, not which way
            if tc.get("hMerge") in ("1", "true"):
                continue
            if tc.get("vMerge") in ("1", "true"):
                cells.append(above.get(column, ""))
                continue
            above[column] = cell_text(cell.text)
            cells.append(above[column])
        yield cells


def _notes(slide: Slide) -> str:
    """The slide's speaker notes ('' when it has none)."""
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return _frame_text(frame).strip() if frame is not None else ""


def _frame_text(frame: TextFrame) -> str:
    """A text frame's paragraphs as lines; a line break within one (python-pptx: "\\v") too."""
    return frame.text.replace("\v", "\n")
