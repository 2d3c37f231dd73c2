"""Spreadsheets and CSV files read into sections: one location per sheet and row range, each
section led by its table's header so a cell keeps its column name; encodings and delimiters
detected; sub-tables cut at blank rows; empty, damaged and oversized files fail with reasons."""

from __future__ import annotations

import csv as stdlib_csv
import datetime
import itertools
import time
import zipfile
from io import BytesIO

import pytest
from openpyxl import Workbook

from rag.errors import LoaderError
from rag.formats import csv as csv_reader
from rag.formats import reader_for, xlsx
from rag.formats.base import Limits
from rag.schema import Section
from tests.helpers import OFFICE

LIMITS = Limits()
STANLEY_HEADER = "Team | Location | Stanley Cups"
STANLEY_TEXT = ("Stanley Cups\nTeam | Location | Stanley Cups\nBlues | STL | 1\nFlyers | PHI | 2\n"
                "Maple Leafs | TOR | 13")


def _read(name: str, limits: Limits = LIMITS) -> list[Section]:
    kind = "xlsx" if name.endswith(".xlsx") else "csv"
    return list(reader_for(kind)((OFFICE / name).read_bytes(), name, limits).sections)


def _lines(sections: list[Section]) -> set[str]:
    return {line for s in sections for line in s.text.split("\n")}


def test_module_names_do_not_shadow_the_standard_library() -> None:
    # rag/formats/csv.py, email.py and html.py import the stdlib modules of the same name
    assert stdlib_csv.Sniffer is csv_reader.csv.Sniffer
    assert csv_reader.csv.__file__ != csv_reader.__file__
    assert reader_for("csv") is csv_reader.read


# -- the same table as Excel, CSV and UTF-16 CSV ----------------------------------------------

def test_stanley_cups_reads_alike_from_excel_csv_and_utf16_csv() -> None:
    sheets = _read("stanley-cups.xlsx")
    assert [s.heading for s in sheets] == [("Stanley Cups", "rows 3-5"),
                                           ("Stanley Cups Since 67", "rows 3-5")]
    assert sheets[0].text == STANLEY_TEXT
    assert sheets[1].text.split("\n")[1:] == [STANLEY_HEADER, "Blues | STL | 1",
                                              "Flyers | PHI | 2", "Maple Leafs | TOR | 0"]
    for name in ("stanley-cups.csv", "stanley-cups-utf-16.csv"):
        assert _read(name) == [Section(text=STANLEY_TEXT, heading=("rows 3-5",))], name
    parsed = csv_reader.read((OFFICE / "stanley-cups-utf-16.csv").read_bytes(), "s.csv", LIMITS)
    assert parsed.kind == "csv" and parsed.pages is None
    assert parsed.meta == {"encoding": "utf-16", "delimiter": "comma"}


def test_a_long_table_keeps_its_header_row_in_every_section() -> None:
    rows = "\n".join(f"State {n},permit,{n * 1000}" for n in range(1, 201))
    data = f"State,Kind,Checks\n{rows}\n".encode()
    sections = list(csv_reader.read(data, "checks.csv", Limits(table_chars=300)).sections)
    assert len(sections) > 5
    for section in sections:
        lines = section.text.split("\n")
        assert lines[0] == "State | Kind | Checks"
        assert len(lines) > 1 and len(section.text) <= 300 + len(lines[0]) + 30
    assert sections[0].heading == ("rows 2-13",)
    numbers = [int(line.split(" | ")[2]) // 1000
               for s in sections for line in s.text.split("\n")[1:]]
    assert numbers == list(range(1, 201))  # every row once, in order
    assert "State 117 | permit | 117000" in _lines(sections)


def test_semicolon_delimited_csv_splits_at_semicolons_not_commas() -> None:
    parsed = csv_reader.read((OFFICE / "semicolon-delimited.csv").read_bytes(),
                             "semicolon-delimited.csv", LIMITS)
    assert parsed.meta["delimiter"] == "semicolon"
    (section,) = parsed.sections
    assert section.heading == ("rows 2-5",)
    assert section.text.split("\n") == [
        "Lorem, ipsum | dolor sit | amet", "consectetur | adipiscing | elit",
        "sed, do | eiusmod | tempor incididunt", "ut labore | et, dolore | magna aliqua",
        "Ut enim | ad minim | veniam, quis"]


def test_a_tsv_is_split_at_tabs() -> None:
    data = b"Team\tLocation\tStanley Cups\nBlues\tSTL\t1\n"
    (section,) = csv_reader.read(data, "cups.tsv", LIMITS).sections
    assert section.text == "Team | Location | Stanley Cups\nBlues | STL | 1"


