"""What every format reader shares: the limits it obeys, what it returns, and tables as text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.schema import Section

_SPACE = re.compile(r"\s+")
CELL_SEPARATOR = " | "


@dataclass(frozen=True, slots=True)
class Limits:
    """What a reader may spend on one file, and how it cuts tables. None: no limit.

    `table_chars`: a table's rows are grouped into sections of about this many characters,
    each led by the table's header row, so every chunk of a table keeps its column names (the
    ingest sets it from CHUNK_TOKENS). `ocr`: whether pages without a text layer and images are
    read by OCR; `ocr_languages`: Tesseract's language codes ("eng", "eng+deu")."""

    max_pages: int | None = None
    max_pdf_content_mb: float | None = None
    max_page_content_mb: float | None = None
    table_chars: int = 600
    ocr: bool = True
    ocr_languages: str = "eng"


@dataclass(slots=True)
class Parsed:
    """A file read as a document: its kind, page (or slide) count, and its sections, produced
    lazily. `meta` is filled while the sections are read (e.g. "ocr_pages": [3, 4]) and is
    stored with the document once all its sections have been read."""

    kind: str
    pages: int | None
    sections: Iterator[Section] = field(repr=False)
    meta: dict[str, Any] = field(default_factory=dict)


# A reader: (file content, document name, limits) -> Parsed; raises rag.errors.LoaderError.
Reader = Callable[[bytes, str, Limits], Parsed]


def cell_text(value: object) -> str:
    """A table cell as one line of text: None is empty, whitespace runs become one space,
    a float that is a whole number loses its '.0'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _SPACE.sub(" ", str(value)).strip()


def row_line(cells: Sequence[str]) -> str:
    """One table row as a line, cells separated by ' | ', trailing empty cells dropped."""
    cells = list(cells)
    while cells and not cells[-1]:
        cells.pop()
    return CELL_SEPARATOR.join(cells)


def table_sections(rows: Iterable[Sequence[str]], *, heading: tuple[str, ...] = (),
                   page: int | None = None, budget: int = 600, header: bool = True,
                   row_label: Callable[[int, int], str] | None = None,
                   first_row: int = 1) -> Iterator[Section]:
    """A table as sections of about `budget` characters of whole rows (a row longer than the
    budget stands alone); with `header`, the first non-empty row leads every section. With
    `row_label`, each section's heading gets row_label(first, last) appended (numbers of the
    rows it holds, counted from `first_row`), e.g. "rows 2-40"."""
    lead = ""
    group: list[str] = []
    size = 0
    start = last = first_row
    for number, cells in enumerate(rows, start=first_row):
        line = row_line(cells)
        if not line:
            continue
        if header and not lead:
            lead = line
            continue
        if group and size + len(line) + 1 > budget:
            yield _table_section(lead, group, heading, page, row_label, start, last)
            group, size = [], 0
        if not group:
            start = number
        group.append(line)
        size += len(line) + 1
        last = number
    if group:
        yield _table_section(lead, group, heading, page, row_label, start, last)
    elif lead:  # a table of one row: the row is its text
        yield Section(text=lead, page=page, heading=heading)


def _table_section(lead: str, lines: list[str], heading: tuple[str, ...], page: int | None,
                   row_label: Callable[[int, int], str] | None, first: int,
                   last: int) -> Section:
    text = "\n".join([lead, *lines] if lead else lines)
    if row_label is not None:
        heading = (*heading, row_label(first, last))
    return Section(text=text, page=page, heading=heading)
