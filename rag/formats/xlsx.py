"""Excel workbooks (.xlsx, .xlsm): each sheet's tables as sections of whole rows, located by
sheet and rows ("Sheet1", "rows 2-40"), each led by its table's header so a cell keeps its
column name.

openpyxl reads the workbook in read-only mode (each sheet's XML streamed, not held) with the
values cached at the last save (data_only: a formula reads as its result). Each sheet is read
once, its tables cut at blank rows (rag.formats.csv.sheet_sections). Dates read as ISO dates.
An encrypted workbook is an OLE file, refused by rag.formats.sniff before it gets here."""

from __future__ import annotations

import datetime
import warnings
import zipfile
from collections.abc import Iterator
from io import BytesIO
from typing import Any
from xml.etree.ElementTree import ParseError

from lxml import etree
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook.workbook import Workbook

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed, cell_text
from rag.formats.office_xml import MAX_UNPACKED_MB, check_parts, damaged
from rag.formats.sheets import Row, sheet_sections
from rag.schema import Section

_LABEL = "Excel"
_MB = 1 << 20
# openpyxl holds a workbook's shared strings (the text of its cells) in memory, as Python
# strings of about three times their XML size: a workbook with more is refused.
MAX_SHARED_STRINGS_MB = 128
# What openpyxl raises on a damaged workbook, opening it or parsing a sheet: ZIP errors, a
# missing part (KeyError), XML that does not parse (the stdlib's ParseError for sheets, lxml's
# for the other parts), values of the wrong type in the XML (ValueError, TypeError).
_EXCEL_ERRORS = (InvalidFileException, zipfile.BadZipFile, KeyError, ParseError,
                 etree.XMLSyntaxError, ValueError, TypeError, OSError, EOFError)


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A workbook's sheets as sections; raises LoaderError when it is damaged, too large to
    read, or has no cell in any sheet."""
    # the sheets are streamed: only the ZIP bomb bound applies to them, not a bound on XML
    check_parts(data, source, _LABEL, max_xml_mb=MAX_UNPACKED_MB)
    _check_shared_strings(data, source)
    workbook = _open(data, source)
    try:
        if not any(_has_cells(sheet) for sheet in workbook.worksheets):
            raise LoaderError(source, "empty file (no cells in any sheet)")
    except _EXCEL_ERRORS as exc:
        workbook.close()
        raise damaged(source, _LABEL, exc) from exc
    except LoaderError:
        workbook.close()
        raise
    return Parsed("xlsx", None, _sections(workbook, source, limits.table_chars))


def _check_shared_strings(data: bytes, source: str) -> None:
    with zipfile.ZipFile(BytesIO(data)) as archive:  # readable: check_parts opened it
        size = sum(i.file_size for i in archive.infolist()
                   if i.filename.lower().endswith("sharedstrings.xml"))
    if size > MAX_SHARED_STRINGS_MB * _MB:
        raise LoaderError(source, f"the Excel file's text (shared strings) is {size / _MB:.0f} "
                          f"MB unpacked, more than the {MAX_SHARED_STRINGS_MB} MB read at "
                          "once: split it into smaller workbooks and add them")


def _open(data: bytes, source: str) -> Workbook:
    try:
        with warnings.catch_warnings():
            # openpyxl warns of features it drops (data validation, conditional formatting)
            warnings.simplefilter("ignore", UserWarning)
            return load_workbook(BytesIO(data), read_only=True, data_only=True)
    except _EXCEL_ERRORS as exc:
        raise damaged(source, _LABEL, exc) from exc


def _has_cells(sheet: Any) -> bool:
    """Whether the sheet holds a cell (read up to its first one)."""
    sheet.reset_dimensions()  # read every row and column, whatever size the file declares
    return any(_text(value) for row in sheet.iter_rows(values_only=True) for value in row)


def _sections(workbook: Workbook, source: str, budget: int) -> Iterator[Section]:
    """The sheets' tables as sections, each sheet read once; the workbook closed at the end."""
    try:
        for sheet in workbook.worksheets:
            sheet.reset_dimensions()
            yield from sheet_sections(_rows(sheet), (sheet.title,), budget)
    except _EXCEL_ERRORS as exc:
        raise damaged(source, _LABEL, exc) from exc
    finally:
        workbook.close()


def _rows(sheet: Any) -> Iterator[Row]:
    """A sheet's rows numbered as in Excel (openpyxl fills in the rows the file leaves out)."""
    for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        yield number, [_text(value) for value in values], any(map(_is_number, values))


def _text(value: object) -> str:
    """A cell's value as text: a date (or a date and time) in ISO form."""
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return cell_text(value)


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) or isinstance(
        value, datetime.date | datetime.time | datetime.timedelta)
