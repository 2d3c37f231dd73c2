"""A file's format from its content first, its extension second.

Binary formats are known by their first bytes (PDF, PNG, JPEG, TIFF), ZIP-based ones (Word,
PowerPoint, Excel, OpenDocument, EPUB) by the parts the archive lists, and an OLE compound
file (an encrypted Office file, or a legacy .doc/.xls/.ppt) is refused with its reason. Text
formats (Markdown, text, CSV, HTML, e-mail) go by their extension; a file whose content is of
another type than its extension says is read as what it is."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePath

from rag.errors import LoaderError
from rag.formats import format_for

_PDF = b"%PDF-"
_MAGIC_WINDOW = 1024
_IMAGES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_PARTS = (("word/document.xml", "docx"), ("ppt/presentation.xml", "pptx"),
              ("xl/workbook.xml", "xlsx"))
_ZIP_MIMETYPES = {b"application/epub+zip": "epub",
                  b"application/vnd.oasis.opendocument.text": "odt"}
_ZIP_KINDS = frozenset({"docx", "pptx", "xlsx", "epub", "odt"})


def detect(data: bytes, name: str | PurePath, source: str) -> str:
    """The kind of format (rag.formats.FORMATS) the file's content is; raises LoaderError for
    content no reader takes (an encrypted or legacy Office file, a ZIP of something else)."""
    by_name = format_for(name=name)
    named = by_name.kind if by_name else None
    if _PDF in data[:_MAGIC_WINDOW]:
        return "pdf"
    if data.startswith(_IMAGES):
        return "image"
    if data.startswith(_OLE):
        raise LoaderError(source, _ole_reason(data, named))
    if data.startswith(_ZIP):
        return _zip_kind(data, named, source)
    if named == "pdf":
        raise LoaderError(source, "not a PDF (no %PDF header)")
    if named in _ZIP_KINDS or named == "image":
        what = by_name.label if by_name else named
        raise LoaderError(source, f"not a valid {what} file (its content is of another type)")
    if named is None:
        raise LoaderError(source, "unsupported file type")
    return named


def _zip_kind(data: bytes, named: str | None, source: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype").strip() if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, NotImplementedError) as exc:
        raise LoaderError(source, f"damaged file (not a readable ZIP archive: {exc})") from exc
    for part, kind in _ZIP_PARTS:
        if part in names:
            return kind
    if mimetype in _ZIP_MIMETYPES:
        return _ZIP_MIMETYPES[mimetype]
    if named in _ZIP_KINDS:
        raise LoaderError(source, f"damaged {format_for(named).label} file (its main part is "
                          "missing)")
    raise LoaderError(source, "a ZIP archive, not a document: unpack it and add its files")


def _ole_reason(data: bytes, named: str | None) -> str:
    """Why an OLE compound file is refused: encrypted (password-protected) or legacy format."""
    import olefile

    try:
        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            encrypted = ole.exists("EncryptionInfo") or ole.exists("EncryptedPackage")
    except OSError:
        encrypted = False
    if encrypted:
        return ("the file is password-protected (encrypted): remove the password in the "
                "program that made it, then add it again")
    return ("a legacy Microsoft Office file (.doc, .xls or .ppt): save it as .docx, .xlsx or "
            ".pptx and add it again")
