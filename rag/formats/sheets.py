"""A sheet of cells (an Excel sheet, a CSV file) cut into tables at blank rows; each table's
header (its title rows and first row of several cells, or the header-only blocks just above a
block of numbers) leads every section of it, so each row keeps its column names."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rag.formats.base import row_line, table_sections
from rag.schema import Section


def is_number(text: str) -> bool:
    """Whether a cell's text is a number: '13', '-1,164', '(2.5)', '$3', '12 %'."""
    text = text.strip().strip("()").replace("%", "").rstrip()
    text = text.lstrip("+-−$€£¥ ")
    if not text or not text[0].isdigit():
        return False
    return all(c.isdigit() or c in ".,' " for c in text)


# -- a sheet's rows cut into tables -----------------------------------------------------------

Row = tuple[int, list[str], bool]
"""A sheet's row: its number (from 1, blank rows included), its cells' texts, and whether it
holds a number."""

_TITLE_ROWS = 3  # at most this many one-cell rows above a table's first full row: its titles
_CARRIED_ROWS = 3  # a block of so few rows of text only, above a block of numbers: its header
_CARRIED_BLOCKS = 3  # ... and at most this many such blocks in a row (titles, then headers)
_HELD_ROWS = 2000  # a block's rows held to find its empty columns; a longer one keeps them all
_HELD_CHARS = 2_000_000


@dataclass(slots=True)
class _Block:
    """A run of non-blank rows: its first rows (all of them unless `rest` reads on), the
    columns they fill, whether they hold numbers (the first row in particular), and how many
    rows lead it (one-cell title rows and its first row of several cells)."""

    rows: list[Row]
    columns: set[int]
    numeric: bool = False
    singles: int = 0
    lead: int | None = None  # None until its first row of several cells is seen
    rest: Iterator[Row] | None = None

    def add(self, row: Row, filled: list[int]) -> None:
        self.rows.append(row)
        self.columns.update(filled)
        self.numeric = self.numeric or row[2]
        if self.lead is None and len(filled) > 1:
            self.lead = self.singles + 1 if self.singles <= _TITLE_ROWS else 0
        elif self.lead is None:
            self.singles += 1


def sheet_sections(rows: Iterable[Row], heading: tuple[str, ...],
                   budget: int) -> Iterator[Section]:
    """A sheet's tables as sections headed (*heading, 'rows 3-40'), read in one pass. Blank
    rows part blocks; a block is a table led by its title rows and first row of several
    cells, except that up to three short blocks of text only just above a block of numbers
    (a title, a header cut off by a blank row) lead it. Columns empty throughout a table are
    dropped (in a table of up to _HELD_ROWS rows)."""
    pending: list[_Block] = []
    for block in _blocks(iter(rows)):
        short = block.rest is None and len(block.rows) <= _CARRIED_ROWS
        if block.numeric and pending:
            yield from _table(pending, block, heading, budget)
            pending = []
        elif short and not block.numeric:
            pending.append(block)
            if len(pending) > _CARRIED_BLOCKS:
                yield from _table([], pending.pop(0), heading, budget)
        else:
            for alone in [*pending, block]:
                yield from _table([], alone, heading, budget)
            pending = []
    for alone in pending:
        yield from _table([], alone, heading, budget)


def _blocks(rows: Iterator[Row]) -> Iterator[_Block]:
    """The blocks of non-blank rows; a block's `rest` must be read before the next block."""
    for row in rows:
        filled = [index for index, cell in enumerate(row[1]) if cell]
        if not filled:
            continue
        block = _Block([], set())
        block.add(row, filled)
        held = sum(map(len, row[1]))
        for more in rows:  # the same rows, read on
            filled = [index for index, cell in enumerate(more[1]) if cell]
            if not filled:
                break
            block.add(more, filled)
            held += sum(map(len, more[1]))
            if len(block.rows) >= _HELD_ROWS or held >= _HELD_CHARS:
                block.rest = _until_blank(rows)
                break
        yield block
        for _ in block.rest or ():  # what the reader of the block left
            pass


def _until_blank(rows: Iterator[Row]) -> Iterator[Row]:
    for row in rows:
        if not any(row[1]):
            return
        yield row


def _table(above: list[_Block], block: _Block, heading: tuple[str, ...],
           budget: int) -> Iterator[Section]:
    """The sections of `block`'s table, led by the blocks `above` it (if any) and its own
    lead rows, unless its first row holds numbers (then the blocks above are its header)."""
    own = 0 if above and block.rows[0][2] else (block.lead or 0)
    columns = None if block.rest else sorted(set(block.columns).union(
        *(b.columns for b in above)))
    lead_rows = [cells for b in above for _, cells, _ in b.rows]
    lead_rows += [cells for _, cells, _ in block.rows[:own]]
    lead_rows = [_project(cells, columns) for cells in lead_rows]
    lead = "\n".join(row_line(cells) for cells in lead_rows)
    first = (above or [block])[0].rows[0][0]
    data = itertools.chain(block.rows[own:], block.rest or ())
    start = next(data, None)
    if start is None:  # a table of titles and header only
        yield Section(text=lead, heading=(*heading, rows_label(first, block.rows[-1][0])))
        return
    cells = (_project(row[1], columns) for row in itertools.chain([start], data))
    if len(lead) > budget:
        yield from _records(lead_rows, cells, start[0], heading, budget)
    elif lead:
        yield from table_sections(itertools.chain([[lead]], cells), heading=heading,
                                  budget=budget, row_label=rows_label, first_row=start[0] - 1)
    else:
        yield from table_sections(cells, heading=heading, budget=budget, header=False,
                                  row_label=rows_label, first_row=start[0])


def _records(lead_rows: list[list[str]], data: Iterator[list[str]], first: int,
             heading: tuple[str, ...], budget: int) -> Iterator[Section]:
    """The rows of a table whose header alone outgrows a section (hundreds of columns):
    each row as 'column: value' lines, in sections led by its first cell's line."""
    names = lead_rows[-1]
    titles = [row_line(cells) for cells in lead_rows[:-1]]
    for number, cells in enumerate(data, start=first):
        lines = [f"{name}: {value}" if index < len(names) and (name := names[index]) else value
                 for index, value in enumerate(cells) if value]
        lead = "\n".join([*titles, lines[0]])
        yield from table_sections(itertools.chain([[lead]], ([line] for line in lines[1:])),
                                  heading=(*heading, rows_label(number, number)),
                                  budget=budget)


def rows_label(first: int, last: int) -> str:
    """'row 7', 'rows 2-40'."""
    return f"row {first}" if first == last else f"rows {first}-{last}"


def _project(cells: list[str], columns: list[int] | None) -> list[str]:
    if columns is None:
        return cells
    return [cells[index] if index < len(cells) else "" for index in columns]
