"""PDF tables as rows with their header, prose pages as pypdf read them, encrypted and damaged PDFs
(rag.formats.pdf)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from rag.chunking import chunk_sections
from rag.embedding import LocalEmbedder
from rag.errors import LoaderError
from rag.formats import Limits
from rag.formats.pdf import _grouped, _row_blocks, read
from rag.pdf import normalise_pdf_text, without_running_lines
from rag.schema import Section
from tests.helpers import OFFICE, PDFS

FBI = PDFS / "fbi-nics-checks-2015-11-table.pdf"
HEADER = ("State / Territory Permit Handgun Long Gun *Other **Multiple Admin Handgun Long Gun "
          "*Other Handgun Long Gun *Other Handgun Long Gun *Other Handgun Long Gun Handgun "
          "Long Gun *Other Handgun Long Gun *Other Totals")
KENTUCKY = ("Kentucky 264,140 12,155 14,847 254 648 1 9 11 0 1,491 2,315 2 2 2 0 6 8 0 0 0 0 "
            "295,891")
# Prose PDFs whose text PDFium extracts (rag.pdfium_text) and pypdf 7.1 extracted before it,
# with the lowest similarity of a page's letters and digits between the two that is allowed.
PROSE = {
    PDFS / "nist-sp800-145-cloud-definition-7p.pdf": 0.99,
    PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf": 0.99,
    # the footers and figure numbers of its figure pages come in another order
    PDFS / "federal-register-2020-17221-3col.pdf": 0.9,
    PDFS / "pysample-libreoffice-1page.pdf": 0.99,
    OFFICE / "multi-column-2p.pdf": 0.99,
    OFFICE / "copy-protected.pdf": 0.99,
    OFFICE / "layout-parser-paper-with-table.pdf": 0.99,
    OFFICE / "korean-text-with-tables.pdf": 0.99,
}
_LETTERS = re.compile(r"[^\W_]+")


def _sections(path: Path, limits: Limits | None = None) -> list[Section]:
    return list(read(path.read_bytes(), path.name, limits or Limits()).sections)


def test_kentucky_row_is_one_line_with_its_values_apart() -> None:
    [page] = _sections(FBI)
    lines = page.text.splitlines()
    assert KENTUCKY in lines
    assert "Alabama 18,870 23,022 22,650 859 1,178 0 14 15 0 2,179" in page.text
    # pypdf alone runs the cells of narrow columns together: "0 1,491 2,315" as "01,4912,315"
    assert "01,491" not in page.text and "0295,891" not in page.text


def test_every_group_of_rows_is_led_by_the_header() -> None:
    [page] = _sections(FBI, Limits(table_chars=500))
    assert page.text.startswith(HEADER + "\nAlabama 18,870")
    paragraphs = page.text.split("\n\n")
    groups = [p for p in paragraphs if p.startswith(HEADER + "\n")]
    assert len(groups) >= 8 and paragraphs[:len(groups)] == groups
    tail = paragraphs[len(groups):]  # the title, notes and disclaimers
    rows = [row for group in groups for row in group.split("\n")[1:]]
    assert len(rows) == 56  # 55 states and territories, and the totals
    assert rows[0].startswith("Alabama 18,870") and rows[-1].startswith("Totals 804,006")
    assert tail[0].startswith("NICS Firearm Background Checks")
    assert "DISCLAIMERS:" in "\n".join(tail)
    kentucky = next(p for p in groups if KENTUCKY in p)
    assert len(kentucky) - len(HEADER) <= 500 * 0.7 + 1


def test_kentucky_chunk_holds_the_column_names() -> None:
    """Chunked as the ingest chunks it (200 tokens, 40 overlap, table_chars 500), the chunk
    with Kentucky's row also holds the header, and so do nearly all chunks of the table."""
    count = LocalEmbedder().count_tokens
    parsed = read(FBI.read_bytes(), FBI.name, Limits(table_chars=200 * 5 // 2))
    chunks = list(chunk_sections(parsed.sections, doc_id="fbi", version="1", source=FBI.name,
                                 count_tokens=count, max_tokens=200, overlap=40))
    kentucky = [c for c in chunks if "Kentucky 264,140" in c.text]
    assert kentucky and all(HEADER in c.text for c in kentucky)
    rows = [c for c in chunks if any(line.startswith(("Alabama", "Ohio", "Texas", "Wyoming"))
                                     for line in c.text.splitlines())]
    assert len(rows) >= 4 and all("State / Territory" in c.text for c in rows)


def test_tables_are_regrouped_only_when_long_and_headed() -> None:
    rows = [f"Row{n} {n} {n * 2} {n * 3}" for n in range(40)]
    lines = ["Some prose before.", "Name A B C", *rows, "Prose after the table."]
    blocks = _row_blocks(lines)
    assert blocks == [(2, 42)]
    grouped = _grouped(lines, blocks, budget=100)
    paragraphs = grouped.split("\n\n")
    assert paragraphs[0] == "Some prose before."
    assert paragraphs[-1] == "Prose after the table."
    assert len(paragraphs) > 4
    assert all(p.startswith("Name A B C\nRow") and len(p) <= 11 + 100 for p in paragraphs[1:-1])
    assert [line for line in grouped.splitlines() if line.startswith("Row")] == rows
    assert _grouped(lines, blocks, budget=10_000) == "\n".join(lines)  # short enough
    unheaded = ["BMFOR)", *rows]  # a wrapped line is no header: the rows stay as they are
    assert _grouped(unheaded, _row_blocks(unheaded), budget=100) == "\n".join(unheaded)
    prose = ["In 2015, 3 of 4 readers said", "that 2 of 5 pages in 10 books", "were 1 in 3."]
    assert _row_blocks(prose) == []


@pytest.mark.parametrize("path", sorted(PROSE), ids=lambda p: p.name)
def test_prose_pdfs_keep_what_pypdf_read(path: Path) -> None:
    """Every page holds the letters and digits pypdf extracted, in its order (pypdf's
    text run through the same normalising and running-line removal)."""
    reader = PdfReader(path)
    if reader.is_encrypted:
        reader.decrypt("")
    before = dict(without_running_lines(
        (n, normalise_pdf_text(page.extract_text())) for n, page in enumerate(reader.pages, 1)))
    now = {s.page: s.text for s in _sections(path)}
    assert set(now) == {n for n, text in before.items() if text}
    ratios = []
    for number, text in before.items():
        old, new = ("".join(_LETTERS.findall(t)) for t in (text, now.get(number, "")))
        ratios.append(difflib.SequenceMatcher(None, old, new, autojunk=False).ratio())
    assert min(ratios) >= PROSE[path] and sum(ratios) / len(ratios) >= 0.97, ratios


def test_text_table_of_a_paper_keeps_rows_on_lines() -> None:
    [page] = _sections(OFFICE / "layout-parser-paper-with-table.pdf")
    assert "PubLayNet [38] F / M M Layouts of modern scientific documents" in page.text.split("\n")
    assert "Dataset Base Model1 Large Model Notes" in page.text


def test_korean_pdf_with_tables_is_read() -> None:
    [page] = _sections(OFFICE / "korean-text-with-tables.pdf")
    assert "적립 제외 대상" in page.text and "할인점 이마트, 이마트 트레이더스" in page.text


def test_password_protected_pdf_fails_alone() -> None:
    for path in (OFFICE / "password.pdf", PDFS / "edge-encrypted-aes256-nist-sp800-145.pdf"):
        with pytest.raises(LoaderError) as info:
            read(path.read_bytes(), path.name, Limits())
        assert info.value.reason == ("the PDF is password-protected: remove the password and "
                                     "add it again (it is encrypted)")


def test_pdf_with_an_empty_user_password_is_read() -> None:
    path = OFFICE / "copy-protected.pdf"
    assert PdfReader(path).is_encrypted
    parsed = read(path.read_bytes(), path.name, Limits())
    sections = list(parsed.sections)
    assert parsed.pages == 2 and [s.page for s in sections] == [1, 2]
    assert sections[0].text.startswith("LayoutParser: A Unified Toolkit for Deep\nLearning Based")
    assert parsed.meta["ocr_pages"] == []  # its text layer is read; its figure is not OCR'd


def test_pdf_with_a_damaged_cross_reference_is_repaired_and_read() -> None:
    sections = _sections(OFFICE / "failure-after-repair.pdf")
    assert [s.page for s in sections] == list(range(1, 77))
    assert "Understanding Breast Cancer" in sections[1].text


def test_400_page_pdf_reads_every_page_with_text() -> None:
    path = OFFICE / "pdf2image-memory-error-test-400p.pdf"
    parsed = read(path.read_bytes(), path.name, Limits())
    pages = [s.page for s in parsed.sections]
    assert parsed.pages == 400
    assert len(pages) == 398 and 2 not in pages and 400 not in pages  # blank, no images
    assert parsed.meta["ocr_pages"] == []


def test_limits_are_checked_before_any_page_is_read() -> None:
    path = PDFS / "nist-sp800-145-cloud-definition-7p.pdf"
    with pytest.raises(LoaderError) as info:
        read(path.read_bytes(), path.name, Limits(max_pages=3))
    assert info.value.reason == ("the PDF has 7 pages, more than the limit of 3 (MAX_PAGES); "
                                 "split it, or raise MAX_PAGES")
    with pytest.raises(LoaderError, match=r"MAX_PAGE_CONTENT_MB"):
        read(path.read_bytes(), path.name, Limits(max_page_content_mb=0.001))
