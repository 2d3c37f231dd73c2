"""HTML pages: the main text, one section per heading section with its heading path.

Decoded by byte-order mark or declared charset, else as UTF-8, else by the encoding
charset-normalizer finds most likely (rag.formats.csv.decode_text); parsed by BeautifulSoup
with lxml (nothing run or fetched). Scripts, styles, embedded content, navigation, forms,
hidden elements and the page's own header, footer and sidebars are dropped; the text is that
of <main> (role="main", the one <article>) if any, else <body>. Layout tables read as the text
they lay out, data tables as rows with " | " between cells (rag.markup.html_text makes each
section's text). The EPUB and e-mail readers read their HTML with the same Outline."""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape

from bs4 import (
    BeautifulSoup,
    MarkupResemblesLocatorWarning,
    NavigableString,
    Tag,
    XMLParsedAsHTMLWarning,
)
from bs4.dammit import EncodingDetector
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction
from bs4.exceptions import ParserRejectedMarkup

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed
from rag.formats.encoding import decode_text
from rag.markup import html_text
from rag.schema import Section

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Never text: code, styles, embedded content, navigation and form controls.
_DROP = ("script", "style", "noscript", "template", "iframe", "frame", "frameset", "object",
         "embed", "applet", "canvas", "svg", "math", "nav", "menu", "button", "select",
         "input", "textarea", "option", "datalist", "dialog", "map", "link", "meta", "base")
_CHROME = ("header", "footer", "aside")  # the page's own (outside its main text)
_CHROME_ROLES = frozenset({"banner", "contentinfo", "complementary", "navigation", "search",
                           "menu", "menubar", "toolbar"})
_CONTENT = ("article", "main", "section")
_FORM_CONTENT = ("p", "table", "article", "main", "section", "li", *HEADINGS)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_BOLD_MARK = "data-bold-line"  # on a heading made of a bold line
_KEPT_ATTRIBUTES = frozenset({"href", "alt", "start", _BOLD_MARK})  # what is read later
_LAYOUT_CELL_CHARS = 400  # a table cell holding more text than this lays out a page
_SECTION_HTML = 200_000  # a section's HTML is turned into text once it is this long
_NOT_TEXT = (Comment, Declaration, Doctype, ProcessingInstruction)
_FILE_NAME = re.compile(r"\S+\.[A-Za-z]{2,5}")
_BLOCKS = ("p", "div", "table", "ul", "ol", "dl", "blockquote", "pre", "section", "br")
_BOLD_STYLE = re.compile(r"font-weight\s*:\s*(?:bold|[6-9]00)", re.IGNORECASE)
_BOLD_HEADING_CHARS = 100
_BOLD_RUN = 3  # bold-line headings in a row nest this deep at most
_EMPTY = "empty file (no text besides scripts, styles and page navigation)"
_LATIN1 = frozenset({"iso8859-1", "ascii"})  # read as cp1252, as browsers do (WHATWG)


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A page's sections; raises LoaderError when it holds no text besides page chrome."""
    text, encoding = decode_html(data, source)
    soup = parse(text, source)
    title = _title(soup)
    root = content_root(soup)
    bold_headings(root)
    root = clean(root)
    if not any(text.strip() for text in root.strings):
        raise LoaderError(source, _EMPTY)
    top = (title,) if title and root.find("h1") is None else ()
    return Parsed("html", None, nonempty(Outline(top).sections(root), source),
                  {"encoding": encoding})


def decode_html(data: bytes, source: str) -> tuple[str, str]:
    """The page's text and its encoding: by byte-order mark, else the declared charset (if
    the bytes are valid in it), else UTF-8, else the most likely one."""
    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    if declared and not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE,
                                         codecs.BOM_UTF16_BE)):
        try:
            name = codecs.lookup(declared).name
            name = "cp1252" if name in _LATIN1 else name
            # a page declaring UTF-16 without a byte-order mark is not (WHATWG)
            if not name.startswith(("utf-16", "utf-32")):
                return data.decode(name), name
        except (LookupError, UnicodeDecodeError):  # unknown or wrong: found from the bytes
            pass
    return decode_text(data, source)


