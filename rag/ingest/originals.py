"""An ingest run's kept original files (rag.files): each committed document's file is kept
with it, and only its file.

A ready document's original is kept before its version is committed (a document whose file
cannot be kept fails alone, with the reason); a failed commit discards the files it kept; a
successful one removes the documents' older versions' files. A document skipped as unchanged
whose file is not kept yet (it was added before originals were kept) gets it now. Without a
FileStore, or for a document that came without an original (a loader only), nothing is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from rag.errors import StoreError
from rag.files import FileStore
from rag.schema import DocumentInfo

log = logging.getLogger(__name__)

Original = Path | bytes  # a file's path, or the content itself (an e-mail's attachment)


class Originals:
    """The FileStore as one ingest run uses it (or none: nothing is kept)."""

    def __init__(self, files: FileStore | None) -> None:
        self.files = files

    def keep(self, doc_id: str, version: str, original: Original | None, sha256: str) -> str:
        """Keep the original of a version about to be committed; '' when it is kept (or
        there is nothing to keep), else the reason it could not be."""
        if self.files is None or original is None:
            return ""
        try:
            self.files.put(doc_id, version, original, sha256=sha256)
        except StoreError as exc:
            return str(exc)
        return ""

    def backfill(self, info: DocumentInfo, original: Original | None) -> None:
        """Keep the original of a stored document that is skipped as unchanged, if it is not
        kept yet; a failure is logged and does not change the skip."""
        if self.files is None or original is None:
            return
        version = info.meta.get("version")
        if not isinstance(version, str) or self.files.path(info.doc_id, version) is not None:
            return
        try:
            self.files.put(info.doc_id, version, original, sha256=info.sha256)
        except StoreError as exc:
            log.warning("%s The document stays searchable, without its original file.", exc)

    def discard(self, versions: Sequence[tuple[str, str]]) -> None:
        """Remove the files kept for (document, version) pairs whose commit failed."""
        self._each(versions, "discard", "failed commit's")

    def keep_only(self, versions: Sequence[tuple[str, str]]) -> None:
        """Remove the other versions' files of (document, version) pairs just committed."""
        self._each(versions, "keep_only", "replaced versions'")

    def _each(self, versions: Sequence[tuple[str, str]], action: str, what: str) -> None:
        if self.files is None:
            return
        for doc_id, version in versions:
            try:
                getattr(self.files, action)(doc_id, version)
            except StoreError as exc:  # the commit's outcome stands; the file is a leftover
                log.warning("Could not remove the %s original files of %r: %s "
                            "`rag ingest --sync` removes leftovers.", what, doc_id, exc)
