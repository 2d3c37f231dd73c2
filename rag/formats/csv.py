"""CSV and TSV files, laid out as tables by rag.formats.sheets.

A CSV's encoding is found from its byte-order mark, else UTF-8, else by charset-normalizer
(rag.formats.text.decode takes UTF-8 only); its delimiter by csv.Sniffer on a sample (a .tsv
is tab-separated)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed
from rag.formats.encoding import decode_text
from rag.formats.sheets import Row, is_number, sheet_sections

MAX_CELL_CHARS = 1_000_000  # a cell longer than this is no table data: the file is refused
_SAMPLE_CHARS = 64 * 1024  # what csv.Sniffer looks at
_DELIMITERS = ",;\t|"
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A CSV file's tables as sections of whole rows headed ("rows 3-40",), each led by its
    table's header; raises LoaderError when the file is not text, has a cell over
    MAX_CELL_CHARS, is malformed, or holds no cells."""
    text, encoding = decode_text(data, source)
    delimiter = _delimiter(text, source)
    if re.search(f'[^\\s"{re.escape(delimiter)}]', text) is None:
        raise LoaderError(source, "empty file (no cells)")
    sections = sheet_sections(_rows(text, delimiter, source), (), limits.table_chars)
    meta = {"encoding": encoding, "delimiter": _DELIMITER_NAMES.get(delimiter, delimiter)}
    return Parsed("csv", None, sections, meta)


def _delimiter(text: str, source: str) -> str:
    """Tab for a .tsv; else what csv.Sniffer finds in the first lines; a comma when it finds
    none (a file of one column)."""
    if PurePath(source).suffix.lower() == ".tsv":
        return "\t"
    sample = text[:_SAMPLE_CHARS]
    if len(text) > _SAMPLE_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # whole lines only
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:  # no delimiter seen consistently: one column, or a single line
        return ","


def _rows(text: str, delimiter: str, source: str) -> Iterator[Row]:
    """The file's records numbered from 1 (a record may span lines inside quotes): cells
    whitespace-normalised, and whether the row holds a number."""
    reader = csv.reader(_lines(text), delimiter=delimiter)
    number = 0
    while True:
        try:
            with _field_limit(MAX_CELL_CHARS):
                cells = next(reader, None)
        except csv.Error as exc:
            raise LoaderError(source, _csv_reason(exc, reader.line_num)) from exc
        if cells is None:
            return
        number += 1
        cells = [" ".join(cell.split()) for cell in cells]
        yield number, cells, any(is_number(cell) for cell in cells)


def _lines(text: str) -> Iterator[str]:
    """The text's lines with their ends, read off it (an io.StringIO would copy it whole)."""
    end_of_line = "\n" if "\n" in text or "\r" not in text else "\r"  # "\r": old Mac files
    start = 0
    while start < len(text):
        end = text.find(end_of_line, start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _csv_reason(exc: csv.Error, line: int) -> str:
    if "field larger than field limit" in str(exc):
        return (f"a cell on line {line} is longer than {MAX_CELL_CHARS:,} characters (the "
                "longest cell read): it is not table data; save it as a text file")
    return f"damaged CSV file (line {line}: {exc})"


@contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    """csv's process-wide cell size limit set for one read, then restored (a row is read
    in one C call, so no other thread sees the change)."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)
