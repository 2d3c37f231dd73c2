"""OpenDocument text (.odt) files: content.xml parsed with lxml and walked in document order.
Headings (text:h and their outline level) make the heading path, list items keep their bullet
("- ") or number ("2. "), tables become rows (rag.formats.base.table_sections); notes and
comments are left out, as are deleted tracked changes. pages is None: an .odt records no
page layout.

odfpy is not used: on a part of invalid XML it prints the whole part to standard output and
reads on as if the part were empty, and a missing content.xml passes silently."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from io import BytesIO

from lxml import etree

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed, cell_text
from rag.formats.office_xml import Outline, check_parts, damaged, lazily, number_text
from rag.schema import Section

_LABEL = "OpenDocument"
_MAX_XML_MB = 32
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
NS = {"text": _TEXT, "table": _TABLE, "office": _OFFICE, "style": _STYLE}
T, TB = f"{{{_TEXT}}}", f"{{{_TABLE}}}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
# Inline elements whose text is not the paragraph's: notes, comments, deleted changes, the
# numbers a program wrote for its lists, pictures embedded as base64.
_SKIPPED = {T + "note", f"{{{_OFFICE}}}annotation", T + "tracked-changes", T + "number",
            T + "sequence-decls", f"{{{_OFFICE}}}binary-data"}
_CONTAINERS = {T + "section", T + "table-of-content", T + "index-body",
               T + "alphabetical-index", T + "illustration-index", T + "table-index",
               T + "user-index", T + "bibliography", T + "object-index", T + "index-title"}
_ROW_GROUPS = {TB + "table-header-rows", TB + "table-rows", TB + "table-row-group"}
_MAX_EMPTY_REPEAT = 64  # empty cells repeated more often are padding to the sheet's width
_MAX_REPEAT = 10_000  # a cell or row repeated more often: a damaged file
_NUMERALS = {"1": "decimal", "a": "lowerLetter", "A": "upperLetter", "i": "lowerRoman",
             "I": "upperRoman"}


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """An OpenDocument text file's sections; a damaged one fails with its reason."""
    check_parts(data, source, _LABEL, _MAX_XML_MB)
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            content = etree.fromstring(archive.read("content.xml"), _PARSER)
            styles = (etree.fromstring(archive.read("styles.xml"), _PARSER)
                      if "styles.xml" in archive.namelist() else None)
    except (KeyError, zipfile.BadZipFile, OSError, etree.XMLSyntaxError) as exc:
        raise damaged(source, _LABEL, exc) from exc
    body = content.find("office:body/office:text", NS)
    if body is None:
        raise LoaderError(source, "not an OpenDocument text file (content.xml has no text "
                                  "body: a spreadsheet or presentation saved as .odt?)")
    if not "".join(body.itertext()).strip():
        raise LoaderError(source, "no text in the OpenDocument file")
    lists = _list_styles([content] + ([styles] if styles is not None else []))
    walker = _Walker(lists, Outline(limits.table_chars))
    return Parsed("odt", None, lazily(walker.sections(body),
                                      lambda exc: damaged(source, _LABEL, exc), (ValueError,)))


class _Walker:
    """The sections of a text body, in document order."""

    def __init__(self, lists: dict[str, dict[int, tuple[str, str, str]]],
                 outline: Outline) -> None:
        self.lists = lists
        self.outline = outline

    def sections(self, body: etree._Element) -> Iterator[Section]:
        """Every section of the body."""
        yield from self._blocks(body)
        yield from self.outline.flush()

    def _blocks(self, parent: etree._Element) -> Iterator[Section]:
        for child in parent.iterchildren(tag=etree.Element):
            if child.tag == T + "h":
                level = _int(child.get(T + "outline-level"), 1)
                title = " ".join(_text(child).split())
                if title:
                    yield from self.outline.add_heading(level, title)
            elif child.tag == T + "p":
                yield from self.outline.add(_text(child))
            elif child.tag == T + "list":
                yield from self._list(child, child.get(T + "style-name"), 1, [])
            elif child.tag == TB + "table":
                yield from self.outline.table((None, cells) for cells in _rows(child))
            elif child.tag in _CONTAINERS:
                yield from self._blocks(child)

    def _list(self, element: etree._Element, style: str | None, level: int,
              counters: list[int]) -> Iterator[Section]:
        """A list's items, each paragraph led by its marker; nested lists one level down.
        Nested lists without a style of their own take their parent's."""
        style = element.get(T + "style-name") or style
        kind, fmt, suffix = self.lists.get(style or "", {}).get(level, ("bullet", "", ""))
        counters = [*counters[:level - 1], 0]
        for item in element.iterchildren(T + "list-item", T + "list-header"):
            start = item.get(T + "start-value")
            counters[-1] = _int(start, 1) if start else counters[-1] + 1
            marker = "- " if kind == "bullet" else _label(fmt, suffix, counters)
            for child in item.iterchildren(tag=etree.Element):
                if child.tag == T + "list":
                    yield from self._list(child, style, level + 1, counters)
                elif child.tag == T + "h":  # a numbered heading
                    title = " ".join((marker + _text(child)).split()).removeprefix("- ")
                    yield from self.outline.add_heading(_int(child.get(T + "outline-level"),
                                                             1), title)
                elif child.tag == T + "p":
                    yield from self.outline.add(marker + _text(child), item=True)
                    marker = ""  # a second paragraph of an item has no marker of its own
                elif child.tag == TB + "table":
                    yield from self.outline.table((None, cells) for cells in _rows(child))


