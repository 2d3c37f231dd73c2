"""The original files of a knowledge base's documents, kept so a reader can open them.

One folder per knowledge base (FILES_DIR/<collection>, see rag.kb), one subfolder per
document, named by a hash of the document's name (names are arbitrary text, with "/" in
folder paths and e-mail attachments, "mail.eml/report.pdf", so they are never used as
paths), one file per version: `root/<sha256(name)[:32]>/<version><suffix of the name>`.
The committed version of a document is its `DocumentInfo.meta["version"]`, so
`files.path(info.doc_id, info.meta["version"])` is the file a reader downloads.

Every file is written whole or not at all (a temporary file in the same folder, synced, then
renamed over the target). The ingest keeps a version's file before it commits the version and
removes the other versions' files after (rag.ingest.originals); a failed commit discards it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from rag.errors import StoreError

_VERSION = re.compile(r"[0-9a-f]{1,64}")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,16}")
_TEMP_PREFIX = ".part-"
_COPY_BLOCK = 1 << 20
_FIX = "free disk space or make FILES_DIR writable, or set FILES_DIR= (empty) to keep no originals"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class FileStore:
    """The kept original files of one knowledge base, under `root`."""

    def __init__(self, root: Path) -> None:
        """Files go under `root`, made on the first `put`."""
        self.root = Path(root)

    def folder(self, doc_id: str) -> Path:
        """The folder of a document's files (whether or not it exists)."""
        digest = hashlib.sha256(doc_id.encode("utf-8", "surrogateescape")).hexdigest()
        return self.root / digest[:32]

    def _file(self, doc_id: str, version: str) -> Path:
        if not _VERSION.fullmatch(version):
            raise ValueError(f"not a document version: {version!r}")
        suffix = PurePosixPath(doc_id.rsplit("/", 1)[-1]).suffix.lower()
        return self.folder(doc_id) / (version + (suffix if _SUFFIX.fullmatch(suffix) else ""))

    def path(self, doc_id: str, version: str) -> Path | None:
        """The kept file of that version of the document, or None if it is not kept."""
        target = self._file(doc_id, version)
        return target if target.is_file() else None

    def put(self, doc_id: str, version: str, original: Path | bytes, *,
            sha256: str | None = None) -> Path:
        """Keep `original` (a file, or the content itself) as that version of the document;
        returns where. The file appears whole or not at all. With `sha256`, content that
        does not have that hash (a file changed since it was read) is not kept.

        Raises StoreError, saying what to do, when the file cannot be read or written (disk
        full, no permission)."""
        target = self._file(doc_id, version)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
        except OSError as exc:
            raise StoreError(f"Could not keep the original file of {doc_id!r} in "
                             f"{target.parent}: {_reason(exc)}; {_FIX}.") from exc
        try:
            with os.fdopen(handle, "wb") as out:
                digest = _write(out, original, doc_id)
                out.flush()
                os.fsync(out.fileno())
            if sha256 is not None and digest != sha256:
                raise StoreError(f"The file {doc_id!r} changed while it was being added, so its "
                                 "original was not kept; add it again.")
            os.replace(temp, target)
            _sync_folder(target.parent)
        except OSError as exc:
            _unlink(Path(temp))
            raise StoreError(f"Could not keep the original file of {doc_id!r} in "
                             f"{target.parent}: {_reason(exc)}; {_FIX}.") from exc
        except BaseException:
            _unlink(Path(temp))
            raise
        return target

    def discard(self, doc_id: str, version: str) -> None:
        """Remove one version's file (its commit failed); StoreError if it cannot be."""
        target = self._file(doc_id, version)
        self._remove([target], doc_id)

    def keep_only(self, doc_id: str, version: str) -> None:
        """Remove the files of the document's other versions (its `version` is committed);
        files still being written are left alone."""
        target = self._file(doc_id, version)
        self._remove([p for p in _entries(target.parent)
                      if p != target and not p.name.startswith(_TEMP_PREFIX)], doc_id)

    def remove(self, doc_id: str) -> None:
        """Remove every file of a deleted document; StoreError if they cannot be."""
        self._remove(_entries(self.folder(doc_id)), doc_id)

    def drop(self) -> None:
        """Remove the whole knowledge base's folder; StoreError if it cannot be."""
        try:
            shutil.rmtree(self.root)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"Could not remove the original files in {self.root}: "
                             f"{_reason(exc)}; remove the folder by hand.") from exc

    def sweep(self, committed: Mapping[str, str], older_than: float = 0.0) -> int:
        """Remove the files that are not the committed version (`committed`: document name ->
        version) of a stored document, left by an ingest or a delete that was cut short;
        only those last changed more than `older_than` seconds ago. Returns how many."""
        keep = {self._file(doc_id, version) for doc_id, version in committed.items()}
        cutoff = time.time() - older_than
        stale = []
        for folder in (f for f in _entries(self.root) if f.is_dir()):
            stale += [p for p in _entries(folder) if p not in keep and _mtime(p) <= cutoff]
        for path in stale:
            self._remove([path], path.parent.name)
        return len(stale)

    def _remove(self, paths: list[Path], doc_id: str) -> None:
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"Could not remove the original file {path} of {doc_id!r}: "
                                 f"{_reason(exc)}; remove it by hand or make FILES_DIR "
                                 "writable.") from exc
        if paths:
            # not empty (other versions, or a file being written): the folder stays
            with contextlib.suppress(OSError):
                paths[0].parent.rmdir()


def _write(out: BinaryIO, original: Path | bytes, doc_id: str) -> str:
    """Write the content to the open file `out`; returns its SHA-256."""
    digest = hashlib.sha256()
    if isinstance(original, bytes):
        digest.update(original)
        out.write(original)
        return digest.hexdigest()
    try:
        source = open(original, "rb")  # noqa: SIM115 - closed below, errors told apart
    except OSError as exc:
        raise StoreError(f"Could not read {original} to keep it as the original of "
                         f"{doc_id!r}: {_reason(exc)}; add the file again.") from exc
    with source:
        while block := source.read(_COPY_BLOCK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"Could not list the original files in {folder}: {_reason(exc)}; "
                         "make FILES_DIR readable.") from exc


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()  # gone meanwhile: nothing to remove


def _sync_folder(folder: Path) -> None:
    """Make the rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    # a temporary file that cannot be removed is swept later (FileStore.sweep); the error
    # that made it a leftover is the one raised
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