def test_a_cp1252_csv_is_decoded_by_its_likely_encoding() -> None:
    data = "Stadt;Straße;Preis\nMünchen;Königstraße;15,50 €\nKöln;Domplatz;3,20 €\n"
    parsed = csv_reader.read(data.encode("cp1252"), "preise.csv", LIMITS)
    assert parsed.meta == {"encoding": "cp1252", "delimiter": "semicolon"}
    assert "München | Königstraße | 15,50 €" in next(parsed.sections).text


def test_a_table_of_hundreds_of_columns_reads_as_column_value_lines() -> None:
    sections = _read("csv-with-long-lines.csv")
    with (OFFICE / "csv-with-long-lines.csv").open(newline="", encoding="utf-8") as file:
        table = list(stdlib_csv.reader(file))
    header = table[0]
    assert len(header) == 370
    assert {s.heading for s in sections} == {(f"row {n}",) for n in range(2, 12)}
    for section in sections:
        number = int(section.heading[0].split()[1])
        row = table[number - 1]
        lines = section.text.split("\n")
        assert lines[0] == f"SpearmanCorrelationCoefficient: {row[0]}"
        assert len(section.text) < LIMITS.table_chars + 200
        for line in lines[1:]:
            name, value = line.rsplit(": ", 1)
            assert row[header.index(name)] == value
    assert "1Freq Ki67CD8frequencyUnstim: -0.285021097" in next(
        s.text for s in sections if s.heading == ("row 2",))
    pairs = sum(len(s.text.split("\n")) - 1 for s in sections)
    assert pairs == sum(1 for row in table[1:] for cell in row[1:] if cell)  # none lost


def test_a_cell_over_the_size_limit_fails_and_the_csv_limit_is_restored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = stdlib_csv.field_size_limit()
    monkeypatch.setattr(csv_reader, "MAX_CELL_CHARS", 1000)
    data = b"name,notes\nshort,ok\nlong," + b"x" * 5000 + b"\n"
    with pytest.raises(LoaderError) as caught:
        list(csv_reader.read(data, "long.csv", LIMITS).sections)
    assert caught.value.reason.startswith("a cell on line 3 is longer than 1,000 characters")
    assert stdlib_csv.field_size_limit() == before


def test_empty_and_binary_csv_files_fail_with_their_reason() -> None:
    with pytest.raises(LoaderError, match=r"empty file \(no cells\)"):
        csv_reader.read(b",,,\n\n , \n", "blank.csv", LIMITS)
    with pytest.raises(LoaderError, match="not a text file"):
        csv_reader.read((OFFICE / "DA-1p.png").read_bytes()[:4000], "image.csv", LIMITS)


# -- Excel ------------------------------------------------------------------------------------

def test_excel_sub_tables_are_cut_at_blank_rows_each_led_by_its_first_row() -> None:
    sections = _read("xlsx-subtable-cases.xlsx")
    assert [s.heading[1] for s in sections] == [
        "rows 3-4", "row 8", "row 13", "rows 16-17", "rows 20-22", "rows 26-27", "rows 32-33",
        "rows 37-39", "rows 44-46", "row 48", "rows 50-51", "rows 54-55"]
    assert {s.heading[0] for s in sections} == {"Sheet1"}
    assert sections[0].text == "a | b\nc | d | e\n |  | - f"  # the empty column C dropped
    assert sections[1].text == "a\nb | c\nd | e"  # a title row above the header
    assert sections[3].text == "a | b\nc | d\n | 2. e"


def test_excel_header_rows_cut_off_by_a_blank_row_lead_the_numbers_below() -> None:
    sections = _read("2023-half-year-analyses-by-segment.xlsx")
    first = sections[0]
    assert first.heading == ("OS-Rev.and results 30 06 2023", "rows 9-18")
    lines = first.text.split("\n")
    assert lines[:3] == ["3. Analyses by segment", "3.1 Operating segments", "Revenue and results"]
    assert lines[3].endswith("| January–June 2023")
    assert lines[4].startswith(" | Sales (a) | Underlying Trading operating profit (b) | ")
    assert "Zone NA | 12553 | 2713 | 2632 | -81 | -29 | -44 | -337" in lines
    second = next(s for s in sections if s.heading[1] == "rows 24-33")
    assert second.text.split("\n")[0].endswith("| January–June 2022")
    assert "Zone NA | 12138 | 2284 | 1829 | -455 | -33 | -41 | -348" in second.text
    notes = next(s for s in sections if s.heading == ("OS-Rev.and results 30 06 2023",
                                                     "rows 35-39"))
    assert notes.text.startswith("(a) Inter-segment sales are not significant.\n")
    sheets = {s.heading[0] for s in sections}
    assert sheets == {"OS-Rev.and results 30 06 2023", "OS-Other information 30 06 2023",
                      "Prod.Rev.and results 30 06 2023", "Prod.-Other inform. 30 06 23",
                      "Reconciliation 30 06 2023"}
    recon = next(s for s in sections if s.heading[0] == "Reconciliation 30 06 2023")
    assert "Operating profit | 7262 | 6619" in recon.text.split("\n")
    assert "In millions of CHF | January–June 2023 | January–June 2022" in recon.text


