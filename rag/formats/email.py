"""E-mail messages (.eml): the subject, sender, recipients and date, then the body.

The standard library's parser (policy.default) reads the message; its body is the plain-text
part, else the HTML part read by the HTML reader (rag.formats.html). Every section is headed by
the subject. Attachments are not part of the message's text: `attachments` returns those a
reader takes (by content or file name, rag.formats.sniff), for the ingest to add as documents
of their own named after the mail ("mail.eml/report.pdf"); the others are listed with the
reason they are skipped in the document's meta ("attachments")."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from email import policy
from email.errors import MessageError
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed
from rag.formats.encoding import decode_text
from rag.formats.html import Outline, clean, content_root, parse
from rag.formats.sniff import detect
from rag.schema import Section

_HEADERS = (("Subject", "subject"), ("From", "from"), ("To", "to"), ("Cc", "cc"),
            ("Date", "date"))
# What reading a malformed header or part can raise in the stdlib's e-mail package.
_MAIL_ERRORS = (MessageError, ValueError, IndexError, TypeError, AttributeError, LookupError)
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A message as sections headed (subject,): the first begins with its header lines.
    Raises LoaderError when it has no header and no text at all."""
    message = _parse(data, source)
    subject = _header(message, "subject")
    lines = [f"{label}: {value}" for label, name in _HEADERS
             if (value := _header(message, name))]
    heading = (subject,) if subject else ()
    body = _body(message, heading, source)
    first = next(body, None)
    if not lines and first is None:
        raise LoaderError(source, "empty e-mail (no subject, sender, date or text)")
    head = "\n".join(lines)
    if first is None:
        first = Section(text=head, heading=heading)
    elif head:
        first = Section(text=f"{head}\n\n{first.text}", heading=first.heading)
    skipped = [{"name": name, "reason": reason}
               for name, _, reason in _attachments(message, source) if reason]
    sections = _chain(first, body)
    return Parsed("email", None, sections, {"attachments": skipped} if skipped else {})


def attachments(data: bytes, source: str = "e-mail") -> list[tuple[str, bytes]]:
    """The message's attachments that a reader takes, as (file name, content): names made
    safe (no folders) and unique within the message."""
    message = _parse(data, source)
    return [(name, content) for name, content, reason in _attachments(message, source)
            if not reason]


def _parse(data: bytes, source: str) -> EmailMessage:
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
    except _MAIL_ERRORS as exc:
        raise LoaderError(source, f"damaged e-mail ({exc})") from exc
    assert isinstance(message, EmailMessage)  # what policy.default makes
    return message


def _header(message: EmailMessage, name: str) -> str:
    """A header's value decoded (its raw text when it does not parse), on one line."""
    try:
        value = str(message.get(name, ""))
    except _MAIL_ERRORS:
        value = next((str(v) for k, v in message.raw_items() if k.lower() == name), "")
    return " ".join(value.split())


def _body(message: EmailMessage, heading: tuple[str, ...], source: str) -> Iterator[Section]:
    """The body's sections: its plain text as one, or its HTML's heading sections."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except _MAIL_ERRORS as exc:
        raise LoaderError(source, f"damaged e-mail ({exc})") from exc
    if part is None:
        return
    text = _text(part, source)
    if part.get_content_subtype() == "html":
        yield from Outline(heading).sections(clean(content_root(parse(text, source))))
        return
    text = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
    text = _BLANK_LINES.sub("\n\n", text).strip()
    if text:
        yield Section(text=text, heading=heading)


def _text(part: EmailMessage, source: str) -> str:
    """A text part's content, decoded by its charset (guessed when it names none known)."""
    try:
        return str(part.get_content())
    except LookupError:  # an unknown charset
        payload = part.get_payload(decode=True)
        return decode_text(payload if isinstance(payload, bytes) else b"", source)[0]
    except _MAIL_ERRORS as exc:
        raise LoaderError(source, f"damaged e-mail ({exc})") from exc


def _chain(first: Section, rest: Iterator[Section]) -> Iterator[Section]:
    yield first
    yield from rest


def _attachments(message: EmailMessage, source: str) -> Iterator[tuple[str, bytes, str]]:
    """Each attachment (nested multiparts included) as (safe unique name, content, reason
    it is skipped or '')."""
    seen: set[str] = set()
    stack = [iter(message.iter_attachments())]
    index = 0
    while stack:
        part = next(stack[-1], None)
        if part is None:
            stack.pop()
            continue
        if part.get_content_maintype() == "multipart":
            stack.append(iter(part.iter_attachments()))
            continue
        index += 1
        name = _unique(_file_name(part, index), seen)
        content, reason = _content(part)
        if not reason:
            reason = _unreadable(content, name, f"{source}/{name}")
        yield name, content, reason


def _file_name(part: EmailMessage, index: int) -> str:
    """The attachment's file name without folders or control characters; else one made
    from its position and type ('attachment-2.pdf'), a forwarded mail's from its subject."""
    try:
        raw = part.get_filename() or ""
    except _MAIL_ERRORS:
        raw = ""
    name = _CONTROL.sub("", PurePosixPath(PureWindowsPath(raw).name).name).strip(" .")
    if not name and part.get_content_type() == "message/rfc822":
        try:
            inner = part.get_content()
        except _MAIL_ERRORS:
            inner = None
        subject = _header(inner, "subject") if isinstance(inner, EmailMessage) else ""
        name = _CONTROL.sub("", subject.replace("/", "-").replace("\\", "-")).strip(" .")
        name = f"{name or f'attachment-{index}'}.eml"
    if not name:
        name = f"attachment-{index}"
    if not PurePosixPath(name).suffix:
        name += mimetypes.guess_extension(part.get_content_type()) or ""
    return name


def _unique(name: str, seen: set[str]) -> str:
    """'a.txt', then 'a (2).txt' for a second attachment of the same name."""
    path = PurePosixPath(name)
    candidate, number = name, 1
    while candidate.lower() in seen:
        number += 1
        candidate = f"{path.stem} ({number}){path.suffix}"
    seen.add(candidate.lower())
    return candidate


def _content(part: EmailMessage) -> tuple[bytes, str]:
    """The attachment's bytes (a forwarded mail's as an .eml), or the reason there are none."""
    try:
        if part.get_content_type() == "message/rfc822":
            inner: Any = part.get_content()
            content = inner.as_bytes() if isinstance(inner, EmailMessage) else b""
        else:
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
    except _MAIL_ERRORS as exc:
        return b"", f"damaged attachment ({exc})"
    return content, "" if content.strip() else "empty attachment"


def _unreadable(content: bytes, name: str, source: str) -> str:
    """Why no reader takes the attachment ('unsupported file type'), or ''."""
    try:
        detect(content, name, source)
    except LoaderError as exc:
        return exc.reason
    return ""
