"""HTML pages, EPUB books and e-mails read into sections: the main text under its heading path,
scripts, styles and page chrome never kept, charsets honoured; an e-book's chapters in reading
order; a mail's headers and body, its attachments handed out as files of their own."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import default
from io import BytesIO

import pytest
from bs4 import BeautifulSoup
from ebooklib import epub as ebooklib_epub

from rag.errors import LoaderError
from rag.formats import email as mail
from rag.formats import epub, html, reader_for
from rag.formats.base import Limits
from rag.schema import Section
from tests.helpers import OFFICE

LIMITS = Limits()


def _read(name: str) -> list[Section]:
    kind = {"html": "html", "epub": "epub", "eml": "email"}[name.rsplit(".", 1)[1]]
    return list(reader_for(kind)((OFFICE / name).read_bytes(), name, LIMITS).sections)


def _text(sections: list[Section]) -> str:
    return "\n\n".join(s.text for s in sections)


def _script_lines(name: str) -> list[str]:
    """The lines of code of a page's scripts (those long enough to be unmistakable)."""
    soup = BeautifulSoup((OFFICE / name).read_bytes(), "lxml")
    lines = [line.strip() for tag in soup.find_all("script")
             for line in tag.get_text().splitlines()]
    return [line for line in lines if len(line) >= 25]


def _well_formed(sections: list[Section]) -> None:
    for section in sections:
        assert section.text.strip() == section.text and section.text
        assert "\n\n\n" not in section.text


# -- HTML -------------------------------------------------------------------------------------

def test_a_cp1252_page_without_a_charset_is_decoded_right() -> None:
    parsed = html.read((OFFICE / "fake-html-cp1252.html").read_bytes(), "p.html", LIMITS)
    assert parsed.kind == "html" and parsed.pages is None
    assert parsed.meta == {"encoding": "cp1252"}
    (section,) = parsed.sections
    assert section.heading == ("My First Heading",)
    assert section.text.startswith("My first paragraph.\n\nSome text with CP1252-specific")
    for words in ("El niño comió paella con ñoquis.", "Der Preis betrug 15,50 €.",
                  "Kvinnan åt köttbullar med lingonsylt.", "L'été était très chaud"):
        assert words in section.text


def test_a_declared_charset_is_honoured() -> None:
    page = '<html><head><meta charset="iso-8859-15"></head><body><p>Prix : 15 €</p></body>'
    (section,) = html.read(page.encode("iso-8859-15"), "prix.html", LIMITS).sections
    assert section.text == "Prix : 15 €"


def test_scripts_styles_navigation_and_page_chrome_are_dropped() -> None:
    sections = _read("example-with-scripts.html")
    _well_formed(sections)
    text = _text(sections)
    code = _script_lines("example-with-scripts.html")
    assert len(code) > 20
    assert not [line for line in code if line in text]
    for chrome in ("GoogleAnalyticsObject", "jQuery", "switchTo5x", "Skip to main content",
                   "1400 16th Street NW", "Planned Giving", "Who We Are", "@import"):
        assert chrome not in text
    title = "Russian Offensive Campaign Assessment, December 13"
    assert sections[0].heading == (title,)
    assert sections[0].text.startswith("Dec 13, 2022 - Press ISW")
    assert "Belarusian forces remain unlikely to attack Ukraine" in sections[0].text
    assert (title, "Tags") in [s.heading for s in sections]


def test_an_essay_laid_out_in_tables_reads_as_paragraphs_without_its_tracking_script() -> None:
    (section,) = _read("ideas-page.html")
    code = _script_lines("ideas-page.html")
    assert code and not [line for line in code if line in section.text]
    for tracking in ("csell", "YStore", "document.referrer", "store.yahoo"):
        assert tracking not in section.text
    assert section.heading == ("How to Get New Ideas",)  # the page's <title>: it has no h1
    assert " | " not in section.text  # the layout tables are not read as data tables
    assert "\nThe way to get new ideas is to notice anomalies: what seems strange,\n" not in \
        section.text
    assert ("The way to get new ideas is to notice anomalies: what seems strange, or missing, "
            "or broken?") in section.text
    assert "\nKnowledge grows fractally." in section.text


def test_a_data_sheet_page_keeps_its_heading_and_table_rows() -> None:
    sections = _read("example-steelJIS-datasheet.html")
    heading = ("SteelJIS: Japanese Steels and Alloys",
               "SNB22-3 Chemical composition, standards and properties")
    section = next(s for s in sections if s.heading == heading)
    lines = section.text.split("\n")
    assert "C | Si | Mn | P | S | Cr | Mo" in lines
    assert "0.39 - 0.46 | 0.2 - 0.35 | 0.65 - 1.1 | max 0.025 | max 0.025 | 0.75 - 1.2 | " \
           "0.15 - 0.25" in lines
    assert "JIS G 4108 : Alloy steel bars for special application bolting materials" in lines


