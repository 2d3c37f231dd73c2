"""The read side: documents, counts, and dense / BM25 searches over the visible chunks.

A chunk is visible unless its version is hidden by a pending marker (see rag.store.versions).
`visibility_filter` works that out, one read of the markers; a caller running several searches
for one query (a hybrid search, a reranked one) works it out once and passes it to each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.schema import DocumentInfo, Hit
from rag.sentences import unpack
from rag.store.client import milvus
from rag.store.collections import Collections
from rag.store.filters import equals, in_list
from rag.store.schema import ACTIVE, CHUNK_FIELDS, DOC_FIELDS, PENDING, SENTENCES


def to_info(row: dict[str, Any]) -> DocumentInfo:
    """A document row as a DocumentInfo (its version in `meta`)."""
    meta = dict(row.get("meta") or {})
    return DocumentInfo(doc_id=row["doc_id"], source=row["source"], sha256=row["sha256"],
                        kind=row["kind"], pages=row.get("pages"), chunks=row["chunks"],
                        added_at=row["added_at"], meta=meta | {"version": row["version"]})


def _to_hit(r: dict[str, Any]) -> Hit:
    return Hit(chunk_id=r["id"], doc_id=r["doc_id"], source=r["source"], text=r["text"],
               position=r["position"], page=r.get("page"), page_end=r.get("page_end"),
               heading=r["heading"], score=0.0)


def rows_to_hits(results: Any, kind: str, dimension: int) -> list[Hit]:
    """The hits of one search's result rows; `kind` is "dense" or "bm25"."""
    hits = []
    for rank, row in enumerate(results[0] if results else [], start=1):
        entity = row["entity"]
        distance = float(row["distance"])
        hit = Hit(chunk_id=row["id"], doc_id=entity["doc_id"], source=entity["source"],
                  text=entity["text"], position=entity["position"], page=entity.get("page"),
                  page_end=entity.get("page_end"), heading=entity["heading"], score=0.0,
                  rank=rank)
        if SENTENCES in entity:
            hit.sentences = unpack(entity[SENTENCES], dimension)
        if kind == "dense":
            hit.dense_score = hit.score = distance
        else:
            # Milvus returns BM25 relevance negated; report it the usual way round.
            hit.bm25_score = hit.score = abs(distance)
        hits.append(hit)
    return hits


