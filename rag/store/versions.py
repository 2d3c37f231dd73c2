"""Writing documents: new chunks are stored hidden, then one upsert switches them in.

Searches never see a document half-stored or twice. Each document being changed has one
*marker* row in the documents collection, id `pending:<doc id>`, state `pending`; its `version`
names the version every search skips (the read side reads the markers first, see
rag.store.reading). The rows at each step of replacing document D, stored as version v1, by v2:

0. Before: the row D (active, version v1) and the chunks of v1. No marker. Searches see v1.
1. `begin_versions`: the marker hides v2 (phase "writing"). No chunk of v2 exists yet.
2. `insert_chunks`, once or many times: chunks of v2 are written. The marker hides them all:
   searches still see v1, whole.
3. `commit_versions`: one upsert rewrites the marker to hide v1 instead (phase "switching",
   carrying v2 and the new document record). This is the commit point: from this write on,
   searches see v2, whole, and no chunk of v1.
4. `_finish_switch`: the row D is rewritten to version v2, the chunks of v1 are deleted, and
   only then the marker: while any chunk of v1 exists, the marker hides it.

A crash at any step leaves no half-stored document visible: before 3, the marker hides
everything of v2, and the next open of the store rolls the change back (`abort_version`: the
chunks of v2, then the marker, go); from 3 on, the marker hides v1, and the next open rolls it
forward from what the marker carries (step 4 again). A new document is the same without v1 (the
marker of step 3 hides nothing). Deleting is one more phase: the marker hides the current
version ("deleting"), then the row, the chunks and the marker go; the next open finishes it.

An ingest run begins and switches the documents of one embedding batch together (one upsert
for all their markers), so many small files cost a few Milvus calls per batch, not per file.
A change that cannot be finished or undone when the store opens is logged and left hidden, so
one bad row never locks the store; deleting the document (or ingesting it again) clears it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from rag.errors import DocumentNotFoundError, StoreError
from rag.schema import Chunk, DocumentInfo
from rag.store.client import milvus
from rag.store.filters import equals, in_list
from rag.store.reading import StoreReader
from rag.store.schema import ACTIVE, PENDING, chunk_rows, document_row, oversized

log = logging.getLogger(__name__)


def _marker_doc_id(row: dict[str, Any]) -> str:
    """The document a marker row belongs to (from its key, should its meta be damaged)."""
    meta = row.get("meta") or {}
    doc_id = meta.get("doc_id") if isinstance(meta, dict) else None
    return doc_id if isinstance(doc_id, str) else row["doc_id"].removeprefix(f"{PENDING}:")


class StoreWriter(StoreReader):
    """Adds, replaces and deletes documents by the protocol above."""

    _unfinished: set[str]  # documents whose leftover change could not be undone

    def _marker_row(self, doc_id: str, *, hidden: str, phase: str, source: str,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The one marker row of a document being changed; its `version` is hidden from searches."""
        return document_row(f"{PENDING}:{doc_id}", state=PENDING, version=hidden, sha256="",
                            source=source, kind="", pages=None, chunks=0,
                            meta={"doc_id": doc_id, "phase": phase, **(extra or {})})

    def _drop_markers(self, doc_ids: Sequence[str]) -> None:
        if doc_ids:
            self._delete_documents(in_list("doc_id", [f"{PENDING}:{d}" for d in doc_ids]),
                                   "finish the document change")

    # -- steps 1 and 2 ---------------------------------------------------------------------
    def begin_versions(self, versions: Sequence[tuple[str, str, str]]) -> None:
        """Hide new versions, as (doc id, version, source), before their first chunk is written."""
        if not versions:
            return
        self._upsert_rows([self._marker_row(doc_id, hidden=version, phase="writing", source=source)
                           for doc_id, version, source in versions])
        if not self.is_lite or self._unfinished.intersection(d for d, _, _ in versions):
            # On a shared server a crashed ingest may have left chunks of the same version (its
            # marker is still young). A Lite file has one process, which cleared those on open
            # unless that failed for the document.
            self._delete_chunks(in_list("version", [v for _, v, _ in versions]),
                                "clear leftovers of an earlier attempt")

    @staticmethod
    def oversized(chunks: Sequence[Chunk], lexical: Sequence[str]) -> dict[str, str]:
        """Documents whose chunks would not fit their fields, with the reason (by id)."""
        return oversized(chunks, lexical)

    def insert_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray,
                      lexical: Sequence[str], versions: Sequence[str],
                      sentences: Sequence[np.ndarray] | None = None) -> None:
        """Write chunks of pending versions (one version per chunk), with each chunk's
        sentence vectors when given (kept only by a collection that has their field).

        Chunks too long for their fields raise ChunkTooLongError (a StoreError) naming their
        documents, and nothing of the batch is written.
        """
        if not self.has_sentences:
            sentences = None
        elif sentences is None:
            sentences = [np.zeros((0, self.dimension), dtype=np.float32)] * len(chunks)
        rows = chunk_rows(chunks, vectors, lexical, versions, sentences)
        with milvus("store chunks"):
            self._client.insert(self.chunks, rows)

    # -- steps 3 and 4 ---------------------------------------------------------------------
    def commit_versions(self, commits: Sequence[tuple[DocumentInfo, str]]) -> None:
        """Make written versions, as (document, version), their documents' only visible ones.

        The upsert of the markers is the switch: from then on each new version is visible and
        its old one hidden. If the process dies after it, the next open rolls the change forward.
        """
        if not commits:
            return
        old = self.get_documents([info.doc_id for info, _ in commits])
        switches = [(info, version, old[info.doc_id].meta["version"] if info.doc_id in old else "")
                    for info, version in commits]
        self._upsert_rows([
            self._marker_row(info.doc_id, hidden=hidden, phase="switching", source=info.source,
                             extra={"version": version, "info": asdict(info)})
            for info, version, hidden in switches])
        self._finish_switch(switches)

    def _finish_switch(self, switches: Sequence[tuple[DocumentInfo, str, str]]) -> None:
        """Record the switched documents, drop their old chunks, then their markers."""
        self._upsert_rows([
            document_row(info.doc_id, state=ACTIVE, version=version, sha256=info.sha256,
                         source=info.source, kind=info.kind, pages=info.pages,
                         chunks=info.chunks, meta=info.meta, added_at=info.added_at)
            for info, version, _ in switches])
        replaced = [(info.doc_id, version) for info, version, hidden in switches if hidden]
        if replaced:
            self._delete_chunks(f"{in_list('doc_id', [d for d, _ in replaced])} and "
                                f"not ({in_list('version', [v for _, v in replaced])})",
                                "remove the old versions")
        self._drop_markers([info.doc_id for info, _, _ in switches])

    def abort_version(self, doc_id: str, version: str) -> None:
        """Forget a version being written, and every chunk written for it."""
        self._delete_chunks(equals("version", version), "discard a failed ingest")
        self._drop_markers([doc_id])

    # -- recovery --------------------------------------------------------------------------
    def remove_stale_pending(self, older_than: float) -> int:
        """Finish or undo document changes that a stopped process left half-done.

        One change that cannot be finished or undone does not stop the others, nor the store:
        it is logged, its marker keeps hiding its version, and `delete_document` (or the next
        ingest of that document) clears it. Returns how many changes were pending.
        """
        cutoff = time.time() - older_than
        rows = self._query(self.documents, equals("state", PENDING),
                           ["doc_id", "version", "meta", "added_at"])
        for row in rows:
            doc_id = _marker_doc_id(row)
            try:
                self._recover(doc_id, row, cutoff)
            except (StoreError, KeyError, TypeError, ValueError) as exc:
                self._unfinished.add(doc_id)
                log.warning("Could not finish or undo the interrupted change of document %r "
                            "(%s: %s); searches keep skipping the version its marker hides. "
                            "Delete the document (`rag rm`) or ingest it again.",
                            doc_id, type(exc).__name__, exc)
        return len(rows)

    def _recover(self, doc_id: str, row: dict[str, Any], cutoff: float) -> None:
        meta = row["meta"]
        if meta["phase"] == "switching":
            self._finish_switch([(DocumentInfo(**meta["info"]), meta["version"], row["version"])])
        elif meta["phase"] == "deleting":
            self._finish_delete(doc_id)
        elif row["added_at"] <= cutoff:
            self.abort_version(doc_id, row["version"])

    # -- deleting --------------------------------------------------------------------------
    def _marker(self, doc_id: str) -> dict[str, Any] | None:
        rows = self._query(self.documents, equals("doc_id", f"{PENDING}:{doc_id}"),
                           ["doc_id", "version", "source", "meta", "added_at"])
        return rows[0] if rows else None

    def delete_document(self, doc_id: str) -> DocumentInfo:
        """Delete a document and all its chunks, also one whose last change was left unfinished
        (even a first version that never got committed)."""
        info = self.get_document(doc_id)
        marker = self._marker(doc_id)
        if marker is not None:
            # Keep hiding what the leftover marker hides (a half-written version, or the old
            # one of a switch) until every chunk is gone.
            hidden = marker["version"]
            info = info or DocumentInfo(
                doc_id=doc_id, source=marker["source"] or doc_id, sha256="", kind="",
                pages=None, chunks=self._count(equals("doc_id", doc_id)),
                added_at=marker["added_at"], meta={"version": hidden})
        elif info is not None:
            hidden = info.meta["version"]
        else:
            raise DocumentNotFoundError(f"No document named '{doc_id}' in the knowledge base.")
        self._upsert_rows([self._marker_row(doc_id, hidden=hidden, phase="deleting",
                                             source=info.source)])
        self._finish_delete(doc_id)
        self._unfinished.discard(doc_id)
        return info

    def _finish_delete(self, doc_id: str) -> None:
        self._delete_documents(equals("doc_id", doc_id), "delete the document")
        self._delete_chunks(equals("doc_id", doc_id), "delete the document")
        self._drop_markers([doc_id])
