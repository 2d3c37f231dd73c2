"""Read PDF, Markdown and plain-text files into lazily produced sections."""

from __future__ import annotations

import codecs
import hashlib
import io
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, PyPdfError

from rag.errors import LoaderError
from rag.schema import Section

PDF_EXTENSIONS = frozenset({".pdf"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdx"})
TEXT_EXTENSIONS = frozenset({".txt", ".text", ".rst"})
SUPPORTED_EXTENSIONS = PDF_EXTENSIONS | MARKDOWN_EXTENSIONS | TEXT_EXTENSIONS

_PDF_MAGIC = b"%PDF-"
_MAGIC_WINDOW = 1024
_BINARY_SHARE = 0.30  # share of undecodable bytes above which a file counts as binary

# What pypdf raises on broken files besides its own errors (it has no single base class).
_PDF_ERRORS: tuple[type[BaseException], ...] = (
    PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
    ZeroDivisionError, AssertionError, NotImplementedError, RecursionError,
    OSError, zlib.error, struct.error,
)

_LIGATURES = str.maketrans({
    "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
    "\ufb05": "st", "\ufb06": "st",
})
_SPACES = re.compile(r"[^\S\n]+")
_LEADERS = re.compile(r"([._=*·-])(?: ?\1){3,}")  # dot leaders and rules of a table of contents
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])-\n(?=([^\W\d_]))")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass
class LoadedDocument:
    """A file that was read successfully; its sections are produced lazily."""

    source: str
    kind: str
    sha256: str
    pages: int | None
    sections: Iterator[Section] = field(repr=False)


def load(path: Path, source: str | None = None) -> LoadedDocument:
    """Read one file as a PDF, Markdown or text document; raises LoaderError."""
    path = Path(path)
    source = source or path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(source, f"cannot read file: {exc.strerror or exc}") from exc
    if not data.strip():
        raise LoaderError(source, "empty file")
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if _PDF_MAGIC in data[:_MAGIC_WINDOW]:
        reader, pages = _open_pdf(data, source)
        return LoadedDocument(source, "pdf", digest, pages, _pdf_sections(reader, pages, source))
    if suffix in PDF_EXTENSIONS:
        raise LoaderError(source, "not a PDF (no %PDF header)")
    text = _decode(data, source)
    if not text.strip():
        raise LoaderError(source, "empty file")
    if suffix in MARKDOWN_EXTENSIONS:
        sections = markdown_sections(text)
        if not sections:
            raise LoaderError(source, "empty file (nothing besides front matter and comments)")
        return LoadedDocument(source, "markdown", digest, None, iter(sections))
    return LoadedDocument(source, "text", digest, None, iter([Section(text=text.strip())]))


