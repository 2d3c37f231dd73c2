"""What the Word, OpenDocument and PowerPoint readers share: the size check of an Office
file's ZIP parts before a library opens it, the reason a damaged file fails with, lines of
text normalised, and the outline that turns headings, paragraphs, page breaks and tables
into sections; and WordprocessingML's paragraph styles and list numbering (rag.formats.docx)."""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from io import BytesIO

from lxml import etree

from rag.errors import LoaderError
from rag.formats.base import row_line, table_sections
from rag.schema import Section

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
NS = {"w": W[1:-1], "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006"}
_MB = 1 << 20
# The libraries hold every XML part parsed (lxml takes about 13 times a part's size; the
# 872-page handbook's is 5 MB) and the other parts (pictures) as bytes: limits of what a file
# unpacks to, its XML parts and all its parts.
MAX_XML_MB, MAX_UNPACKED_MB = 64, 1024
_SECTION_CHARS = 50_000  # a section's text is passed on once it is this long (bounds memory)
_SPACES = re.compile(r"[^\S\n]+")
_BYTES_IO = re.compile(r"file '<[^>]*>' ")  # python-docx/-pptx name the stream in messages
_HEADING_NAME = re.compile(r"heading ([1-9])")
_LEVEL_TEXT = re.compile(r"%([1-9])")
_ROMAN = ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"),
          (50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"))


def check_parts(data: bytes, source: str, label: str, max_xml_mb: float = MAX_XML_MB) -> None:
    """Refuse a ZIP whose parts inflate beyond what a reader holds in memory, or that is no
    readable ZIP at all ("damaged Word file (...)")."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise damaged(source, label, exc) from exc
    xml = sum(i.file_size for i in infos if i.filename.endswith((".xml", ".rels")))
    total = sum(i.file_size for i in infos)
    if xml > max_xml_mb * _MB:
        raise LoaderError(source, f"the {label} file's XML parts are {xml / _MB:.0f} MB "
                          f"unpacked, more than the {max_xml_mb:g} MB read at once: split "
                          "it into smaller files and add them")
    if total > MAX_UNPACKED_MB * _MB:
        raise LoaderError(source, f"the {label} file unpacks to {total / _MB:.0f} MB, more "
                          f"than {MAX_UNPACKED_MB} MB: it is damaged or a ZIP bomb")


def damaged(source: str, label: str, exc: BaseException) -> LoaderError:
    """LoaderError "damaged Word file (what is wrong)" for an exception of the libraries."""
    if isinstance(exc, etree.XMLSyntaxError):
        detail = f"invalid XML: {exc.msg}"
    elif isinstance(exc, KeyError) and exc.args:
        detail = str(exc.args[0])
    elif isinstance(exc, zipfile.BadZipFile):
        detail = f"not a readable ZIP archive: {exc}"
    else:
        detail = _BYTES_IO.sub("", str(exc)) or type(exc).__name__
    return LoaderError(source, f"damaged {label} file ({detail})")


def clean_line(text: str) -> str:
    """Runs of spaces and tabs as one space, each line stripped, blank lines dropped."""
    return "\n".join(filter(None, (_SPACES.sub(" ", line).strip() for line in text.split("\n"))))


class Outline:
    """Sections in the making: the heading path, the current page and the paragraphs seen
    since the last heading, page break or table. Each method returns the sections it
    completes; paragraphs are separated by a blank line, items of one list by a newline."""

    def __init__(self, budget: int, page: int | None = None) -> None:
        self.budget = budget
        self.page = page
        self._path: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._size = 0
        self._listing = False

    @property
    def heading(self) -> tuple[str, ...]:
        """The heading path of the text being gathered."""
        return tuple(title for _, title in self._path)

    @property
    def has_text(self) -> bool:
        """Whether text has been gathered since the last section."""
        return bool(self._parts)

    def add_heading(self, level: int, title: str) -> list[Section]:
        """A heading of `level` (1 = top): the text before it is a section of its own."""
        done = self.flush()
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, title))
        return done

    def add(self, text: str, *, item: bool = False) -> list[Section]:
        """A paragraph, or a list item (kept next to the item before it)."""
        text = clean_line(text)
        if not text:
            return []
        joint = "\n" if item and self._listing else "\n\n"
        self._parts.append(joint + text if self._parts else text)
        self._listing = item
        self._size += len(text)
        return self.flush() if self._size >= _SECTION_CHARS else []

    def set_page(self, page: int | None) -> list[Section]:
        """The text from here on is on `page`."""
        done = self.flush() if page != self.page else []
        self.page = page
        return done

    def table(self, rows: Iterable[tuple[int | None, Sequence[str]]]) -> Iterator[Section]:
        """A table's (page, cells) rows as sections of whole rows led by its header row; a
        table running over pages is cut at each page, the header row leading every piece.
        The page after the table is the page of its last row."""
        yield from self.flush()
        header: Sequence[str] | None = None
        for page, group in itertools.groupby(rows, key=lambda row: row[0]):
            self.page = page
            lines = [cells for _, cells in group]  # the rows of one page (the XML holds more)
            if header is not None:
                lines.insert(0, header)
            header = header or next((cells for cells in lines if row_line(cells)), None)
            yield from table_sections(lines, heading=self.heading, page=page,
                                      budget=self.budget)

    def flush(self) -> list[Section]:
        """The gathered text as a section (none if there is no text)."""
        if not self._parts:
            return []
        section = Section(text="".join(self._parts), page=self.page, heading=self.heading)
        self._parts, self._size, self._listing = [], 0, False
        return [section]


def lazily(sections: Iterator[Section], fail: Callable[[BaseException], LoaderError],
           errors: tuple[type[BaseException], ...]) -> Iterator[Section]:
    """The sections, a library error met while they are produced raised as fail(error)."""
    try:
        yield from sections
    except errors as exc:
        raise fail(exc) from exc


Numbered = tuple[str, int]  # a list paragraph's (numbering id, level)


class Styles:
    """A Word file's paragraph styles: which make headings, and which number paragraphs."""

    def __init__(self, styles: etree._Element) -> None:
        self._styles = {s.get(W + "styleId"): s for s in styles.iterchildren(W + "style")
                        if s.get(W + "type") == "paragraph"}
        self._default = next((i for i, s in self._styles.items()
                              if s.get(W + "default") in ("1", "true")), None)
        self._cache: dict[str | None, tuple[int | None, Numbered | None]] = {}

    def paragraph(self, p: etree._Element) -> tuple[int | None, Numbered | None]:
        """A paragraph's heading level (0 = Title, 1-9; None for body text) and its list
        (numbering id, level) or None: its own properties first, then its style's."""
        style = p.find("w:pPr/w:pStyle", NS)
        style_id = style.get(W + "val") if style is not None else self._default
        if style_id not in self._cache:
            self._cache[style_id] = self._resolve(style_id)
        level, number = self._cache[style_id]
        outline = p.find("w:pPr/w:outlineLvl", NS)
        if outline is not None:
            level = _outline_level(outline)
        own = p.find("w:pPr/w:numPr", NS)
        if own is not None:
            number = _numbered(own, number)
        return level, number if number and number[0] != "0" else None

    def _resolve(self, style_id: str | None) -> tuple[int | None, Numbered | None]:
        """Heading level and numbering of a style: a Title or "heading N" name, else the
        outline level and numbering it has or inherits along its basedOn chain."""
        chain: list[etree._Element] = []
        while style_id in self._styles and self._styles[style_id] not in chain:
            chain.append(self._styles[style_id])
            based = chain[-1].find("w:basedOn", NS)
            style_id = based.get(W + "val") if based is not None else None
        name_node = chain[0].find("w:name", NS) if chain else None
        name = (name_node.get(W + "val", "") if name_node is not None else "").lower()
        heading = _HEADING_NAME.fullmatch(name)
        outlines = [o for s in chain if (o := s.find("w:pPr/w:outlineLvl", NS)) is not None]
        level = 0 if name == "title" else int(heading[1]) if heading else \
            _outline_level(outlines[0]) if outlines else None
        numbers = [n for s in chain if (n := s.find("w:pPr/w:numPr", NS)) is not None]
        return level, _numbered(numbers[0], None) if numbers else None


class Numbering:
    """A Word file's list numbering: the marker of each numbered paragraph, counted as Word
    counts (per abstract list, continued by every list instance of it; an instance may
    restart a level)."""

    def __init__(self, root: etree._Element | None) -> None:
        self.root = root
        children = list(root) if root is not None else []
        abstracts = {a.get(W + "abstractNumId"): a for a in children
                     if a.tag == W + "abstractNum"}
        self._lists: dict[str, tuple[str, dict[int, tuple[str, str, int]]]] = {}
        self._restarts: dict[str, dict[int, int]] = {}
        for num in (child for child in children if child.tag == W + "num"):
            ref = num.find("w:abstractNumId", NS)
            abstract_id = ref.get(W + "val") if ref is not None else None
            levels = _levels(abstracts.get(abstract_id))
            restarts = {}
            for override in num.iterchildren(W + "lvlOverride"):
                ilvl = _int(override.get(W + "ilvl"), 0)
                levels.update(_levels(override, ilvl))
                start = override.find("w:startOverride", NS)
                if start is not None:
                    restarts[ilvl] = _int(start.get(W + "val"), 1)
            self._lists[num.get(W + "numId")] = (str(abstract_id), levels)
            self._restarts[num.get(W + "numId")] = restarts
        self._counters: dict[str, dict[int, int]] = {}

    def marker(self, num_id: str, ilvl: int) -> str:
        """The marker of the next paragraph of a list at a level: "- " for a bullet,
        "3. " or "b) " for a number ("" when the level shows none)."""
        if num_id not in self._lists:
            return "- "
        abstract_id, levels = self._lists[num_id]
        counters = self._counters.setdefault(abstract_id, {})
        for level, start in self._restarts.pop(num_id, {}).items():
            counters[level] = start - 1
        fmt, text, start = levels.get(ilvl, ("bullet", "", 1))
        counters[ilvl] = counters.get(ilvl, start - 1) + 1
        for deeper in [level for level in counters if level > ilvl]:
            del counters[deeper]
        if fmt in ("bullet", "none"):  # a level showing no number shows nothing
            return "- " if fmt == "bullet" else ""

        def number(match: re.Match[str]) -> str:
            level = int(match[1]) - 1
            level_fmt, _, level_start = levels.get(level, ("decimal", "", 1))
            return number_text(level_fmt, counters.get(level, level_start))

        label = _LEVEL_TEXT.sub(number, text).strip()
        return f"{label} " if label else ""


def _numbered(num_pr: etree._Element, inherited: Numbered | None) -> Numbered:
    """(numbering id, level) of a w:numPr; what it leaves out comes from `inherited`."""
    num_id, ilvl = num_pr.find("w:numId", NS), num_pr.find("w:ilvl", NS)
    base_id, base_level = inherited or ("0", 0)
    return (num_id.get(W + "val", "0") if num_id is not None else base_id,
            _int(ilvl.get(W + "val"), 0) if ilvl is not None else base_level)


def _levels(parent: etree._Element | None, only: int | None = None
            ) -> dict[int, tuple[str, str, int]]:
    """(format, text, start) of each w:lvl of a list definition or override."""
    levels: dict[int, tuple[str, str, int]] = {}
    for lvl in parent.iterchildren(W + "lvl") if parent is not None else ():
        fmt, text, start = (lvl.find(f"w:{n}", NS) for n in ("numFmt", "lvlText", "start"))
        levels[only if only is not None else _int(lvl.get(W + "ilvl"), 0)] = (
            fmt.get(W + "val", "decimal") if fmt is not None else "decimal",
            text.get(W + "val", "") if text is not None else "",
            _int(start.get(W + "val") if start is not None else None, 1))
    return levels


def number_text(fmt: str, n: int) -> str:
    """A list counter written in a numbering format; formats besides letters and roman
    numerals are written as decimal numbers."""
    if fmt in ("lowerLetter", "upperLetter"):
        letters = ""
        while n > 0:
            n, rest = divmod(n - 1, 26)
            letters = chr(ord("a") + rest) + letters
        return letters.upper() if fmt == "upperLetter" else letters
    if fmt in ("lowerRoman", "upperRoman") and n > 0:
        roman = ""
        for value, digits in _ROMAN:
            count, n = divmod(n, value)
            roman += digits * count
        return roman.upper() if fmt == "upperRoman" else roman
    return f"{n:02d}" if fmt == "decimalZero" else str(n)


def _outline_level(element: etree._Element) -> int | None:
    """A heading level (1-9) from a w:outlineLvl (0-8); 9 is body text."""
    value = _int(element.get(W + "val"), 9)
    return value + 1 if 0 <= value < 9 else None


def _int(value: str | None, default: int) -> int:
    return int(value) if value is not None and value.lstrip("-").isdigit() else default
