"""The Word, OpenDocument and PowerPoint readers (rag.formats.docx, .odt, .pptx) on the real
files of ../shared/data/office, and on copies of them broken or extended in memory."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.errors import LoaderError
from rag.formats import docx as docx_reader
from rag.formats import odt as odt_reader
from rag.formats import pptx as pptx_reader
from rag.formats.base import Limits
from rag.formats.office_xml import check_parts
from rag.schema import Section

OFFICE = Path(__file__).resolve().parents[2] / "shared" / "data" / "office"
ROOT = Path(__file__).resolve().parents[1]


def sections(reader: Callable, name: str, limits: Limits | None = None) -> list[Section]:
    return list(reader((OFFICE / name).read_bytes(), name, limits or Limits()).sections)


def rebuilt(name: str, change: Callable[[str, bytes], bytes | None]) -> bytes:
    """A copy of an office file with each part changed (None: the part left out)."""
    out = io.BytesIO()
    with zipfile.ZipFile(OFFICE / name) as source, zipfile.ZipFile(out, "w") as target:
        for part in source.namelist():
            content = change(part, source.read(part))
            if content is not None:
                target.writestr(part, content)
    return out.getvalue()


def reason(reader: Callable, data: bytes) -> str:
    with pytest.raises(LoaderError) as caught:
        parsed = reader(data, "broken", Limits())
        list(parsed.sections)
    return caught.value.reason


# -- Word ---------------------------------------------------------------------------------


def test_docx_heading_path_lists_and_paragraphs() -> None:
    parsed = docx_reader.read((OFFICE / "simple.docx").read_bytes(), "simple.docx", Limits())
    assert (parsed.kind, parsed.pages) == ("docx", None)
    [section] = list(parsed.sections)
    assert section.heading == ("These are a few of my favorite things:",)
    assert section.page is None
    assert "\n\n- Hockey\n\nAnalysis" in section.text  # a "List Bullet" paragraph
    assert section.text.endswith("This is my third thought.\n\n2023\n\nDOYLESTOWN, PA 18901")
    assert "\n\n\n" not in section.text


def test_docx_tables_in_document_order_with_nested_and_merged_cells() -> None:
    texts = [s.text for s in sections(docx_reader.read, "docx-tables.docx")]
    assert texts == [
        "Simple uniform table",
        "Header Col 1 | Header Col 2\nLorem ipsum | A link example",
        "Nested Table",
        "a | >b< | c\nd | e, f; g&t, h | i\nj | k | l",  # the nested table flattened
        "Table with merged cells",
        # "b" spans two columns: once; "a" and "d" are merged down: in each of their rows
        "a | b\na | c | d\ne | d",
    ]


def test_docx_tables_with_incomplete_rows() -> None:
    texts = [s.text for s in sections(docx_reader.read, "tables-with-incomplete-rows.docx")]
    assert texts[0].startswith("Example of DOCX table where one or more rows")
    assert texts[1:6] == ["a | b\nc | d", "a\nb | c", "a\nb | c | d", "a | b\na | c | d",
                          "a | b | c\n | d\ne | d | f\n | d"]
    assert texts[6].split("\n") == ["Data", "Data", "Data", " | More", "Dato", "WTF?",
                                    "Strange", " | Format"]


def test_docx_table_first_then_paragraph() -> None:
    texts = [s.text for s in sections(docx_reader.read, "fake_table.docx")]
    assert texts == ["Header Col 1 | Header Col 2\nLorem ipsum | A Link example",
                     "Dolor sit amet"]


def test_docx_headers_and_footers_are_not_read() -> None:
    found = sections(docx_reader.read, "docx-hdrftr.docx")
    assert [s.text for s in found] == ["Main document"]  # not "First header para", "para1"
    text = "\n".join(s.text for s in sections(docx_reader.read, "contains-pictures.docx"))
    assert "An inline picture appears here><and this text follows it on the same line." in text
    assert "A floating picture that appears on top of the text" in text
    assert "An inline picture in the header." not in text


def test_docx_pages_from_recorded_page_breaks() -> None:
    parsed = docx_reader.read((OFFICE / "page-breaks.docx").read_bytes(), "p.docx", Limits())
    assert parsed.pages == 6  # page 4 is the empty page an odd-page section start makes
    found = [(s.page, s.text.split("\n")[0]) for s in parsed.sections]
    assert found == [
        (1, "First page, tab here: followed by line-break here:"),
        (2, "<<Text on second page. The font is big so it breaks onto third page"
            "--------------------here-->>"),
        (3, "<<but break falls inside link so text stays together."),
        (5, "<<producing two page-breaks to get from page-3 to page-5."),
        (6, "<<and then more text proceeds."),  # one paragraph cut where its page ends
    ]


def test_docx_table_over_two_pages_leads_each_piece_with_its_header() -> None:
    from docx import Document
    from docx.oxml import OxmlElement

    document = Document()
    document.add_paragraph("Permits issued")
    table = document.add_table(rows=5, cols=2)
    for index, row in enumerate(table.rows):
        row.cells[0].text, row.cells[1].text = ("State", "Permits") if index == 0 else (
            f"State {index}", str(index * 100))
    run = table.rows[3].cells[0].paragraphs[0].runs[0]._r
    run.insert(0, OxmlElement("w:lastRenderedPageBreak"))  # row 4 starts page 2
    out = io.BytesIO()
    document.save(out)
    parsed = docx_reader.read(out.getvalue(), "t.docx", Limits())
    assert parsed.pages == 2
    assert [(s.page, s.text) for s in parsed.sections] == [
        (1, "Permits issued"),
        (1, "State | Permits\nState 1 | 100\nState 2 | 200"),
        (2, "State | Permits\nState 3 | 300\nState 4 | 400"),
    ]


def test_docx_title_heading_levels_and_numbered_lists() -> None:
    from docx import Document

    document = Document()
    document.add_heading("Field guide", level=0)
    document.add_heading("Birds", level=1)
    document.add_paragraph("Parrots", style="List Number")
    document.add_paragraph("Owls", style="List Number")
    document.add_heading("Owls at night", level=2)
    document.add_paragraph("They hunt in the dark.")
    document.add_heading("Fish", level=1)
    document.add_paragraph("Trout", style="List Bullet")
    out = io.BytesIO()
    document.save(out)
    found = [(s.heading, s.text) for s in docx_reader.read(out.getvalue(), "g.docx",
                                                           Limits()).sections]
    assert found == [
        (("Field guide", "Birds"), "1. Parrots\n2. Owls"),
        (("Field guide", "Birds", "Owls at night"), "They hunt in the dark."),
        (("Field guide", "Fish"), "- Trout"),
    ]


def test_docx_handbook_headings_and_numbering() -> None:
    parsed = docx_reader.read((OFFICE / "handbook-872p.docx").read_bytes(), "h.docx",
                              Limits())
    # The file records no page layout (no w:lastRenderedPageBreak): its 54 hand-typed page
    # breaks would number its 872 pages 1 to 83, so pages are not told at all.
    assert parsed.pages is None
    found = list(parsed.sections)
    assert all(s.page is None for s in found)
    chapters = list(dict.fromkeys(s.heading[0] for s in found if s.heading))
    assert chapters[0] == "CHAPTER 1 – INTRODUCTION"
    assert chapters[-1] == "CHAPTER 7 – REPORTS, AUDITS, COMPLIANCE"
    assert len(chapters) == 7
    by_heading = {s.heading: s.text for s in reversed(found)}  # the first of each heading
    assert by_heading[("CHAPTER 1 – INTRODUCTION", "A. PURPOSE")].startswith(
        "The United States Trustee appoints and supervises standing trustees")
    budget = ("CHAPTER 6 - BUDGETS", "A. ANNUAL AND AMENDED BUDGETS",
              "3. OPERATING EXPENSE LINE ITEMS")
    # a list whose numbering starts at 17, written "%1." in lower-case letters
    assert "\n\nq. Equipment/Furniture Rental: This line item" in by_heading[budget]
    assert "U.S. Department of Justice" in found[0].text and found[0].heading == ()


def test_docx_handbook_time_and_memory() -> None:
    script = (
        "import resource, sys, time\n"
        "from pathlib import Path\n"
        "from rag.formats.docx import read\n"
        "from rag.formats.base import Limits\n"
        "start = time.perf_counter()\n"
        "parsed = read(Path(sys.argv[1]).read_bytes(), 'h', Limits())\n"
        "count = sum(1 for _ in parsed.sections)\n"
        "print(count, time.perf_counter() - start,"
        " next(int(l.split()[1]) for l in open('/proc/self/status')"
        " if l.startswith('VmHWM')) // 1024)\n")
    done = subprocess.run([sys.executable, "-c", script, str(OFFICE / "handbook-872p.docx")],
                          capture_output=True, text=True, cwd=ROOT, check=True, timeout=120)
    count, seconds, rss_mb = done.stdout.split()
    assert int(count) > 250
    assert float(seconds) < 20
    assert int(rss_mb) < 400  # measured: about 95 MB


def test_docx_damaged_files_fail_with_their_reason() -> None:
    name = "simple.docx"
    half = rebuilt(name, lambda part, data: data[:len(data) // 2]
                   if part == "word/document.xml" else data)
    assert reason(docx_reader.read, half).startswith("damaged Word file (invalid XML: ")
    missing = rebuilt(name, lambda part, data: None if part == "word/document.xml" else data)
    assert reason(docx_reader.read, missing) == (
        "damaged Word file (There is no item named 'word/document.xml' in the archive)")
    cut = (OFFICE / name).read_bytes()[:20000]
    assert reason(docx_reader.read, cut).startswith(
        "damaged Word file (not a readable ZIP archive: ")
    slides = (OFFICE / "sample-presentation.pptx").read_bytes()
    assert reason(docx_reader.read, slides) == (
        "damaged Word file (is not a Word file, content type is 'application/"
        "vnd.openxmlformats-officedocument.presentationml.presentation.main+xml')")


def test_docx_without_text_fails() -> None:
    from docx import Document

    out = io.BytesIO()
    Document().save(out)
    assert reason(docx_reader.read, out.getvalue()).startswith("no text in the Word file")


def test_office_parts_too_large_to_hold_are_refused() -> None:
    with pytest.raises(LoaderError) as caught:
        check_parts((OFFICE / "handbook-872p.docx").read_bytes(), "h.docx", "Word",
                    max_xml_mb=4)
    assert re.fullmatch(r"the Word file's XML parts are \d+ MB unpacked, more than the 4 MB "
                        r"read at once: split it into smaller files and add them",
                        caught.value.reason)


# -- OpenDocument -------------------------------------------------------------------------


def test_odt_headings_lists_and_paragraphs() -> None:
    parsed = odt_reader.read((OFFICE / "simple.odt").read_bytes(), "simple.odt", Limits())
    assert (parsed.kind, parsed.pages) == ("odt", None)
    [section] = list(parsed.sections)
    assert section.heading == ("These are a few of my favorite things:",)
    assert section.text.split("\n\n") == [
        "• Parrots", "•", "- Hockey", "Analysis",
        "This is my first thought. This is my second thought.", "This is my third thought.",
        "2023", "DOYLESTOWN, PA 18901"]


def test_odt_table_as_rows() -> None:
    texts = [s.text for s in sections(odt_reader.read, "fake.odt")]
    assert texts == ["Lorem ipsum dolor sit amet.",
                     "Header row | Mon | Wed | Fri\nColor | Blue | Red | Green\n"
                     "Time | 1pm | 2pm | 3pm\nLeader | Sarah | Mark | Ryan"]
    small = [s.text for s in sections(odt_reader.read, "fake.odt", Limits(table_chars=40))]
    assert small[1:] == ["Header row | Mon | Wed | Fri\nColor | Blue | Red | Green",
                         "Header row | Mon | Wed | Fri\nTime | 1pm | 2pm | 3pm",
                         "Header row | Mon | Wed | Fri\nLeader | Sarah | Mark | Ryan"]


def test_odt_numbered_list() -> None:
    def numbered(part: str, data: bytes) -> bytes:
        if part != "content.xml":
            return data
        text = data.decode()
        text = re.sub(r'<text:list-level-style-bullet text:level="1"[^>]*>',
                      '<text:list-level-style-number text:level="1" style:num-format="a" '
                      'style:num-suffix=")">', text)
        text = text.replace("</text:list-level-style-bullet>",
                            "</text:list-level-style-number>", 1)
        return text.replace("<text:list-item>\n  </text:list-item>",
                            '<text:list-item><text:p>Darts</text:p></text:list-item>').encode()

    data = rebuilt("simple.odt", numbered)
    [section] = list(odt_reader.read(data, "n.odt", Limits()).sections)
    assert "\n\na) Hockey\nb) Darts\n\nAnalysis" in section.text


def test_odt_damaged_files_fail_with_their_reason(capsys: pytest.CaptureFixture[str]) -> None:
    half = rebuilt("fake.odt", lambda part, data: data[:len(data) // 2]
                   if part == "content.xml" else data)
    assert reason(odt_reader.read, half).startswith(
        "damaged OpenDocument file (invalid XML: ")
    missing = rebuilt("fake.odt", lambda part, data: None if part == "content.xml" else data)
    assert reason(odt_reader.read, missing) == (
        "damaged OpenDocument file (There is no item named 'content.xml' in the archive)")
    assert capsys.readouterr().out == ""  # nothing of the file is printed


# -- PowerPoint ---------------------------------------------------------------------------


def test_pptx_table_rows() -> None:
    parsed = pptx_reader.read((OFFICE / "fake-power-point-table.pptx").read_bytes(), "t",
                              Limits())
    assert (parsed.kind, parsed.pages) == ("pptx", 1)
    assert [(s.heading, s.page, s.text) for s in parsed.sections] == [
        (("slide 1: A Slide with a Table",), None,
         "Column 1 | Column 2 | Column 3\nRed | Green | Blue\nPurple | Orange | Yellow\n"
         "Tangerine | Pink | Aqua")]


def test_pptx_large_table_sections_keep_the_header_row() -> None:
    found = sections(pptx_reader.read, "fake-power-point-table.pptx", Limits(table_chars=40))
    assert [s.text for s in found] == [
        "Column 1 | Column 2 | Column 3\nRed | Green | Blue",
        "Column 1 | Column 2 | Column 3\nPurple | Orange | Yellow",
        "Column 1 | Column 2 | Column 3\nTangerine | Pink | Aqua"]
    assert {s.heading for s in found} == {("slide 1: A Slide with a Table",)}


def test_pptx_one_section_per_slide() -> None:
    parsed = pptx_reader.read((OFFICE / "fake-power-point-many-pages.pptx").read_bytes(), "m",
                              Limits())
    assert parsed.pages == 2
    assert [(s.heading, s.text) for s in parsed.sections] == [
        (("slide 1: Page 1",), "Page 1"), (("slide 2: Page 2",), "Page 2")]


def test_pptx_reading_order_and_tables() -> None:
    found = sections(pptx_reader.read, "sample-presentation.pptx")
    assert [s.heading for s in found] == [
        ("slide 1: Title Slide",), ("slide 2: This is the first content slide",),
        ("slide 3: This is the second content slide",),
        ("slide 4: This is kinda backwards, huh?",)]
    assert found[0].text == "With a subtitle"
    assert found[1].text.startswith("There’s text here\nAnd a list of bulleted information")
    left, right = found[2].text.split("\n\n")  # two text boxes side by side: left first
    assert left.startswith("What happens when there’s one here\nTopic 1")
    assert right.startswith("What happens when there’s 2\nDetails 1")
    assert found[3].text == "Table | A | B | C\n1 | A1 | B1 | C1\n2 | A2 | B2 | C2"


def test_pptx_slide_without_title_placeholder() -> None:
    [section] = sections(pptx_reader.read, "science-exploration-1p.pptx")
    assert section.heading == ("slide 1",)
    assert section.text.startswith("GSFC: Sciences and Exploration Directorate\n"
                                   "Virtual Machine Environment Scorecard\n\n"
                                   "Code 600: Sciences and Exploration Directorate (SED)")
    assert "Code 606: Computational and Information Sciences and Technology Office ( The "\
           "SEDVME project is managed out of 606)." in section.text


def test_pptx_shape_without_position_is_read() -> None:
    # "malformed" upstream (Unstructured) for its date placeholder that has no position
    # anywhere; the file is whole and Unstructured's own test reads both texts from it
    parsed = pptx_reader.read((OFFICE / "fake-power-point-malformed.pptx").read_bytes(),
                              "m", Limits())
    assert [(s.heading, s.text) for s in parsed.sections] == [
        (("slide 1: Test Slide",), "Problem Date Placeholder")]


def test_pptx_notes_groups_and_empty_slides() -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation(str(OFFICE / "sample-presentation.pptx"))
    deck.slides[1].notes_slide.notes_text_frame.text = "Mention the sub-bullets."
    blank = deck.slides.add_slide(deck.slide_layouts[6])  # empty placeholders only
    assert blank.shapes and not any(shape.text_frame.text for shape in blank.shapes)
    grouped = deck.slides.add_slide(deck.slide_layouts[6])
    group = grouped.shapes.add_group_shape()
    for top, words in ((2, "lower box"), (1, "upper box")):
        group.shapes.add_textbox(Inches(1), Inches(top), Inches(3), Inches(1)).text = words
    grouped.shapes.add_textbox(Inches(1), Inches(0), Inches(3), Inches(1)).text = "top line"
    out = io.BytesIO()
    deck.save(out)
    parsed = pptx_reader.read(out.getvalue(), "d", Limits())
    assert parsed.pages == 6
    found = list(parsed.sections)
    assert found[1].text.endswith("We can see how it works\n\nNotes:\nMention the sub-bullets.")
    assert [s.heading for s in found[4:]] == [("slide 6",)]  # slide 5 has no text
    assert found[4].text == "top line\n\nupper box\n\nlower box"


def test_pptx_damaged_files_fail_with_their_reason() -> None:
    name = "sample-presentation.pptx"
    bad_slide = rebuilt(name, lambda part, data: data[:100]
                        if part == "ppt/slides/slide2.xml" else data)
    assert reason(pptx_reader.read, bad_slide).startswith(
        "damaged PowerPoint file (invalid XML: ")
    no_slide = rebuilt(name, lambda part, data: None
                       if part == "ppt/slides/slide2.xml" else data)
    assert reason(pptx_reader.read, no_slide).startswith("damaged PowerPoint file (")
    cut = (OFFICE / name).read_bytes()[:20000]
    assert reason(pptx_reader.read, cut).startswith(
        "damaged PowerPoint file (not a readable ZIP archive: ")
