"""Read PDF, Markdown and plain-text files into lazily produced sections; which files are
documents, and the names they are stored under."""

from __future__ import annotations

import codecs
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from rag.errors import LoaderError
from rag.markup import MARKDOWN, PlainText, heading_line, inline_text, tokens_text
from rag.pdf import check_content, open_pdf, pdf_sections, unix_newlines
from rag.pdf import normalise_pdf_text as normalise_pdf_text  # re-exported
from rag.pdf import without_running_lines as without_running_lines  # re-exported
from rag.schema import Section

# The knowledge base's document types, by file name extension: the one list that the folder
# walk, load(), the command line and the web app's upload check.
_TYPES = {"PDF": (".pdf",), "Markdown": (".md", ".markdown", ".mdx"),
          "text": (".txt", ".text", ".rst")}
PDF_EXTENSIONS = frozenset(_TYPES["PDF"])
MARKDOWN_EXTENSIONS = frozenset(_TYPES["Markdown"])
TEXT_EXTENSIONS = frozenset(_TYPES["text"])
SUPPORTED_EXTENSIONS = PDF_EXTENSIONS | MARKDOWN_EXTENSIONS | TEXT_EXTENSIONS
_LISTED = [f"{kind} ({', '.join(extensions)})" for kind, extensions in _TYPES.items()]
# "PDF (.pdf), Markdown (.md, .markdown, .mdx) or text (.txt, .text, .rst) files"
SUPPORTED_TYPES = f"{', '.join(_LISTED[:-1])} or {_LISTED[-1]} files"

_MB = 1 << 20
_PDF_MAGIC = b"%PDF-"
_MAGIC_WINDOW = 1024
_BINARY_SHARE = 0.30  # share of undecodable bytes above which a file counts as binary

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


@dataclass
class LoadedDocument:
    """A file that was read successfully; its sections are produced lazily."""

    source: str
    kind: str
    sha256: str
    pages: int | None
    sections: Iterator[Section] = field(repr=False)


def load(path: Path, source: str | None = None, *, max_file_mb: float | None = None,
         max_pages: int | None = None, max_pdf_content_mb: float | None = None,
         max_page_content_mb: float | None = None) -> LoadedDocument:
    """Read one file as a PDF, Markdown or text document; raises LoaderError, also for a file
    whose type is not one of SUPPORTED_EXTENSIONS or that is larger than `max_file_mb`
    (before reading it), or for a PDF of more than `max_pages` pages or more content to parse
    than `max_pdf_content_mb` in all or `max_page_content_mb` on a page (before any text is
    extracted: rag.pdf.check_content). None: no limit."""
    path = Path(path)
    source = source or path.name
    if path.is_file():  # a folder or a missing path fails below, with the OS's reason
        check_type(path, source)
        check_size(path.stat().st_size, source, max_file_mb)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(source, f"cannot read file: {exc.strerror or exc}") from exc
    if not data.strip():
        raise LoaderError(source, "empty file")
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if _PDF_MAGIC in data[:_MAGIC_WINDOW]:
        reader, pages = open_pdf(data, source)
        if max_pages is not None and pages > max_pages:
            raise LoaderError(source, f"the PDF has {pages} pages, more than the limit of "
                              f"{max_pages} (MAX_PAGES); split it, or raise MAX_PAGES")
        check_content(reader, pages, source, max_pdf_mb=max_pdf_content_mb,
                      max_page_mb=max_page_content_mb)
        return LoadedDocument(source, "pdf", digest, pages, pdf_sections(reader, pages, source))
    if suffix in PDF_EXTENSIONS:
        raise LoaderError(source, "not a PDF (no %PDF header)")
    text = _decode(data, source)
    if not text.strip():
        raise LoaderError(source, "empty file")
    if suffix in MARKDOWN_EXTENSIONS:
        sections = markdown_sections(text)
        if not sections:
            raise LoaderError(
                source, "empty file (nothing besides front matter, comments and markup)"
            )
        return LoadedDocument(source, "markdown", digest, None, iter(sections))
    return LoadedDocument(source, "text", digest, None, iter([Section(text=text.strip())]))


def is_supported(name: str | PurePath) -> bool:
    """Whether a file name has one of the knowledge base's document types."""
    return PurePath(name).suffix.lower() in SUPPORTED_EXTENSIONS


def check_size(size: int, source: str, max_file_mb: float | None) -> None:
    """Raise LoaderError if `size` bytes is over the limit of `max_file_mb` MB (2**20 bytes)."""
    if max_file_mb is not None and size > max_file_mb * _MB:
        raise LoaderError(source, f"the file is {size / _MB:.1f} MB, more than the limit of "
                          f"{max_file_mb:g} MB (MAX_FILE_MB); split it, or raise MAX_FILE_MB")


