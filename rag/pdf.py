"""A PDF opened by pypdf (and decrypted with the empty password) and checked against the
content limits up front; its pages' text (extracted by PDFium, rag.pdfium_text) normalised and
without the running headers, footers and page numbers. rag.formats.pdf makes the document's
sections of them."""

from __future__ import annotations

import io
import re
import struct
import threading
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator

from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import DependencyError, LimitReachedError, PyPdfError
from pypdf.filters import decode_stream_data
from pypdf.generic import ArrayObject, DictionaryObject, EncodedStreamObject, StreamObject

from rag.errors import LoaderError

# What pypdf raises on broken files besides its own errors (it has no single base class).
PDF_ERRORS: tuple[type[BaseException], ...] = (
    PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
    ZeroDivisionError, AssertionError, NotImplementedError, RecursionError,
    OSError, zlib.error, struct.error,
)

_LIGATURES = str.maketrans({
    "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
    "\ufb05": "st", "\ufb06": "st",
    "\uf0a7": "•", "\uf0b7": "•",  # bullets of Symbol/Wingdings fonts, in the private use area
})
_SPACES = re.compile(r"[^\S\n]+")
_LEADERS = re.compile(r"([._=*·-])(?: ?\1){3,}")  # dot leaders and rules of a table of contents
_DIGITS = re.compile(r"\d+")
_BLANK_RUNS = re.compile(r"\n{3,}")
# A bare page number at the top or bottom of a page: "3", "- 3 -", "iv", "Page 3", "Page 3 of 64".
_PAGE_NUMBER = re.compile(
    r"(?:(?i:page)\s*)?(?:\d{1,5}|(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
    r"|[-–—]\s*\d{1,5}\s*[-–—])"
    r"(?:\s*(?:(?i:of)|/)\s*\d{1,5})?"
)
_PAGE_WINDOW = 8  # pages before and after a page that are compared with it
_EDGE_LINES = 4  # non-blank lines at the top and at the bottom of a page that may be running
_RUNNING_PAGES = 3  # a running line is at the edge of this many pages, and of half the window
_RUNNING_KEY_CHARS = 4  # shorter lines count as running only when they are page numbers
_RUNNING_KEY_LENGTH = 40  # characters at the start of a line that are compared
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])-\n(?=([^\W\d_]))")
_MB = 1 << 20
# A "/Name Do" operator of a content stream: it draws the form XObject of that name (names end
# at PDF white space or delimiters; "#xx" escapes a byte).
_DO = re.compile(rb"/([^\x00\t\n\x0c\r /\[\]()<>{}%]+)[\x00\t\n\x0c\r ]*Do"
                 rb"(?![^\x00\t\n\x0c\r /\[\]()<>{}%])")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
# PDFium (pypdfium2) is not thread-safe: every call into it, in any module, holds this lock.
PDFIUM_LOCK = threading.Lock()
PASSWORD_REASON = ("the PDF is password-protected: remove the password and add it again "
                   "(it is encrypted)")