def _text(element: etree._Element) -> str:
    """A paragraph's text: spans, links and fields kept; <text:s> spaces, tabs and line
    breaks written out; notes, comments and deleted changes left out."""
    parts = [element.text or ""]
    for child in element.iterchildren():
        tag = child.tag
        if tag == T + "s":  # c spaces: one is as good (runs of spaces become one)
            parts.append(" ")
        elif tag == T + "tab":
            parts.append("\t")
        elif tag in (T + "line-break", T + "p", T + "h"):  # p, h: in a frame's text box
            parts.append("\n" if tag == T + "line-break" else "\n" + _text(child))
        elif tag not in _SKIPPED and isinstance(tag, str):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _rows(table: etree._Element) -> Iterator[list[str]]:
    """A table's rows of cell texts. A cell spanning columns is one cell; a cell spanning
    rows repeats its text in each row it covers; a table in a cell is flattened."""
    down: dict[int, list] = {}  # column -> [text, rows still covered] of a cell spanning rows
    for row in _table_rows(table):
        cells: list[str] = []
        column = 0
        for cell in row.iterchildren(TB + "table-cell", TB + "covered-table-cell"):
            repeat = _int(cell.get(TB + "number-columns-repeated"), 1)
            if cell.tag == TB + "covered-table-cell":
                if column in down and down[column][1] > 0:
                    cells.append(down[column][0])
                column += repeat
                continue
            text = _cell(cell)
            rows_spanned = _int(cell.get(TB + "number-rows-spanned"), 1)
            if rows_spanned > 1:
                down[column] = [text, rows_spanned]
            cells.extend([text] * (_repeat(repeat, "cell") if text else
                                   min(repeat, _MAX_EMPTY_REPEAT)))
            column += repeat
        for key in list(down):
            down[key][1] -= 1
            if down[key][1] <= 0:
                del down[key]
        repeat = _int(row.get(TB + "number-rows-repeated"), 1)
        for _ in range(_repeat(repeat, "row") if any(cells) else 1):
            yield cells


def _table_rows(table: etree._Element) -> Iterator[etree._Element]:
    for child in table.iterchildren(tag=etree.Element):
        if child.tag == TB + "table-row":
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _table_rows(child)


def _cell(cell: etree._Element) -> str:
    """A cell's text on one line; a table inside it flattened ("a, b; c, d")."""
    parts: list[str] = []
    for child in cell.iterchildren(tag=etree.Element):
        if child.tag in (T + "p", T + "h"):
            parts.append(_text(child))
        elif child.tag == T + "list":
            parts.extend(_text(p) for p in child.iter(T + "p"))
        elif child.tag == TB + "table":
            rows = (", ".join(c for c in cells if c) for cells in _rows(child))
            parts.append("; ".join(row for row in rows if row))
    return cell_text(" ".join(parts))


def _list_styles(roots: list[etree._Element]) -> dict[str, dict[int, tuple[str, str, str]]]:
    """Each list style's levels: level -> ("bullet" or "number", numeral format, suffix)."""
    styles: dict[str, dict[int, tuple[str, str, str]]] = {}
    for root in roots:
        for style in root.iter(T + "list-style"):
            levels = styles.setdefault(style.get(f"{{{_STYLE}}}name", ""), {})
            for level in style.iterchildren(T + "list-level-style-number",
                                            T + "list-level-style-bullet"):
                kind = "number" if level.tag.endswith("number") else "bullet"
                levels[_int(level.get(T + "level"), 1)] = (
                    kind, level.get(f"{{{_STYLE}}}num-format", "1"),
                    level.get(f"{{{_STYLE}}}num-suffix", ""))
    return styles


def _label(fmt: str, suffix: str, counters: list[int]) -> str:
    """The marker of a numbered item ("3. "); a level numbered with no numeral shows none."""
    if not fmt:
        return ""
    return f"{number_text(_NUMERALS.get(fmt, 'decimal'), counters[-1])}{suffix} "


def _repeat(count: int, what: str) -> int:
    """How often a table cell or row with text is repeated; ValueError if absurdly often."""
    if count > _MAX_REPEAT:
        raise ValueError(f"a table repeats a {what} {count} times, more than {_MAX_REPEAT}")
    return count


def _int(value: str | None, default: int) -> int:
    return int(value) if value is not None and value.isdigit() else default
