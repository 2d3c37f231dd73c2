"""Markdown and the HTML, MDX and template markup inside it, turned into plain text.

Markdown is rendered to HTML by markdown-it-py and the HTML is read back by BeautifulSoup
(stdlib "html.parser"): tables become one row per line with " | " between cells, links keep their
text, images their alt text, code blocks their content as is; comments, scripts, styles, tab
switchers, MDX component tags and Jinja-style template markup disappear. Nothing is executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction
from markdown_it import MarkdownIt
from markdown_it.token import Token

MARKDOWN = MarkdownIt("commonmark").enable("table")

# {{ var }}, {% tag %}, {# comment #} and MDX's {/* comment */}
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|\{/\*.*?\*/\}", re.DOTALL)
# A JSX component tag that HTML does not accept (capitalised name, {expression} attributes).
_JSX_TAG = re.compile(
    r"</?[A-Z][\w.]*(?:\s+[\w:.-]+(?:=(?:\"[^\"]*\"|'[^']*'|\{[^{}<>]*\}|[^\s\"'=<>`{}]+))?)*"
    r"\s*/?>"
)
_SPACE = re.compile(r"\s+")
_INLINE = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font",
    "i", "ins", "kbd", "label", "mark", "q", "s", "samp", "small", "span", "strike", "strong",
    "sub", "sup", "time", "tt", "u", "var", "wbr",
})
_CODE = frozenset({"code", "kbd", "samp", "tt"})
_LINE = frozenset({"dt", "dd", "summary", "caption", "figcaption"})  # blocks on their own line
_DROP = frozenset({"script", "style", "template", "head", "noscript", "svg", "nav", "button"})
_SKIPPED_STRINGS = (Comment, Declaration, Doctype, ProcessingInstruction)


@dataclass(frozen=True, slots=True)
class PlainText:
    """Text of a piece of markup and the share of its characters that are link texts."""

    text: str
    link_share: float


def strip_templates(text: str) -> str:
    """Remove template markup ({{ }}, {% %}, {# #}) and JSX component tags from prose."""
    return _JSX_TAG.sub("", _TEMPLATE.sub("", text))


def tokens_text(tokens: list[Token], env: dict, *, tab_labels: bool = False) -> PlainText:
    """Plain text of a run of block tokens from MARKDOWN.parse(text, env)."""
    if not tokens:
        return PlainText("", 0.0)
    return html_text(MARKDOWN.renderer.render(tokens, MARKDOWN.options, env),
                     tab_labels=tab_labels)


def html_text(html: str, *, tab_labels: bool = False) -> PlainText:
    """Plain text of an HTML fragment; blocks of in-page links only (tab switchers such as
    'Python Java Node.js') are dropped unless tab_labels is true."""
    writer = _Writer(tab_labels)
    _walk(BeautifulSoup(html, "html.parser"), writer)
    text = writer.result()
    letters = writer.chars
    return PlainText(text, writer.link_chars / letters if letters else 0.0)


def inline_text(inline: Token) -> str:
    """Plain text of an inline token (a heading): code spans and link texts kept, markup dropped."""
    parts: list[str] = []
    for child in inline.children or []:
        if child.type == "text":
            parts.append(strip_templates(child.content))
        elif child.type == "code_inline":
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return " ".join("".join(parts).split()) or " ".join(strip_templates(inline.content).split())


class _Writer:
    """Collects text with pending line or paragraph breaks, collapsing spaces outside code."""

    def __init__(self, tab_labels: bool = False) -> None:
        self.tab_labels = tab_labels
        self.out: list[str] = []
        self.pending = 0  # newlines owed before the next text: 0, 1 or 2
        self.prefix = ""  # a list bullet owed before the next text
        self.line_start = True
        self.chars = 0
        self.link_chars = 0

    def brk(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def text(self, text: str, *, link: bool = False) -> None:
        text = _SPACE.sub(" ", text)
        if self.line_start or self.pending:
            text = text.lstrip()
        if not text:
            return
        self._begin()
        if self.out and self.out[-1].endswith(" ") and text.startswith(" "):
            text = text[1:]
        self.out.append(text)
        self.line_start = False
        visible = len(text.strip())
        self.chars += visible
        self.link_chars += visible if link else 0

    def raw(self, text: str) -> None:
        """Preformatted text (a code block) kept as it is, as a paragraph of its own."""
        text = text.strip("\n")
        if not text.strip():
            return
        self.brk(2)
        self._begin()
        self.out.append(text)
        self.chars += len(text.strip())
        self.brk(2)

    def _begin(self) -> None:
        if self.pending and self.out:
            self.out[-1] = self.out[-1].rstrip(" ")
            self.out.append("\n" * self.pending)
            self.line_start = True
        self.pending = 0
        if self.prefix:
            self.out.append(self.prefix)
            self.prefix = ""

    def result(self) -> str:
        return "\n".join(line.rstrip() for line in "".join(self.out).split("\n")).strip()


def _walk(node: Tag, writer: _Writer, *, code: bool = False, link: bool = False) -> None:
    """Write the text of node's children."""
    for child in node.children:
        if isinstance(child, NavigableString):
            if not isinstance(child, _SKIPPED_STRINGS):
                writer.text(str(child) if code else _prose(str(child)), link=link)
        elif isinstance(child, Tag):
            _element(child, writer, code=code, link=link)


def _prose(text: str) -> str:
    """Text outside code without template markup; Markdown links and images left in raw HTML
    blocks (where Markdown is not parsed) are read as Markdown and keep their text."""
    text = strip_templates(text)
    if "](" not in text:
        return text
    inline = MARKDOWN.parseInline(text)[0]
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


def _element(tag: Tag, writer: _Writer, *, code: bool, link: bool) -> None:
    """Write one element: by its kind, inline, on a line of its own, or as a paragraph."""
    name = tag.name
    if name in _DROP or (not writer.tab_labels and _is_tab_switcher(tag)):
        return
    if name == "pre":
        writer.raw(tag.get_text())
    elif name == "table":
        _table(tag, writer)
    elif name == "br":
        writer.brk(1)
    elif name == "hr":
        writer.brk(2)
    elif name == "img":
        alt = tag.get("alt")
        if isinstance(alt, str) and alt.strip():
            writer.text(f" {alt} ", link=link)
    elif name == "li":
        writer.brk(1)
        writer.prefix = _bullet(tag)
        _walk(tag, writer, code=code, link=link)
        writer.brk(1)
    elif name in _INLINE:
        _walk(tag, writer, code=code or name in _CODE, link=link or name == "a")
    elif tag.contents:  # blocks, and unknown tags such as MDX components (<Tabs>, <TabItem>)
        nested_list = name in ("ul", "ol") and tag.find_parent("li") is not None
        newlines = 1 if name in _LINE or nested_list else 2
        writer.brk(newlines)
        _walk(tag, writer, code=code, link=link)
        writer.brk(newlines)


def _bullet(item: Tag) -> str:
    """'- ' for an unordered list item, 'N. ' for an ordered one, indented by nesting depth."""
    indent = "  " * len(item.find_parents("li"))
    parent = item.parent
    if parent is None or parent.name != "ol":
        return f"{indent}- "
    start = parent.get("start")
    first = int(start) if isinstance(start, str) and start.isdigit() else 1
    return f"{indent}{first + len(item.find_previous_siblings('li'))}. "


def _is_tab_switcher(tag: Tag) -> bool:
    """A block made only of in-page links (tab labels such as 'Python Java Node.js')."""
    if tag.name in _INLINE or tag.name == "li":
        return False
    children = [c for c in tag.children if not (isinstance(c, NavigableString) and not c.strip())]
    return len(children) >= 2 and all(
        isinstance(c, Tag) and c.name == "a" and str(c.get("href", "")).startswith("#")
        for c in children
    )


def _table(table: Tag, writer: _Writer) -> None:
    """One line per row, cells separated by ' | '; header rows included, empty rows dropped,
    and the spacing of layout-made tables (SEC filings) taken out: see _tidy_rows."""
    caption = table.find("caption")
    lines: list[str] = []
    if caption is not None and caption.find_parent("table") is table:
        lines.append(_cell_text(caption))
    rows = [[_cell_text(cell) for cell in row.find_all(["td", "th"], recursive=False)]
            for row in table.find_all("tr") if row.find_parent("table") is table]
    lines.extend(" | ".join(cells) for cells in _tidy_rows(rows))
    writer.brk(2)
    for row_text in lines:
        writer.text(row_text)
        writer.brk(1)
    writer.brk(2)


_BEFORE = frozenset({"$", "€", "£", "¥", "("})  # a cell of only this joins the next cell
_AFTER = frozenset({"%", ")", ")%", "%)"})  # ... of only this joins the cell before


def _tidy_rows(rows: list[list[str]]) -> list[list[str]]:
    """Rows with text, without the columns that are empty in every row; a lone currency sign
    or bracket joins the number beside it ('$ | 16,058' -> '$16,058'); a run of empty cells
    between two cells becomes one, and empty cells at a row's ends go."""
    rows = [cells for cells in rows if any(cells)]
    width = max((len(cells) for cells in rows), default=0)
    used = [any(i < len(cells) and cells[i] for cells in rows) for i in range(width)]
    return [_collapse(_join_symbols([cell for i, cell in enumerate(cells) if used[i]]))
            for cells in rows]


def _join_symbols(cells: list[str]) -> list[str]:
    joined: list[str] = []
    carry = ""
    for cell in cells:
        if cell in _BEFORE:
            carry += cell
            continue
        if cell in _AFTER and joined and not carry:
            joined[-1] += cell
            continue
        if carry and not cell:
            continue  # the number comes in a later cell
        joined.append(carry + cell)
        carry = ""
    if carry:
        joined.append(carry)
    return joined


def _collapse(cells: list[str]) -> list[str]:
    out: list[str] = []
    for cell in cells:
        if not cell and (not out or not out[-1]):
            continue
        out.append(cell)
    while out and not out[-1]:
        out.pop()
    return out


def _cell_text(cell: Tag) -> str:
    """A table cell's text on one line."""
    inner = _Writer()
    _walk(cell, inner)
    return " ".join(inner.result().split())


def heading_line(before: tuple[str, ...], after: tuple[str, ...]) -> str:
    """The line that shows, inside a chunk's text, where a section with heading `after` begins
    after one with heading `before`: its new heading levels joined by ' > ' ('' if the same)."""
    if before == after:
        return ""
    common = 0
    while common < min(len(before), len(after)) and before[common] == after[common]:
        common += 1
    return " > ".join(after[common:]) or (after[-1] if after else "")