def check_type(name: str | PurePath, source: str | None = None) -> None:
    """Raise LoaderError unless the file name has one of the knowledge base's types."""
    if not is_supported(name):
        suffix = PurePath(name).suffix.lower()
        kind = f"({suffix})" if suffix else "(no extension)"
        raise LoaderError(source or PurePath(name).name,
                          f"unsupported file type {kind}: add {SUPPORTED_TYPES}")


def document_name(path: str | PurePath, root: str | PurePath | None = None) -> str:
    """The name a file is stored under, whichever way it comes in (CLI, web upload, API).

    The rule: a file found inside a folder that was given is named by its path relative to that
    folder, with "/" between folders (`rag ingest docs/` stores docs/reference/index.md as
    "reference/index.md"); a file given by itself, on the command line or uploaded, is named by
    its file name alone ("index.md").
    """
    path = PurePath(path)
    if root is None:
        return path.name
    return path.relative_to(root).as_posix()


@dataclass(slots=True)
class FoundFiles:
    """What a list of files and folders holds: (path, document name) of every document, and
    the files inside the folders that were passed over because they are of another type."""

    files: list[tuple[Path, str]]
    ignored: list[Path]

    def ignored_summary(self) -> str:
        """'3 files of other types (.png ×2, .yaml)', or '' when none were ignored."""
        if not self.ignored:
            return ""
        kinds = Counter(p.suffix.lower() or "no extension" for p in self.ignored)
        listed = ", ".join(k if n == 1 else f"{k} ×{n}" for k, n in kinds.most_common())
        files = "file" if len(self.ignored) == 1 else "files"
        return f"{len(self.ignored)} {files} of other types ({listed})"


def find_files(paths: Iterable[Path | str]) -> FoundFiles:
    """Expand folders recursively into the documents they hold, named by document_name; files
    given directly are kept whatever their type (load() then says what is wrong with them)."""
    found = FoundFiles([], [])
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            found.files.append((path, document_name(path)))
            continue
        for entry in _walk(path, set()):
            if entry.is_dir() or is_supported(entry):  # an unreadable folder: load() says why
                found.files.append((entry, document_name(entry, path)))
            else:
                found.ignored.append(entry)
    return found


def iter_files(paths: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """(path, document name) of every document in the given files and folders (find_files)."""
    yield from find_files(paths).files


def _walk(folder: Path, seen: set[Path]) -> Iterator[Path]:
    """Non-hidden files under folder in sorted order; unreadable folders pass through."""
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
        elif entry.is_file():
            yield entry


def _decode(data: bytes, source: str) -> str:
    """Bytes to text with normalised line ends; binary or non-UTF-8 content raises."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoaderError(source, "not a text file (binary content)") from exc
        return unix_newlines(text)
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
    return unix_newlines(text)


# --- Markdown ----------------------------------------------------------------------------------

_NAVIGATION_SHARE = 0.5  # a section whose text is mostly link texts is navigation ("What's next")


def markdown_sections(text: str) -> list[Section]:
    """One Section of plain text per non-empty heading section, with its heading path; drops
    front matter and markup. A section that is mostly links joins the section before it."""
    text = unix_newlines(text)
    match = _FRONT_MATTER.match(text)
    if match:
        text = text[match.end():]
    env: dict = {}
    tokens = MARKDOWN.parse(text, env)
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    titles: list[str] = []
    start = 0
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or token.level != 0:
            continue
        _add_section(sections, tokens_text(tokens[start:index], env), path)
        level = int(token.tag[1:])
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, inline_text(tokens[index + 1])))
        titles.append(path[-1][1])
        start = index + 3  # heading_open, inline, heading_close
    _add_section(sections, tokens_text(tokens[start:], env), path)
    if not sections and any(titles):  # a stub of headings only: its headings are its text
        sections.append(Section(text="\n".join(t for t in titles if t)))
    if not sections:  # a file of tab labels only (an included fragment): its labels are its text
        labels = tokens_text(tokens, env, tab_labels=True).text
        sections.extend([Section(text=labels)] if labels else [])
    return sections


def _add_section(sections: list[Section], body: PlainText, path: list[tuple[int, str]]) -> None:
    """Append a section unless its text is blank; navigation joins the section before it."""
    if not body.text:
        return
    heading = tuple(title for _, title in path)
    if sections and body.link_share >= _NAVIGATION_SHARE:
        previous = sections[-1]
        line = heading_line(previous.heading, heading)
        joined = f"{previous.text}\n\n{line}\n{body.text}" if line else \
            f"{previous.text}\n\n{body.text}"
        sections[-1] = Section(text=joined, page=previous.page, heading=previous.heading)
        return
    sections.append(Section(text=body.text, heading=heading))
