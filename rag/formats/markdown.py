"""Markdown files: one section of plain text per heading section, with its heading path; front
matter, markup and the HTML inside Markdown become text (rag.markup)."""

from __future__ import annotations

import re

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed
from rag.formats.text import decode
from rag.markup import MARKDOWN, PlainText, heading_line, inline_text, tokens_text
from rag.pdf import unix_newlines
from rag.schema import Section

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A Markdown file's sections; a file of nothing but front matter and markup fails."""
    text = decode(data, source)
    if not text.strip():
        raise LoaderError(source, "empty file")
    sections = markdown_sections(text)
    if not sections:
        raise LoaderError(source,
                          "empty file (nothing besides front matter, comments and markup)")
    return Parsed("markdown", None, iter(sections))


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