class StoreReader(Collections):
    """Reads documents and searches chunks, skipping hidden versions."""

    # -- documents -------------------------------------------------------------------------
    def get_document(self, doc_id: str) -> DocumentInfo | None:
        """The committed document of that id, if any."""
        return self.get_documents([doc_id]).get(doc_id)

    def get_documents(self, doc_ids: Sequence[str]) -> dict[str, DocumentInfo]:
        """The committed documents among these ids, by id."""
        if not doc_ids:
            return {}
        rows = self._query(self.documents,
                           f"{in_list('doc_id', doc_ids)} and {equals('state', ACTIVE)}",
                           DOC_FIELDS)
        return {row["doc_id"]: to_info(row) for row in rows}

    def list_documents(self) -> list[DocumentInfo]:
        """Every committed document, by name."""
        rows = self._query(self.documents, equals("state", ACTIVE), DOC_FIELDS)
        return sorted((to_info(r) for r in rows), key=lambda d: d.doc_id)

    def is_empty(self) -> bool:
        """True when no document is stored (a one-row lookup, unlike counting chunks)."""
        return not self._query(self.documents, equals("state", ACTIVE), ["doc_id"], limit=1)

    def count_chunks(self, doc_id: str | None = None) -> int:
        """Visible chunks, of one document or of all."""
        return self._count(self.visibility_filter([doc_id] if doc_id else None) or 'id != ""')

    def get_chunk(self, chunk_id: str) -> Hit | None:
        """One visible chunk by its id, as a hit without scores (a link to a cited passage);
        None when it is gone (its document was deleted or replaced)."""
        where = " and ".join(p for p in (self.visibility_filter(), equals("id", chunk_id)) if p)
        rows = self._query(self.chunks, where, ["id", *CHUNK_FIELDS], limit=1)
        return _to_hit(rows[0]) if rows else None

    def document_chunks(self, doc_id: str, positions: tuple[int, int] | None = None
                        ) -> list[Hit]:
        """The visible chunks of one document in document order, as hits without scores (what
        a viewer shows, and what tests read back); only those whose position is in the
        inclusive range `positions`, if given."""
        where = self.visibility_filter([doc_id])
        if positions is not None:
            where += f" and position >= {int(positions[0])} and position <= {int(positions[1])}"
        rows = self._query(self.chunks, where, ["id", *CHUNK_FIELDS])
        return sorted((_to_hit(r) for r in rows), key=lambda h: h.position)

    # -- visibility ------------------------------------------------------------------------
    def _pending_versions(self) -> list[str]:
        """Versions that searches must skip (cached on Lite, see PendingCache)."""
        if self._pending is None:
            return self._read_pending_versions()
        return self._pending.get(self._read_pending_versions)

    def _read_pending_versions(self) -> list[str]:
        rows = self._query(self.documents, equals("state", PENDING), ["version"])
        return [r["version"] for r in rows if r["version"]]

    def visibility_filter(self, doc_ids: Sequence[str] | None = None) -> str:
        """The filter of the visible chunks (of these documents, if given); "" for all chunks.

        Reads the pending markers (on Lite, from the cache): work it out once for the searches
        of one query and pass it to each as `where`.
        """
        parts = []
        pending = self._pending_versions()
        if pending:
            parts.append(f"not ({in_list('version', pending)})")
        if doc_ids is not None:
            parts.append(in_list("doc_id", list(doc_ids)) if doc_ids else 'doc_id == ""')
        return " and ".join(parts)

    def _where(self, doc_ids: Sequence[str] | None, where: str | None) -> str:
        if where is None:
            return self.visibility_filter(doc_ids)
        if doc_ids is not None:
            raise ValueError("pass doc_ids or a visibility filter (where), not both")
        return where

    # -- searches --------------------------------------------------------------------------
    def _fields(self, sentences: bool) -> list[str]:
        """The fields a search returns: with the packed sentence vectors only when asked for
        (and stored), since they are the largest field and only hybrid scoring reads them."""
        return [*CHUNK_FIELDS, SENTENCES] if sentences and self.has_sentences else CHUNK_FIELDS

    def search_dense(self, vector: np.ndarray, limit: int, doc_ids: Sequence[str] | None = None,
                     *, where: str | None = None, sentences: bool = False) -> list[Hit]:
        """Nearest chunks by cosine similarity, among the visible ones (of doc_ids, if given,
        or as `where`, a `visibility_filter`, says); with `sentences`, each hit carries its
        sentence vectors."""
        expr = self._where(doc_ids, where)
        with milvus("search"):
            results = self._client.search(
                self.chunks, data=[vector.tolist()], anns_field="dense", limit=limit,
                filter=expr, output_fields=self._fields(sentences),
                search_params={"metric_type": "COSINE"})
        return rows_to_hits(results, "dense", self.dimension)

    def search_bm25(self, analyzed_query: str, limit: int,
                    doc_ids: Sequence[str] | None = None, *, where: str | None = None,
                    sentences: bool = False) -> list[Hit]:
        """Best chunks by BM25 over the analysed text (visible ones and `sentences` as in
        search_dense)."""
        if not analyzed_query.strip():
            return []
        expr = self._where(doc_ids, where)
        with milvus("search"):
            results = self._client.search(
                self.chunks, data=[analyzed_query], anns_field="sparse", limit=limit,
                filter=expr, output_fields=self._fields(sentences),
                search_params={"metric_type": "BM25"})
        return rows_to_hits(results, "bm25", self.dimension)

    def search_both(self, vector: np.ndarray, analyzed_query: str, limit: int,
                    doc_ids: Sequence[str] | None = None, *, where: str | None = None,
                    sentences: bool = False) -> tuple[list[Hit], list[Hit]]:
        """The dense and the BM25 hits of one query, over the same visible chunks.

        The visibility filter is worked out once for both (or given as `where`), and the BM25
        search runs on the store's search thread while the dense one runs here.
        """
        expr = self._where(doc_ids, where)
        if not analyzed_query.strip():
            return self.search_dense(vector, limit, where=expr, sentences=sentences), []
        bm25 = self._pool.submit(self.search_bm25, analyzed_query, limit, where=expr,
                                 sentences=sentences)
        try:
            dense = self.search_dense(vector, limit, where=expr, sentences=sentences)
        finally:
            sparse = bm25.result()  # also when the dense search failed: never leave it running
        return dense, sparse