def parse(text: str, source: str) -> BeautifulSoup:
    """The page's tree (lxml's HTML parser; XHTML parses as HTML)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            return BeautifulSoup(text, "lxml")
    except (ParserRejectedMarkup, ValueError) as exc:
        raise LoaderError(source, f"damaged HTML file ({exc})") from exc


def _title(soup: BeautifulSoup) -> str:
    """The page's <title>, unless it is a file name ('glxz-10k_20211231.htm')."""
    tag = soup.find("title")
    title = " ".join(tag.get_text(" ").split()) if isinstance(tag, Tag) else ""
    return "" if _FILE_NAME.fullmatch(title) else title


def bold_headings(root: Tag) -> None:
    """In a page without headings (an SEC filing), a short line set all in bold outside
    tables is a heading (an h6: all such lines are of one level)."""
    if root.find(HEADINGS) is not None:
        return
    for block in root.find_all(["p", "div"]):
        if _bold_line(block):
            block.name = "h6"
            block[_BOLD_MARK] = ""


def _bold_line(block: Tag) -> bool:
    if block.find(_BLOCKS) is not None or block.find_parent("table") is not None:
        return False
    text = " ".join(block.get_text(" ").split())
    if not text or len(text) > _BOLD_HEADING_CHARS or text[-1] in ".:;,":
        return False
    strings = [s for s in block.find_all(string=True) if s.strip()]
    return any(c.isalpha() for c in text) and all(_bold(s, block) for s in strings)


def _bold(string: NavigableString, block: Tag) -> bool:
    """Whether a piece of text is set in bold by an element between it and `block`."""
    for element in string.parents:
        if element.name in ("b", "strong") or _BOLD_STYLE.search(str(element.get("style", ""))):
            return True
        if element is block:
            return False
    return False


def clean(soup: Tag, *, page: bool = True) -> Tag:
    """The tree (or a part of it) without what is not text (with `page`, a web page's own
    header, footer and sidebars too), layout tables turned into blocks and the attributes
    html_text does not read removed (so choose content_root first)."""
    for tag in soup.find_all(_DROP):
        if not tag.decomposed:
            tag.decompose()
    for tag in soup.find_all(True):
        if not tag.decomposed and (_hidden(tag) or _chrome(tag, page)):
            tag.decompose()
    for tag in soup.find_all("form"):
        if not tag.decomposed and tag.find(_FORM_CONTENT) is None:
            tag.decompose()  # a search or login box; a form wrapping the page is kept
    for tag in soup.find_all(lambda t: ":" in t.name):  # inline XBRL and other XML inline
        tag.unwrap()
    for table in soup.find_all("table"):
        if _is_layout(table):
            _unwrap_table(table)
    for tag in soup.find_all(True):
        tag.attrs = {k: v for k, v in tag.attrs.items() if k in _KEPT_ATTRIBUTES}
    return soup


def _hidden(tag: Tag) -> bool:
    style = tag.get("style")
    return (tag.has_attr("hidden") or str(tag.get("aria-hidden", "")).lower() == "true"
            or (isinstance(style, str) and _HIDDEN_STYLE.search(style) is not None))


def _chrome(tag: Tag, page: bool) -> bool:
    """Navigation by its role; on a page, a header, footer or sidebar of the page itself (not
    of an article or section, HTML's sectioning content)."""
    if str(tag.get("role", "")).lower() in _CHROME_ROLES:
        return True
    return (page and tag.name in _CHROME and tag.find_parent(_CONTENT) is None
            and tag.find_parent(role="main") is None)


def _is_layout(table: Tag) -> bool:
    """A table laying out a page: it holds a table, cells of long text, or one cell a row."""
    if table.find("table") is not None:
        return True
    rows = [row for row in table.find_all("tr") if row.find_parent("table") is table]
    widths = [len(row.find_all(["td", "th"], recursive=False)) for row in rows]
    if not rows or max(widths) <= 1:
        return True
    return any(len(cell.get_text()) > _LAYOUT_CELL_CHARS
               for row in rows for cell in row.find_all(["td", "th"], recursive=False))