def unix_newlines(text: str) -> str:
    """Unix line ends."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def open_pdf(data: bytes, source: str) -> tuple[PdfReader, int]:
    """Open and, if needed, decrypt a PDF with the empty password (a PDF that opens without
    one, only its editing locked); returns it and its page count. A PDF that needs a password
    to open raises LoaderError(PASSWORD_REASON)."""
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except PDF_ERRORS as exc:
        raise LoaderError(source, pdf_error_reason(exc)) from exc
    if encrypted:
        try:
            opened = reader.decrypt("")
        except DependencyError as exc:
            raise LoaderError(source, f"encrypted PDF needs a missing package ({exc})") from exc
        except PDF_ERRORS as exc:
            raise LoaderError(source, pdf_error_reason(exc)) from exc
        if opened == PasswordType.NOT_DECRYPTED:
            raise LoaderError(source, PASSWORD_REASON)
    try:
        pages = len(reader.pages)
    except PDF_ERRORS as exc:
        raise LoaderError(source, pdf_error_reason(exc)) from exc
    if pages == 0:
        raise LoaderError(source, "the PDF has no pages")
    return reader, pages


def pdf_error_reason(exc: BaseException, where: str = "") -> str:
    """What a pypdf failure means for the user: a safety limit of pypdf (a stream that
    decompresses to too much, too deep a structure) or a damaged file."""
    if isinstance(exc, LimitReachedError):
        return (f"the PDF is over a safety limit of the PDF reader, pypdf ({where}{exc}): a part "
                "of it decompresses to too much data or nests too deep; it is not a setting "
                "of this app: split or simplify the PDF")
    return f"damaged or truncated PDF ({where}{exc})"


def check_content(reader: PdfReader, pages: int, source: str, *,
                  max_pdf_mb: float | None, max_page_mb: float | None) -> None:
    """Raise LoaderError before any text is extracted if a page has more than `max_page_mb` MB
    of content to parse (MAX_PAGE_CONTENT_MB), or all pages more than `max_pdf_mb` MB
    (MAX_PDF_CONTENT_MB); None: no limit. Content counts at every use, as pypdf parses it:
    a content stream shared by many pages once per page, a form XObject once per drawing."""
    if max_pdf_mb is None and max_page_mb is None:
        return
    meter = _ContentMeter(source)
    total = 0
    for number in range(1, pages + 1):
        try:
            size = meter.page(reader.pages[number - 1])
        except PDF_ERRORS as exc:
            raise LoaderError(source, pdf_error_reason(exc, f"page {number}: ")) from exc
        if max_page_mb is not None and size > max_page_mb * _MB:
            raise LoaderError(
                source, f"page {number} has {size / _MB:.1f} MB of content to parse, more than "
                f"the limit of {max_page_mb:g} MB (MAX_PAGE_CONTENT_MB); raise "
                "MAX_PAGE_CONTENT_MB to read it")
        total += size
        if max_pdf_mb is not None and total > max_pdf_mb * _MB:
            raise LoaderError(
                source, f"the PDF's pages hold more than {max_pdf_mb:g} MB of content to parse, "
                f"the limit (MAX_PDF_CONTENT_MB), by page {number} of {pages} (content shared "
                "by pages counts on each page); split it, or raise MAX_PDF_CONTENT_MB")


class _ContentMeter:
    """Bytes of content pypdf parses to extract a page's text. Each stream is decoded once
    (not kept: pypdf decodes it again when it extracts), each form XObject measured once."""

    def __init__(self, source: str) -> None:
        self.source = source
        # by id() of the object, which stays in the dict so that the id is not reused
        self._streams: dict[int, tuple[StreamObject, int, Counter[bytes]]] = {}
        self._forms: dict[int, tuple[StreamObject, int]] = {}
        self._open: set[int] = set()  # forms being measured: one drawing itself is a loop

    def page(self, page: PageObject) -> int:
        contents = page.get("/Contents")
        if contents is None:
            return 0
        resolved = contents.get_object()
        streams = list(resolved) if isinstance(resolved, ArrayObject) else [contents]
        return self._cost(streams, page.get("/Resources"))

    def _cost(self, streams: list, resources: object) -> int:
        """Size of the streams plus that of each form XObject they draw, at each drawing."""
        resources = resources.get_object() if resources is not None else None
        xobjects = resources.get("/XObject") if isinstance(resources, DictionaryObject) else None
        xobjects = xobjects.get_object() if xobjects is not None else None
        total = 0
        for stream in streams:
            size, drawn = self._stream(stream)
            total += size
            if not isinstance(xobjects, DictionaryObject):
                continue
            for name, uses in drawn.items():
                form = xobjects.get("/" + _NAME_ESCAPE.sub(
                    lambda m: bytes([int(m.group(1), 16)]), name).decode("latin-1"))
                if form is not None:
                    total += uses * self._form(form, resources)
        return total

    def _stream(self, stream: object) -> tuple[int, Counter[bytes]]:
        """Decoded size of a content stream and the form names its Do operators draw."""
        obj = stream.get_object()
        if not isinstance(obj, StreamObject):
            return 0, Counter()
        if id(obj) not in self._streams:
            fresh = isinstance(obj, EncodedStreamObject) and obj.decoded_self is None
            data = decode_stream_data(obj) if fresh else obj.get_data()
            self._streams[id(obj)] = obj, len(data), Counter(_DO.findall(data))
        _, size, drawn = self._streams[id(obj)]
        return size, drawn

    def _form(self, form: object, resources: object) -> int:
        obj = form.get_object()
        if not isinstance(obj, StreamObject) or obj.get("/Subtype") != "/Form":
            return 0  # an image: no text to parse
        key = id(obj)
        if key in self._open:
            raise LoaderError(self.source, "damaged PDF (a form XObject draws itself)")
        if key not in self._forms:
            self._open.add(key)
            self._forms[key] = obj, self._cost([obj], obj.get("/Resources") or resources)
            self._open.discard(key)
        return self._forms[key][1]


def without_running_lines(pages: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Pages without their running headers, footers and page numbers: lines at the top or
    bottom of a page that are page numbers, or that (digits aside) are also at the top or
    bottom of at least half the other pages near it (and of two at least). Reads at most
    _PAGE_WINDOW pages ahead and keeps as many behind."""
    buffer: deque[tuple[int, list[str], frozenset[str]]] = deque()
    position = 0  # index in buffer of the next page to give out
    for number, text in pages:
        lines = text.split("\n")
        buffer.append((number, lines, _edge_keys(lines)))
        while len(buffer) - 1 - position >= _PAGE_WINDOW:
            yield _strip_page(buffer, position)
            position += 1
            if position > _PAGE_WINDOW:
                buffer.popleft()
                position -= 1
    while position < len(buffer):
        yield _strip_page(buffer, position)
        position += 1


