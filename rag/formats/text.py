"""Plain-text files: decoded (UTF-8, or UTF-16 with a byte-order mark) and kept as one section."""

from __future__ import annotations

import codecs

from rag.errors import LoaderError
from rag.formats.base import Limits, Parsed
from rag.pdf import unix_newlines
from rag.schema import Section

_BINARY_SHARE = 0.30  # share of undecodable bytes above which a file counts as binary


def read(data: bytes, source: str, limits: Limits) -> Parsed:
    """A text file as one section (the chunker cuts it)."""
    text = decode(data, source).strip()
    if not text:
        raise LoaderError(source, "empty file")
    return Parsed("text", None, iter([Section(text=text)]))


def decode(data: bytes, source: str) -> str:
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