def test_an_sec_filing_page_reads_its_inline_xbrl_as_text() -> None:
    sections = _read("example-10k-1p.html")
    text = _text(sections)
    assert "Commission file number: 000-30653" in text.split("\n")  # ix: tags inline
    assert "Nevada | 20-8143439" in text.split("\n")
    assert "Galaxy Gaming, Inc." in text
    # bold lines in a row (no text between) nest as the heading path
    assert ("ANNUAL REPORT ON FORM 10-K FOR THE YEAR ENDED DECEMBER 31, 2021",
            "TABLE OF CONTENTS") in [s.heading for s in sections]


def test_the_big_10k_filing_reads_in_seconds_under_its_bold_headings() -> None:
    data = (OFFICE / "example-10k.html").read_bytes()
    started = time.perf_counter()
    sections = list(html.read(data, "example-10k.html", LIMITS).sections)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, elapsed
    _well_formed(sections)
    headings = [s.heading for s in sections]
    assert ("PART II", "ITEM 5. MARKET FOR REGISTRANT’S COMMON EQUITY AND RELATED "
            "STOCKHOLDER MATTERS") in headings
    balance = next(s for s in sections
                   if s.heading == ("CONSOLIDATED BALANCE SHEETS", "DECEMBER 31, 2021 AND 2020"))
    # spacer columns gone, each lone "$" joined to its number
    assert balance.text.startswith("ASSETS | 2021 | | 2020\nCurrent assets:\n")
    assert "Cash and cash equivalents | $16,058,714 | | $5,993,388" in balance.text.split("\n")
    employees = next(s for s in sections if s.heading == ("EMPLOYEES",))
    assert employees.text.startswith("We have 36 full-time employees")
    assert sum(len(s.text) for s in sections) > 150_000


def test_a_form_wrapping_the_page_is_kept_and_hidden_text_and_chrome_dropped() -> None:
    page = ('<html><body><form id="aspnetForm"><header><a href="/">Site</a></header>'
            '<div style="display: none">tracking pixel</div><p hidden>draft</p>'
            "<h1>Report</h1><p>Revenue rose.</p><input value='x'><aside>Ads here</aside>"
            '<div role="navigation"><a href="/a">A</a></div></form>'
            '<form><input name="q"><button>Search</button></form></body></html>')
    sections = list(html.read(page.encode(), "report.html", LIMITS).sections)
    assert sections == [Section(text="Revenue rose.", heading=("Report",))]


def test_a_page_of_nothing_but_scripts_and_navigation_fails() -> None:
    page = b"<html><body><nav><a href='/'>Home</a></nav><script>alert(1)</script></body></html>"
    with pytest.raises(LoaderError) as caught:
        list(html.read(page, "blank.html", LIMITS).sections)
    assert caught.value.reason.startswith("empty file (no text besides scripts")


# -- EPUB -------------------------------------------------------------------------------------

CHAPTERS = ["CHAPTER I THE SUN-SEEKER", "CHAPTER II RINKS AND SKATERS",
            "CHAPTER III TEES AND CRAMPITS", "CHAPTER IV TOBOGGANING", "CHAPTER V ICE-HOCKEY",
            "CHAPTER VI SKI-ING", "CHAPTER VII NOTES ON WINTER RESORTS",
            "CHAPTER VIII FOR PARENTS AND GUARDIANS"]


def test_an_epub_reads_its_chapters_in_order_under_their_headings() -> None:
    parsed = epub.read((OFFICE / "winter-sports.epub").read_bytes(), "w.epub", LIMITS)
    assert parsed.kind == "epub" and parsed.pages is None
    sections = list(parsed.sections)
    _well_formed(sections)
    tops = list(dict.fromkeys(s.heading[0] for s in sections if s.heading))
    assert [t for t in tops if t.startswith("CHAPTER")] == CHAPTERS
    assert tops[-1] == "THE FULL PROJECT GUTENBERG LICENSE"
    # the book's own title (its h1) is no level of the path
    assert not [s for s in sections if "WINTER SPORTS IN SWITZERLAND" in s.heading]
    headings = [s.heading for s in sections]
    assert ("CHAPTER II RINKS AND SKATERS", "FIRST-CLASS TEST", "Section A", "Part I") in headings
    runs = next(s for s in sections if s.heading == ("CHAPTER IV TOBOGGANING", "Ice-runs"))
    assert runs.text.startswith("There is one Mecca: there is one St. Peter’s: there is one "
                                "Cresta.")
    # a chapter file that continues the chapter before it stays under that chapter
    assert [s.heading for s in sections].count(("CHAPTER I THE SUN-SEEKER",)) == 2


def _book() -> bytes:
    """An EPUB 3 book of two chapters: one headed inside a <header>, one by its TOC entry."""
    book = ebooklib_epub.EpubBook()
    book.set_identifier("trip-1")
    book.set_title("The Trip")
    one = ebooklib_epub.EpubHtml(title="Arrival", file_name="one.xhtml", content=(
        "<html><body><section><header><h1>Arrival</h1></header><p>We came by train.</p>"
        "</section></body></html>"))
    two = ebooklib_epub.EpubHtml(title="Departure", file_name="two.xhtml", content=(
        "<html><body><p>We left by sled.</p><script>track()</script></body></html>"))
    book.add_item(one)
    book.add_item(two)
    book.toc = [ebooklib_epub.Link("one.xhtml", "Arrival", "one"),
                ebooklib_epub.Link("two.xhtml", "Departure", "two")]
    book.add_item(ebooklib_epub.EpubNcx())
    book.add_item(ebooklib_epub.EpubNav())
    book.spine = ["nav", one, two]
    out = BytesIO()
    ebooklib_epub.write_epub(out, book)
    return out.getvalue()