def iter_files(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """Expand folders recursively into (path, source) pairs; files given directly pass as is."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in _walk(path, set()):
                yield found, found.relative_to(path).as_posix()
        else:
            yield path, path.name


def _walk(folder: Path, seen: set[Path]) -> Iterator[Path]:
    """Supported, non-hidden files under folder in sorted order; unreadable folders pass through."""
    resolved = folder.resolve()
    if resolved in seen:  # a symlink loop
        return
    seen.add(resolved)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        yield folder  # load() reports the OS reason for this entry alone
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry, seen)
        elif entry.is_file() and entry.suffix.lower() in SUPPORTED_EXTENSIONS:
            yield entry


def _decode(data: bytes, source: str) -> str:
    """Bytes to text with normalised line ends; binary or non-UTF-8 content raises."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoaderError(source, "not a text file (binary content)") from exc
        return _newlines(text)
    if b"\x00" in data:
        raise LoaderError(source, "not a text file (binary content)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        good = len(data.decode("utf-8", errors="ignore").encode("utf-8"))
        if (len(data) - good) / len(data) > _BINARY_SHARE:
            raise LoaderError(source, "not a text file (binary content)") from exc
        raise LoaderError(
            source, f"not UTF-8 text (invalid byte at offset {exc.start}); "
            "save it as UTF-8 and upload again",
        ) from exc
    return _newlines(text)


def _newlines(text: str) -> str:
    """Unix line ends."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- PDF ---------------------------------------------------------------------------------------

def _open_pdf(data: bytes, source: str) -> tuple[PdfReader, int]:
    """Open and, if needed, decrypt a PDF with the empty password; returns it and its page count."""
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except _PDF_ERRORS as exc:
        raise LoaderError(source, f"damaged or truncated PDF ({exc})") from exc
    if encrypted:
        try:
            opened = reader.decrypt("")
        except DependencyError as exc:
            raise LoaderError(source, f"encrypted PDF needs a missing package ({exc})") from exc
        except _PDF_ERRORS as exc:
            raise LoaderError(source, f"damaged or truncated PDF ({exc})") from exc
        if opened == PasswordType.NOT_DECRYPTED:
            raise LoaderError(
                source, "encrypted (password-protected); remove the password and upload again"
            )
    try:
        pages = len(reader.pages)
    except _PDF_ERRORS as exc:
        raise LoaderError(source, f"damaged or truncated PDF ({exc})") from exc
    if pages == 0:
        raise LoaderError(source, "the PDF has no pages")
    return reader, pages


def _pdf_sections(reader: PdfReader, pages: int, source: str) -> Iterator[Section]:
    """One Section per page with text, extracted as it is asked for."""
    found = False
    for number in range(1, pages + 1):
        try:
            raw = reader.pages[number - 1].extract_text()
        except _PDF_ERRORS as exc:
            raise LoaderError(
                source, f"damaged or truncated PDF (page {number}: {exc})"
            ) from exc
        text = normalise_pdf_text(raw)
        if text:
            found = True
            yield Section(text=text, page=number)
    if not found:
        raise LoaderError(source, "no extractable text (scanned image PDF?)")


def normalise_pdf_text(raw: str) -> str:
    """Collapse spaces and dot leaders, keep paragraph breaks, rejoin words split by a hyphen."""
    text = _newlines(raw.translate(_LIGATURES)).replace("\u00ad\n", "").replace("\u00ad", "")
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


# --- Markdown ----------------------------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark").enable("table")


def markdown_sections(text: str) -> list[Section]:
    """One Section per non-empty heading section with its heading path; drops front matter."""
    text = _newlines(text)
    match = _FRONT_MATTER.match(text)
    if match:
        text = text[match.end():]
    tokens = _MARKDOWN.parse(text)
    lines = _strip_comments(text.split("\n"), tokens)
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    titles: list[str] = []
    start = 0
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or token.level != 0 or token.map is None:
            continue
        _add_section(sections, lines[start:token.map[0]], path)
        level = int(token.tag[1:])
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, _inline_text(tokens[index + 1])))
        titles.append(path[-1][1])
        start = token.map[1]
    _add_section(sections, lines[start:], path)
    if not sections and titles:  # a stub of headings only: its headings are its text
        sections.append(Section(text="\n".join(titles)))
    return sections


def _add_section(sections: list[Section], body: list[str], path: list[tuple[int, str]]) -> None:
    """Append a section unless its body is blank."""
    while body and not body[0].strip():
        body = body[1:]
    while body and not body[-1].strip():
        body = body[:-1]
    if body:
        text = "\n".join(line.rstrip() for line in body)
        sections.append(Section(text=text, heading=tuple(title for _, title in path)))


def _inline_text(inline: Token) -> str:
    """Plain text of a heading's inline token (code spans and link texts kept, markup dropped)."""
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return " ".join("".join(parts).split()) or inline.content.strip()


def _strip_comments(lines: list[str], tokens: list[Token]) -> list[str]:
    """Remove HTML comments outside code blocks, keeping the line count unchanged."""
    code = [False] * len(lines)
    for token in tokens:
        if token.type in ("fence", "code_block") and token.map is not None:
            for number in range(token.map[0], min(token.map[1], len(lines))):
                code[number] = True
    out: list[str] = []
    run: list[str] = []
    for line, is_code in zip(lines, code, strict=True):
        if is_code:
            out.extend(_uncomment(run))
            run = []
            out.append(line)
        else:
            run.append(line)
    out.extend(_uncomment(run))
    return out


def _uncomment(lines: list[str]) -> list[str]:
    """Lines with HTML comments removed; a removed multi-line comment leaves blank lines."""
    if not lines:
        return []
    joined = "\n".join(lines)
    if "<!--" not in joined:
        return lines
    cleaned = _HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), joined)
    return cleaned.split("\n")