def _unwrap_table(table: Tag) -> None:
    """A layout table's rows and cells as blocks (its nested tables are judged alone)."""
    parts = [part for part in table.find_all(["thead", "tbody", "tfoot", "tr", "td", "th",
                                              "caption"]) if part.find_parent("table") is table]
    for part in [table, *parts]:
        part.name = "div"


def content_root(soup: BeautifulSoup) -> Tag:
    """The page's main text: <main>, role="main", the one <article>, else <body>."""
    main = soup.find("main") or soup.find(role="main")
    if isinstance(main, Tag):
        return main
    articles = soup.find_all("article")
    if len(articles) == 1:
        return articles[0]
    body = soup.find("body")
    return body if isinstance(body, Tag) else soup


@dataclass(frozen=True, slots=True)
class _Heading:
    level: int
    title: str
    bold: bool  # a line in bold made a heading (bold_headings)


class Outline:
    """The heading path while reading one page or several in a row (an e-book's chapters):
    `top` heads every section; titles in `skip` (a book's own title) are not path levels."""

    def __init__(self, top: tuple[str, ...] = (), skip: frozenset[str] = frozenset()) -> None:
        self.top = top
        self.skip = skip
        self._path: list[tuple[int, str]] = []
        self._bold_run = 0  # bold-line headings in a row with no text between them

    @property
    def heading(self) -> tuple[str, ...]:
        return (*self.top, *(title for _, title in self._path))

    def enter(self, level: int, title: str, *, bold: bool = False) -> None:
        """A heading of `level` (1 = top) begins a section. Bold lines in a row with no text
        between them ('PART I', 'ITEM 1. BUSINESS') nest, up to _BOLD_RUN deep."""
        if title.casefold() in self.skip:
            return
        nest = bold and 0 < self._bold_run < _BOLD_RUN
        while not nest and self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, title))
        self._bold_run = self._bold_run + 1 if nest else int(bold)

    def sections(self, root: Tag) -> Iterator[Section]:
        """The sections of the HTML under `root`, one per heading section (a long one in
        several, each of about _SECTION_HTML characters of HTML)."""
        parts: list[str] = []
        size = 0
        for item in _flow(root):
            if isinstance(item, _Heading) or size >= _SECTION_HTML:
                yield from self._section(parts)
                parts, size = [], 0
            if isinstance(item, _Heading):
                self.enter(item.level, item.title, bold=item.bold)
            else:
                parts.append(item)
                size += len(item)
        yield from self._section(parts)

    def _section(self, parts: list[str]) -> Iterator[Section]:
        text = html_text("".join(parts)).text if parts else ""
        if text:
            self._bold_run = 0
            yield Section(text=text, heading=self.heading)


def _flow(root: Tag) -> Iterator[str | _Heading]:
    """The HTML under `root` in document order, as the markup of its blocks and its headings;
    elements holding headings are entered (with line breaks where they begin and end)."""
    stack = [iter(root.children)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            yield "<br>"
        elif isinstance(child, NavigableString):
            if not isinstance(child, _NOT_TEXT):
                yield escape(str(child), quote=False)
        elif not isinstance(child, Tag):
            continue
        elif child.name in HEADINGS:
            title = " ".join(html_text(str(child)).text.split())
            yield _Heading(int(child.name[1]), title, child.has_attr(_BOLD_MARK)) if title else ""
        elif child.name not in ("table", "pre") and child.find(HEADINGS) is not None:
            yield "<br>"
            stack.append(iter(child.children))
        else:
            yield str(child)


def nonempty(sections: Iterator[Section], source: str) -> Iterator[Section]:
    """The sections, or LoaderError when there are none."""
    count = 0
    for count, section in enumerate(sections, start=1):  # noqa: B007 (read below)
        yield section
    if not count:
        raise LoaderError(source, _EMPTY)