def test_epub_chapters_are_headed_by_their_heading_or_else_their_toc_entry() -> None:
    sections = list(epub.read(_book(), "trip.epub", LIMITS).sections)
    assert sections == [Section(text="We came by train.", heading=("Arrival",)),
                        Section(text="We left by sled.", heading=("Departure",))]


def test_a_damaged_epub_fails_with_its_reason() -> None:
    data = (OFFICE / "winter-sports.epub").read_bytes()
    with pytest.raises(LoaderError) as caught:
        epub.read(data[:5000], "cut.epub", LIMITS)
    assert caught.value.reason.startswith("damaged EPUB file ("), caught.value.reason


# -- e-mail -----------------------------------------------------------------------------------

def test_an_email_reads_as_its_headers_then_its_plain_text_body() -> None:
    parsed = mail.read((OFFICE / "fake-email.eml").read_bytes(), "fake-email.eml", LIMITS)
    assert parsed.kind == "email" and parsed.pages is None and parsed.meta == {}
    (section,) = parsed.sections
    assert section == Section(
        text="Subject: Test Email\nFrom: Matthew Robinson <mrobinson@unstructured.io>\n"
             "To: NotMatthew <NotMatthew@notunstructured.com>\n"
             "Date: Fri, 16 Dec 2022 17:04:16 -0500\n\n"
             "This is a test email to use for unit tests.\n\nImportant points:\n\n"
             "   - Roses are red\n   - Violets are blue",
        heading=("Test Email",))


def test_an_emails_attachment_is_handed_out_as_a_file_of_its_own() -> None:
    data = (OFFICE / "fake-email-attachment.eml").read_bytes()
    (section,) = mail.read(data, "fake-email-attachment.eml", LIMITS).sections
    assert section.heading == ("Fake email with attachment",)
    assert section.text.startswith("Subject: Fake email with attachment\nFrom: Mallori Harrell "
                                   "<mallori@unstructured.io>\n")
    assert "It includes:\n\n   - Lots of whitespace\n   - Little to no content" in section.text
    assert section.text.endswith("Best,\n\nMallori")
    assert "fake attachment" not in section.text
    assert mail.attachments(data) == [("fake-attachment.txt", b"Hey this is a fake attachment!")]


def _message(html_body: str | None = None) -> EmailMessage:
    message = EmailMessage(policy=default)
    message["Subject"] = "Quarterly numbers"
    message["From"] = "Ann <ann@example.org>"
    message["Date"] = "Mon, 02 Jan 2023 10:00:00 +0000"
    if html_body is not None:
        message.set_content(html_body, subtype="html")
    else:
        message.set_content("See the attached files.\n\n\n\nAnn")
    return message


def test_attachments_no_reader_takes_are_skipped_with_their_reason() -> None:
    message = _message()
    message.add_attachment(b"Revenue rose.", maintype="text", subtype="plain",
                           filename="..\\..\\q3/notes.txt")
    message.add_attachment(b"Revenue rose again.", maintype="text", subtype="plain",
                           filename="notes.txt")
    message.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream",
                           filename="data.bin")
    message.add_attachment(b"", maintype="application", subtype="pdf", filename="empty.pdf")
    data = message.as_bytes()
    parsed = mail.read(data, "q3.eml", LIMITS)
    assert parsed.meta == {"attachments": [
        {"name": "data.bin", "reason": "unsupported file type"},
        {"name": "empty.pdf", "reason": "empty attachment"}]}
    (section,) = parsed.sections
    assert section.text == ("Subject: Quarterly numbers\nFrom: Ann <ann@example.org>\n"
                            "Date: Mon, 02 Jan 2023 10:00:00 +0000\n\nSee the attached files.\n\n"
                            "Ann")
    assert mail.attachments(data) == [("notes.txt", b"Revenue rose."),
                                      ("notes (2).txt", b"Revenue rose again.")]


def test_an_html_only_email_is_read_by_the_html_reader() -> None:
    body = ("<html><head><style>p {color: red}</style></head><body><h2>Results</h2>"
            "<p>Sales rose 5%.</p><script>steal()</script><table><tr><th>Region</th>"
            "<th>Sales</th></tr><tr><td>North</td><td>12</td></tr></table></body></html>")
    (section,) = mail.read(_message(body).as_bytes(), "html.eml", LIMITS).sections
    assert section.heading == ("Quarterly numbers", "Results")
    assert section.text.endswith("\n\nSales rose 5%.\n\nRegion | Sales\nNorth | 12")
    assert "steal" not in section.text and "color" not in section.text
