"""Loading real PDF, Markdown and text files into sections."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from rag.errors import LoaderError
from rag.loading import (
    SUPPORTED_EXTENSIONS,
    SUPPORTED_TYPES,
    document_name,
    find_files,
    iter_files,
    load,
    normalise_pdf_text,
    without_running_lines,
)
from rag.schema import Section
from tests.helpers import FAQ, PDFS, SHARED

BROKEN = {"edge-encrypted-aes256-nist-sp800-145.pdf", "edge-truncated-nist-sp800-145.pdf"}
GOOD_PDFS = sorted(p for p in PDFS.glob("*.pdf") if p.name not in BROKEN)


def _sections(path: Path, source: str | None = None) -> list[Section]:
    return list(load(path, source).sections)


def test_shared_pdfs_present() -> None:
    assert len(GOOD_PDFS) == 6, f"expected six readable PDFs in {PDFS}"


@pytest.mark.parametrize("path", GOOD_PDFS, ids=lambda p: p.name)
def test_pdf_pages_are_one_based_and_match_pypdf(path: Path) -> None:
    doc = load(path)
    expected = len(PdfReader(path).pages)
    assert doc.kind == "pdf"
    assert doc.pages == expected
    assert doc.source == path.name
    sections = list(doc.sections)
    pages = [s.page for s in sections]
    assert pages == sorted(set(pages)), "one section per page, in order"
    assert all(p is not None and 1 <= p <= expected for p in pages)
    assert all(s.text == s.text.strip() and s.text for s in sections)
    assert all("  " not in s.text for s in sections), "runs of spaces are collapsed"


def test_pdf_sha256_is_of_raw_bytes() -> None:
    path = PDFS / "nist-sp800-145-cloud-definition-7p.pdf"
    assert load(path).sha256 == "7b0c1a9fdfc67218b8ba2098f448c100c27070db91736b3c87fed63bfa21d418"


@pytest.mark.parametrize(("name", "page", "phrase"), [
    ("nist-sp800-145-cloud-definition-7p.pdf", 6, "Cloud computing is a model for enabling"),
    ("nist-sp800-145-cloud-definition-7p.pdf", 7, "Infrastructure as a Service (IaaS)"),
    ("nist-sp800-88r1-media-sanitization-64p.pdf", 1, "Richard Kissel"),
    ("acl2016-sennrich-subword-nmt-2col.pdf", 1, "Neural Machine Translation of Rare Words"),
    ("pysample-libreoffice-1page.pdf", 1, "Lorem ipsum dolor sit amet"),
    ("fbi-nics-checks-2015-11-table.pdf", 1, "Alabama 18,870"),
])
def test_pdf_known_phrase_on_known_page(name: str, page: int, phrase: str) -> None:
    by_page = {s.page: s.text for s in _sections(PDFS / name)}
    assert phrase in by_page[page]


def test_pdf_hyphenated_line_breaks_are_joined() -> None:
    text = _sections(PDFS / "acl2016-sennrich-subword-nmt-2col.pdf")[0].text
    assert "fixed vocabulary" in text  # "ﬁxed vocabu-\nlary" in the raw extraction
    assert "vocabu-\n" not in text


def test_normalise_pdf_text_rules() -> None:
    raw = "A  transla-\ntion   of\t text \n \n  Second para-\nGraph, page 800-\n145 \n"
    assert normalise_pdf_text(raw) == "A translation of text\n\nSecond para-\nGraph, page 800-\n145"
    toc = "Summary ......................... 15\nScope . . . . . . . 2\nversion 1.2.3 -- ok"
    assert normalise_pdf_text(toc) == "Summary ... 15\nScope ... 2\nversion 1.2.3 -- ok"


def test_pdf_sections_are_lazy() -> None:
    doc = load(PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf")
    first = next(doc.sections)
    assert first.page == 1
    assert doc.pages == 64


def test_encrypted_pdf_fails_with_a_clear_reason() -> None:
    with pytest.raises(LoaderError) as info:
        load(PDFS / "edge-encrypted-aes256-nist-sp800-145.pdf")
    assert "encrypted" in info.value.reason
    assert "password" in info.value.reason


def test_encrypted_pdf_with_empty_user_password_opens(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=PDFS / "pysample-libreoffice-1page.pdf")
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-256")
    path = tmp_path / "open.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    sections = _sections(path)
    assert "Lorem ipsum" in sections[0].text


def test_truncated_pdf_fails_naming_the_file() -> None:
    name = "edge-truncated-nist-sp800-145.pdf"
    with pytest.raises(LoaderError) as info:
        load(PDFS / name, source=f"uploads/{name}")
    assert name in str(info.value)
    assert info.value.source == f"uploads/{name}"
    assert "damaged or truncated" in info.value.reason


def test_pdf_without_text_fails_after_iterating(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.add_blank_page(width=612, height=792)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    doc = load(path)
    assert doc.pages == 2
    with pytest.raises(LoaderError, match="no extractable text"):
        list(doc.sections)


def test_pdf_named_txt_is_detected_by_content(tmp_path: Path) -> None:
    path = tmp_path / "report.txt"
    path.write_bytes((PDFS / "nist-sp800-145-cloud-definition-7p.pdf").read_bytes())
    doc = load(path)
    assert doc.kind == "pdf"
    assert doc.pages == 7
    assert any("Cloud computing is a model" in s.text for s in doc.sections)


def test_pdf_name_without_pdf_content_fails(tmp_path: Path) -> None:
    path = tmp_path / "notes.pdf"
    path.write_text("just some text\n")
    with pytest.raises(LoaderError, match="no %PDF header"):
        load(path)


def test_binary_file_named_txt_fails(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(gzip.compress((FAQ / "performance_faq.md").read_bytes()))
    with pytest.raises(LoaderError, match="binary content"):
        load(path)


def test_undecodable_bytes_mean_binary(tmp_path: Path) -> None:
    path = tmp_path / "data.text"  # a text type, so the content decides
    data = gzip.compress((FAQ / "product_faq.md").read_bytes()).replace(b"\x00", b"")
    path.write_bytes(data)
    with pytest.raises(LoaderError, match="binary content"):
        load(path)


def test_nul_bytes_mean_binary(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(b"abc\x00def\n" * 10)
    with pytest.raises(LoaderError, match="binary content"):
        load(path)


def test_non_utf8_text_fails_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Café au lait, naïve résumé. ".encode("latin-1") * 20)
    with pytest.raises(LoaderError, match="not UTF-8"):
        load(path)


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.pdf", "blank.txt"])
def test_empty_files_fail(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(" \n\t\n" if name.startswith("blank") else "")
    with pytest.raises(LoaderError, match="empty file"):
        load(path)


def test_missing_file_and_directory_fail(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="No such file"):
        load(tmp_path / "nope.md")
    with pytest.raises(LoaderError, match="cannot read file"):
        load(tmp_path)


def test_plain_text_is_one_section(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\xef\xbb\xbfFirst line.\r\n\r\nSecond paragraph.\r\n")
    doc = load(path)
    assert doc.kind == "text"
    assert doc.pages is None
    assert list(doc.sections) == [Section(text="First line.\n\nSecond paragraph.")]


def test_markdown_heading_paths_on_real_faq() -> None:
    doc = load(FAQ / "performance_faq.md", "faq/performance_faq.md")
    assert doc.kind == "markdown"
    assert doc.source == "faq/performance_faq.md"
    sections = list(doc.sections)
    headings = [s.heading for s in sections]
    assert ("Performance FAQ", "How to set nlist and nprobe for IVF indexes?") in headings
    assert ("Performance FAQ", "What factors impact CPU usage?") in headings
    assert all(h[0] == "Performance FAQ" for h in headings)
    cpu = sections[headings.index(("Performance FAQ", "What factors impact CPU usage?"))]
    assert cpu.text.startswith("CPU usage increases when Milvus is building indexes")
    assert "####" not in cpu.text
    assert all(s.page is None for s in sections)


def test_markdown_front_matter_dropped(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text(
        "---\nid: doc.md\ntitle: Hidden title\nsummary: not content\n---\n\n"
        "Intro before any heading.\n\n# Guide\n\nBody text.\n"
    )
    sections = _sections(path)
    assert sections == [
        Section(text="Intro before any heading.", heading=()),
        Section(text="Body text.", heading=("Guide",)),
    ]
    assert not any("summary" in s.text or "Hidden title" in s.heading for s in sections)


def test_markdown_structure(tmp_path: Path) -> None:
    path = tmp_path / "doc.markdown"
    path.write_text(
        "# Top\n\n## A\n\nText of A.\n<!-- an editor's note -->\n\n"
        "```bash\n# not a heading\necho hi\n```\n\n"
        "| key | value |\n| --- | --- |\n| nlist | 128 |\n\n"
        "### A.1\n\nDeep text.\n\n## B `code`\n\n<!--\n# hidden heading\n-->\nText of B.\n"
        "\n## Empty\n\n# Other\nSetext\n------\n\nUnder setext.\n"
    )
    sections = _sections(path)
    headings = [s.heading for s in sections]
    assert headings == [("Top", "A"), ("Top", "A", "A.1"), ("Top", "B code"),
                        ("Other", "Setext")]
    a = sections[0].text
    assert "# not a heading\necho hi" in a
    assert "key | value\nnlist | 128" in a  # a table row per line, no rule line
    assert "editor's note" not in a and "<!--" not in a
    assert sections[2].text == "Text of B."
    assert sections[3].text == "Under setext."


def test_markdown_code_comments_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.md"
    path.write_text("# T\n\n```html\n<!-- keep me -->\n<p>x</p>\n```\n")
    assert "<!-- keep me -->" in _sections(path)[0].text


def test_markdown_of_headings_only_keeps_its_headings(tmp_path: Path) -> None:
    path = tmp_path / "stub.md"
    path.write_text("---\ntitle: x\n---\n\n# Upgrade Embedded Milvus\n\n## Deprecated\n")
    assert _sections(path) == [Section(text="Upgrade Embedded Milvus\nDeprecated")]


def test_markdown_only_front_matter_fails(tmp_path: Path) -> None:
    path = tmp_path / "fm.md"
    path.write_text("---\ntitle: x\n---\n")
    with pytest.raises(LoaderError, match="empty file"):
        load(path)


def test_every_milvus_doc_loads() -> None:
    files = list(iter_files([SHARED / "milvus-docs"]))
    assert len(files) == 269
    for path, source in files:
        sections = _sections(path, source)
        assert sections, source
        assert all(s.text.strip() for s in sections)


def test_iter_files_recursion_hidden_and_sources(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    (root / "faq" / "deep").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "b.md").write_text("# B\n")
    (root / "a.txt").write_text("a")
    (root / "faq" / "product_faq.md").write_text("# P\n")
    (root / "faq" / "deep" / "x.PDF").write_bytes(b"%PDF-1.4")
    (root / "faq" / ".hidden.md").write_text("# H\n")
    (root / ".git" / "config.md").write_text("# G\n")
    (root / "image.gif").write_bytes(b"GIF89a")
    single = tmp_path / "loose.bin"
    single.write_bytes(b"x")
    found = list(iter_files([root, single]))
    assert [source for _, source in found] == [
        "a.txt", "b.md", "faq/deep/x.PDF", "faq/product_faq.md", "loose.bin",
    ]
    assert found[2][0] == root / "faq" / "deep" / "x.PDF"
    assert found[-1] == (single, "loose.bin")


def test_iter_files_on_real_folder() -> None:
    found = dict((source, path) for path, source in iter_files([FAQ]))
    assert sorted(found) == ["operational_faq.md", "performance_faq.md", "product_faq.md",
                             "troubleshooting.md"]
    nested = {source for _, source in iter_files([SHARED / "milvus-docs"])}
    assert "faq/product_faq.md" in nested
    assert ".pdf" in SUPPORTED_EXTENSIONS and ".md" in SUPPORTED_EXTENSIONS


@pytest.mark.parametrize("name", ["notes.pages", "data.log", "README", "photo.GIF"])
def test_a_file_of_another_type_fails_before_it_is_read(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("# A heading\n\nPlain words that would load as text.\n")
    with pytest.raises(LoaderError) as info:
        load(path, f"given/{name}")
    assert info.value.source == f"given/{name}"
    suffix = path.suffix.lower()
    assert f"unsupported file type ({suffix or 'no extension'})" in info.value.reason
    assert SUPPORTED_TYPES in info.value.reason
    for extension in SUPPORTED_EXTENSIONS:  # the message names every type, from the one list
        assert extension in SUPPORTED_TYPES


def test_document_names_follow_one_rule(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    nested = root / "reference" / "index.md"
    assert document_name(nested, root) == "reference/index.md"
    assert document_name(nested) == "index.md"  # given by itself (or uploaded)
    assert document_name("C:/uploads/tmp123/index.md") == "index.md"
    found = find_files([root.parent / "missing.md", nested])
    assert [name for _, name in found.files] == ["missing.md", "index.md"]


def test_find_files_skips_other_types_in_folders_and_counts_them(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    (root / "img").mkdir(parents=True)
    (root / "guide.md").write_text("# G\n")
    (root / "img" / "a.gif").write_bytes(b"GIF89a")
    (root / "img" / "b.gif").write_bytes(b"GIF89a")
    (root / "conf.yaml").write_text("a: 1\n")
    (root / ".cache.bin").write_bytes(b"x")  # hidden: neither a document nor counted
    loose = tmp_path / "notes.pages"
    loose.write_text("given directly")
    found = find_files([root, loose])
    assert found.files == [(root / "guide.md", "guide.md"), (loose, "notes.pages")]
    assert sorted(p.name for p in found.ignored) == ["a.gif", "b.gif", "conf.yaml"]
    assert found.ignored_summary() == "3 files of other types (.gif ×2, .yaml)"
    assert find_files([root / "guide.md"]).ignored_summary() == ""
    assert list(iter_files([root, loose])) == found.files


_BARE_PAGE_NUMBER = re.compile(r"(?:\d{1,4}|[ivx]{1,5}|Page \d+ of \d+)")


@pytest.mark.parametrize("path", GOOD_PDFS, ids=lambda p: p.name)
def test_pdf_pages_have_no_bare_page_numbers_at_their_edges(path: Path) -> None:
    for section in _sections(path):
        lines = section.text.split("\n")
        assert not _BARE_PAGE_NUMBER.fullmatch(lines[0]), (section.page, lines[0])
        assert not _BARE_PAGE_NUMBER.fullmatch(lines[-1]), (section.page, lines[-1])


def test_pdf_running_headers_and_footers_are_removed() -> None:
    nist = _sections(PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf")
    header = "NIST SP 800-88 Rev. 1 Guidelines for Media Sanitization"
    assert not any(header in s.text for s in nist)
    by_page = {s.page: s.text for s in nist}
    # the headings are paragraphs of their own: a wider gap than lines have goes before them
    assert by_page[9].startswith("1 Introduction\n\n1.1 Purpose and Scope\n\nThe information")
    assert by_page[3].endswith("Email: 800-88r1comments@nist.gov")  # its "ii" is gone

    cloud = {s.page: s.text for s in _sections(PDFS / "nist-sp800-145-cloud-definition-7p.pdf")}
    assert cloud[6].startswith("2. The NIST Definition of Cloud Computing\n")
    # PDFium keeps words whole where pypdf split them at a kerning ("c apabilities")
    assert "provision computing capabilities" in cloud[6] and "multi-tenant model" in cloud[6]

    register = _sections(PDFS / "federal-register-2020-17221-3col.pdf")
    text = "\n".join(s.text for s in register)
    assert "Federal Register / Vol. 85" not in text and "VerDate" not in text
    assert "jbell on DSKJLSW7X2PROD" not in text
    # a word hyphenated at the foot of a column keeps its hyphen: the line PDFium joins to it
    # is the footer far below, not the word's second half
    assert register[0].text.endswith("accident after takeoff from Soekarno-")
    # content that recurs near the top of a few pages, numbers aside, stays
    assert "(4) In the Operating Procedures chapter," in text
    assert "(5) In the Operating Procedures chapter," in text

    table = _sections(PDFS / "fbi-nics-checks-2015-11-table.pdf")[0].text
    assert "Page 1 of" not in table and table.startswith("State / Territory")


def test_running_lines_rules_on_made_up_pages() -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
             "kappa", "lambda", "mu"]
    pages = [
        (n, f"ACME Annual Report {2000 + n}\nOn {word} we say this.\nAnd {word} is that."
            f"\n\n{n}")
        for n, word in enumerate(words, start=1)
    ]
    pages[4] = (5, "Unique top line.\nAbout epsilon.\n\nPage 5 of 12")
    pages[6] = (7, "ACME Annual Report 2007\nItem (1) of the list.\nEnd of eta.\n\n- 7 -")
    pages[7] = (8, "ACME Annual Report 2008\nItem (2) of the list.\nEnd of theta.\n\n8")
    pages[8] = (9, "ACME Annual Report 2009\nItem (3) of the list.\nEnd of iota.\n\n9")
    pages[10] = (11, "A first line of its own.\nACME Annual Report 2011\nOn kappa.\n\nEnd.")
    cleaned = dict(without_running_lines(pages))
    assert list(cleaned) == list(range(1, 13))
    # a running line is dropped wherever it is in the edge lines (extraction order may put
    # a caption outside it), the lines outside it stay
    assert cleaned[11] == "A first line of its own.\nOn kappa.\n\nEnd."
    assert cleaned[1] == "On alpha we say this.\nAnd alpha is that."
    assert cleaned[5] == "Unique top line.\nAbout epsilon."
    assert cleaned[7] == "Item (1) of the list.\nEnd of eta."  # on 3 of 12 pages: content
    few = dict(without_running_lines(pages[:2]))  # two pages: nothing counts as running
    assert few[1] == "ACME Annual Report 2001\nOn alpha we say this.\nAnd alpha is that."


def test_running_lines_look_ahead_is_bounded() -> None:
    consumed = 0

    def pages() -> Iterator[tuple[int, str]]:
        nonlocal consumed
        for number in range(1, 601):
            consumed += 1
            yield number, f"Running title\nText of page {_spelled(number)}.\n{number}"

    given = 0
    for number, text in without_running_lines(pages()):
        given += 1
        assert number == given and text == f"Text of page {_spelled(number)}."
        assert consumed - given <= 8, "at most eight pages are read ahead"
    assert given == 600


def _spelled(number: int) -> str:
    """A number as letters (a page's own text that digit normalisation cannot make equal)."""
    return "".join("abcdefghij"[int(d)] for d in str(number))