def _line_key(line: str) -> str:
    """A line compared across pages: lower case, digit runs as one 0, spaces collapsed, a
    number at its start or end left out (a page number on the outer side of left and right
    pages), and only its start (extraction sometimes runs a footer into the line after it)."""
    words = _DIGITS.sub("0", line.lower()).split()
    if len(words) > 1 and words[0] == "0":
        words = words[1:]
    if len(words) > 1 and words[-1] == "0":
        words = words[:-1]
    return " ".join(words)[:_RUNNING_KEY_LENGTH]


def _edges(lines: list[str]) -> tuple[list[int], list[int]]:
    """Indices of the non-blank lines at the top of a page, and at its bottom from the last
    line up; on a short page the top takes no more than its first half."""
    filled = [i for i, line in enumerate(lines) if line]
    half = (len(filled) + 1) // 2
    return filled[:min(_EDGE_LINES, half)], filled[half:][::-1][:_EDGE_LINES]


def _edge_keys(lines: list[str]) -> frozenset[str]:
    """The keys of a page's edge lines long enough to count as a running header or footer."""
    top, bottom = _edges(lines)
    keys = (_line_key(lines[i]) for i in top + bottom)
    return frozenset(k for k in keys if len(k) >= _RUNNING_KEY_CHARS)


def _strip_page(buffer: deque[tuple[int, list[str], frozenset[str]]],
                index: int) -> tuple[int, str]:
    """Page `index` of the buffer without running lines at its top and bottom."""
    number, lines, _ = buffer[index]
    others = Counter(key for j, (_, _, keys) in enumerate(buffer) if j != index for key in keys)
    needed = max(_RUNNING_PAGES - 1, len(buffer) // 2)  # and at least half the others

    def repeated(line: str) -> bool:
        return others[_line_key(line)] >= needed

    def running(line: str) -> bool:
        return _PAGE_NUMBER.fullmatch(line) is not None or repeated(line)

    drop: set[int] = set()
    for edge in _edges(lines):
        # up to the innermost running line: a line between two running ones is theirs too
        marks = [n for n, i in enumerate(edge) if running(lines[i])]
        drop.update(edge[:marks[-1] + 1] if marks and marks[0] == 0 else [])
        # and a line repeated on the other pages wherever it is in the edge (extraction may
        # put a figure's caption or a page's last line outside it)
        drop.update(i for i in edge if repeated(lines[i]))
    if not drop:
        return number, "\n".join(lines)
    kept = "\n".join(line for i, line in enumerate(lines) if i not in drop)
    return number, _BLANK_RUNS.sub("\n\n", kept).strip()


def normalise_pdf_text(raw: str) -> str:
    """Collapse spaces and dot leaders, keep paragraph breaks, rejoin words split by a hyphen."""
    text = unix_newlines(raw.translate(_LIGATURES)).replace("\u00ad\n", "").replace("\u00ad", "")
    paragraphs: list[str] = []
    lines: list[str] = []
    for line in text.split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if line:
            lines.append(line)
        elif lines:
            paragraphs.append("\n".join(lines))
            lines = []
    if lines:
        paragraphs.append("\n".join(lines))
    joined = _LEADERS.sub(r"\1\1\1", "\n\n".join(paragraphs))
    return _HYPHEN_BREAK.sub(lambda m: "" if m.group(1).islower() else m.group(0), joined)