def test_excel_tables_under_a_title_row_keep_title_and_header() -> None:
    sections = _read("vodafone.xlsx")
    assert [s.heading for s in sections] == [("Index", "rows 5-9"), ("Index", "rows 13-20"),
                                             ("Index", "rows 24-25")]
    metrics = sections[1].text.split("\n")
    assert metrics[:2] == ["Operational metrics", "Topic | Period | Page"]  # column A dropped
    assert "Mobile churn | Nine quarters to 30 June 2023 | 11" in metrics
    assert "Group financial performance | FY 22 | FY 23 | 2" in sections[0].text


def test_a_sheet_of_more_than_1k_cells_is_read_whole_in_row_groups() -> None:
    sections = _read("more-than-1k-cells.xlsx")
    header = " | ".join(["x"] * 26)
    rows = [line for s in sections for line in s.text.split("\n")[1:]]
    assert len(rows) == 39 and set(rows) == {header}
    assert all(s.text.split("\n")[0] == header for s in sections)
    spans = [tuple(map(int, s.heading[1].removeprefix("rows ").split("-"))) for s in sections]
    assert spans[0][0] == 2 and spans[-1][1] == 40
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))


def test_an_empty_workbook_fails_with_its_reason() -> None:
    with pytest.raises(LoaderError) as caught:
        _read("empty.xlsx")
    assert caught.value.reason == "empty file (no cells in any sheet)"


def test_a_damaged_workbook_fails_with_its_reason() -> None:
    data = (OFFICE / "vodafone.xlsx").read_bytes()
    with pytest.raises(LoaderError) as caught:
        xlsx.read(data[: len(data) // 2], "cut.xlsx", LIMITS)
    assert caught.value.reason.startswith("damaged Excel file (not a readable ZIP archive")
    with zipfile.ZipFile(BytesIO(data)) as source, BytesIO() as out:
        with zipfile.ZipFile(out, "w") as copy:
            for info in source.infolist():
                body = source.read(info)
                if info.filename == "xl/worksheets/sheet1.xml":
                    body = body[: len(body) // 2]  # XML cut in the middle of the sheet
                copy.writestr(info, body)
        broken = out.getvalue()
    with pytest.raises(LoaderError) as caught:
        list(xlsx.read(broken, "broken.xlsx", LIMITS).sections)
    assert caught.value.reason.startswith("damaged Excel file ("), caught.value.reason


def _workbook(fill) -> bytes:
    book = Workbook()
    fill(book.active)
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def test_excel_dates_read_as_iso_dates_and_formulas_as_their_values() -> None:
    def fill(sheet) -> None:
        sheet.title = "Payments"
        sheet.append(["Due", "Paid at", "Amount"])
        sheet.append([datetime.datetime(2023, 6, 30), datetime.datetime(2023, 7, 1, 9, 30),
                      120.5])
        sheet.append([datetime.date(2024, 1, 2), None, 3.0])

    (section,) = xlsx.read(_workbook(fill), "pay.xlsx", LIMITS).sections
    assert section == Section(text="Due | Paid at | Amount\n2023-06-30 | 2023-07-01 09:30:00 | "
                                   "120.5\n2024-01-02 |  | 3",
                              heading=("Payments", "rows 2-3"))


def test_a_large_sheet_is_streamed_in_reasonable_time() -> None:
    def fill(sheet) -> None:
        sheet.append(["Order", "Customer", "Region", "Amount"])
        for n in range(1, 20001):
            sheet.append([n, f"Customer {n}", ("North", "South")[n % 2], n * 1.5])

    data = _workbook(fill)
    started = time.perf_counter()
    sections = list(xlsx.read(data, "orders.xlsx", LIMITS).sections)
    elapsed = time.perf_counter() - started
    assert sum(len(s.text.split("\n")) - 1 for s in sections) == 20000
    assert "12345 | Customer 12345 | South | 18517.5" in _lines(sections)
    assert elapsed < 30, elapsed
