"""The Milvus store: chunks with dense and BM25 vectors, and the documents they belong to.

Visibility is what keeps a document from ever showing half-stored or twice. Each document being
changed has one *marker* row naming the version that searches must skip. New chunks are written
while the marker hides them; one upsert of the marker then hides the old version instead (the
commit point); the document row, the old chunks and the marker are updated after. Whatever the
moment a process dies, searches see the old version or the new one, never both, and the next open
of the store rolls the change back (still writing) or forward (already switched). An ingest run
begins and switches the documents of one embedding batch together (one upsert for all their
markers), so many small files cost a few Milvus calls per batch, not per file.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np


def _import_pymilvus() -> None:
    """Import pymilvus without its import-time reading of MILVUS_URI.

    pymilvus parses MILVUS_URI when imported and rejects a Milvus Lite file path there, but that
    variable is ours (the URI of this app's store, a .db path by default); the store passes the
    URI to MilvusClient explicitly, so pymilvus never needs to see it.
    """
    saved = os.environ.pop("MILVUS_URI", None)
    try:
        import pymilvus  # noqa: F401
    finally:
        if saved is not None:
            os.environ["MILVUS_URI"] = saved


_import_pymilvus()

from pymilvus import DataType, Function, FunctionType, MilvusClient  # noqa: E402
from pymilvus.exceptions import MilvusException  # noqa: E402

from rag.errors import DocumentNotFoundError, ModelMismatchError, StoreError  # noqa: E402
from rag.schema import Chunk, DocumentInfo, Hit  # noqa: E402

META_ID = "__meta__"
PENDING = "pending"
ACTIVE = "active"
MAX_TEXT = 65_535
QUERY_WINDOW = 16_384  # Milvus caps offset + limit of one query here
CHUNK_FIELDS = ["doc_id", "source", "text", "heading", "page", "page_end", "position"]
DOC_FIELDS = [
    "doc_id", "state", "version", "sha256", "source", "kind", "pages", "chunks", "added_at", "meta",
]


@contextmanager
def _milvus(action: str) -> Iterator[None]:
    """Turn pymilvus exceptions into StoreError naming what we were doing."""
    try:
        yield
    except MilvusException as exc:
        raise StoreError(f"Milvus failed to {action}: {exc.message}") from exc


@contextmanager
def _quiet_lite_server() -> Iterator[None]:
    """Milvus Lite's in-process gRPC server logs a traceback for AllocTimestamp, which it does
    not implement and pymilvus only probes for while creating a collection; keep it off the
    user's terminal."""
    grpc_logger = logging.getLogger("grpc._server")
    level = grpc_logger.level
    grpc_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        grpc_logger.setLevel(level)


def _quote(value: str) -> str:
    return json.dumps(value)


def _in_list(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(_quote(v) for v in values)}]"


class MilvusStore:
    """Chunks and documents of one knowledge base in Milvus (Lite, server, or Zilliz Cloud)."""

    def __init__(self, uri: str, *, token: str = "", collection: str = "knowledge_base",
                 embedding_model: str, dimension: int, bm25_k1: float = 1.2,
                 bm25_b: float = 0.75, pending_grace_seconds: float | None = None) -> None:
        self.uri = uri
        self.embedding_model = embedding_model
        self.dimension = dimension
        self.chunks = f"{collection}_chunks"
        self.documents = f"{collection}_documents"
        self._bm25 = {"bm25_k1": bm25_k1, "bm25_b": bm25_b}
        self.is_lite = not uri.startswith(("http://", "https://", "tcp://", "unix:"))
        self._client = self._connect(uri, token)
        self._ensure_collections()
        self._check_model()
        # One process owns a Lite file, so anything pending there is a leftover; a server may be
        # shared with a live ingest elsewhere, so leave young pending versions alone.
        grace = pending_grace_seconds
        if grace is None:
            grace = 0.0 if self.is_lite else 3600.0
        self.remove_stale_pending(older_than=grace)

    # -- connection and schema -------------------------------------------------------------
    def _connect(self, uri: str, token: str) -> MilvusClient:
        if self.is_lite:
            from pathlib import Path

            Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        try:
            return MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
        except MilvusException as exc:
            if self.is_lite:
                raise StoreError(
                    f"Cannot open the Milvus Lite database {uri}: {exc.message}. A Milvus Lite "
                    "file can be used by one process at a time; stop the other process, or run "
                    "`milvus-lite server --host 127.0.0.1 --port 19530 --data-dir DIR` and set "
                    "MILVUS_URI=http://127.0.0.1:19530 for every process."
                ) from exc
            raise StoreError(
                f"Cannot reach Milvus at {uri}: {exc.message}. Check MILVUS_URI and MILVUS_TOKEN."
            ) from exc

    def _ensure_collections(self) -> None:
        with _milvus("create the collections"), _quiet_lite_server():
            if not self._client.has_collection(self.chunks):
                self._create_chunks()
            if not self._client.has_collection(self.documents):
                self._create_documents()
            self._client.load_collection(self.chunks)
            self._client.load_collection(self.documents)

    def _create_chunks(self) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
        schema.add_field("version", DataType.VARCHAR, max_length=64)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
        schema.add_field("lexical", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
                         analyzer_params={"type": "standard"})
        schema.add_field("heading", DataType.VARCHAR, max_length=2048)
        schema.add_field("page", DataType.INT64, nullable=True)
        schema.add_field("page_end", DataType.INT64, nullable=True)
        schema.add_field("position", DataType.INT64)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dimension)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["lexical"],
                                     output_field_names=["sparse"]))
        index = self._client.prepare_index_params()
        index.add_index("dense", index_type="AUTOINDEX", metric_type="COSINE")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params=dict(self._bm25))
        self._client.create_collection(self.chunks, schema=schema, index_params=index)

    def _create_documents(self) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=1100)
        schema.add_field("state", DataType.VARCHAR, max_length=16)
        schema.add_field("version", DataType.VARCHAR, max_length=64)
        schema.add_field("sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("pages", DataType.INT64, nullable=True)
        schema.add_field("chunks", DataType.INT64)
        schema.add_field("added_at", DataType.DOUBLE)
        schema.add_field("meta", DataType.JSON)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field
        index = self._client.prepare_index_params()
        index.add_index("unused", index_type="FLAT", metric_type="L2")
        self._client.create_collection(self.documents, schema=schema, index_params=index)
        meta = {"embedding_model": self.embedding_model, "dimension": self.dimension}
        self._upsert_rows([self._document_row(META_ID, state="meta", version="", sha256="",
                                              source="", kind="", pages=None, chunks=0,
                                              meta=meta)])

    def _check_model(self) -> None:
        rows = self._query(self.documents, f"doc_id == {_quote(META_ID)}", ["meta"])
        if not rows:
            raise StoreError(f"Collection {self.documents} has no metadata row; it was not "
                             "made by this app. Set MILVUS_COLLECTION to another name.")
        meta = rows[0]["meta"]
        if (meta.get("embedding_model"), meta.get("dimension")) != (
                self.embedding_model, self.dimension):
            raise ModelMismatchError(
                f"The knowledge base in {self.uri} was built with embedding model "
                f"'{meta.get('embedding_model')}' ({meta.get('dimension')} dimensions), but "
                f"EMBEDDING_MODEL is '{self.embedding_model}' ({self.dimension}). Set "
                "EMBEDDING_MODEL back, or use another MILVUS_COLLECTION and ingest again."
            )

    def close(self) -> None:
        """Release the connection (and for Milvus Lite the file lock)."""
        self._client.close()
        if self.is_lite:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)

    # -- low-level helpers -----------------------------------------------------------------
    def _query(self, collection: str, expr: str, fields: list[str],
               limit: int | None = None) -> list[dict[str, Any]]:
        with _milvus(f"read {collection}"):
            if limit is not None:
                return list(self._client.query(collection, filter=expr, output_fields=fields,
                                               limit=limit))
            rows = list(self._client.query(collection, filter=expr, output_fields=fields,
                                           limit=QUERY_WINDOW))
            if len(rows) < QUERY_WINDOW:
                return rows
            # More rows than one query window holds: page through them with an iterator.
            rows = []
            iterator = self._client.query_iterator(collection, filter=expr,
                                                   output_fields=fields, batch_size=1000)
            while batch := iterator.next():
                rows.extend(batch)
            iterator.close()
            return rows

    def _document_row(self, doc_id: str, *, state: str, version: str, sha256: str,
                      source: str, kind: str, pages: int | None, chunks: int,
                      meta: dict[str, Any], added_at: float | None = None) -> dict[str, Any]:
        return {"doc_id": doc_id, "state": state, "version": version, "sha256": sha256,
                "source": source, "kind": kind, "pages": pages, "chunks": chunks,
                "added_at": time.time() if added_at is None else added_at, "meta": meta,
                "unused": [0.0, 0.0]}

    def _upsert_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with _milvus("record the documents"):
                self._client.upsert(self.documents, rows)

    # -- writing ---------------------------------------------------------------------------
    def _marker_row(self, doc_id: str, *, hidden: str, phase: str, source: str,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The one marker row of a document being changed; its `version` is hidden from searches."""
        return self._document_row(f"{PENDING}:{doc_id}", state=PENDING, version=hidden,
                                  sha256="", source=source, kind="", pages=None, chunks=0,
                                  meta={"doc_id": doc_id, "phase": phase, **(extra or {})})

    def _drop_markers(self, doc_ids: Sequence[str]) -> None:
        if doc_ids:
            with _milvus("finish the document change"):
                self._client.delete(self.documents,
                                    filter=_in_list("doc_id", [f"{PENDING}:{d}" for d in doc_ids]))

    def begin_versions(self, versions: Sequence[tuple[str, str, str]]) -> None:
        """Hide new versions, as (doc id, version, source), before their first chunk is written."""
        if not versions:
            return
        self._upsert_rows([self._marker_row(doc_id, hidden=version, phase="writing", source=source)
                           for doc_id, version, source in versions])
        if not self.is_lite:
            # On a shared server a crashed ingest may have left chunks of the same version (its
            # marker is still young). A Lite file has one process, which cleared those on open.
            with _milvus("clear leftovers of an earlier attempt"):
                self._client.delete(self.chunks,
                                    filter=_in_list("version", [v for _, v, _ in versions]))

    def insert_chunks(self, chunks: Sequence[Chunk], vectors: np.ndarray,
                      lexical: Sequence[str], versions: Sequence[str]) -> None:
        """Write chunks of pending versions (one version per chunk)."""
        if not len(chunks) == len(vectors) == len(lexical) == len(versions):
            raise ValueError("chunks, vectors, lexical texts and versions must match in length")
        rows = [
            {
                "id": c.id, "doc_id": c.doc_id, "version": ver, "source": c.source,
                "text": c.text[:MAX_TEXT // 4], "lexical": lex[:MAX_TEXT // 4],
                "heading": c.heading_path[:2000], "page": c.page, "page_end": c.page_end,
                "position": c.position, "dense": vec.tolist(),
            }
            for c, vec, lex, ver in zip(chunks, vectors, lexical, versions, strict=True)
        ]
        with _milvus("store chunks"):
            self._client.insert(self.chunks, rows)

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
                             extra={"version": version, "info": info.to_dict()})
            for info, version, hidden in switches])
        self._finish_switch(switches)

    def _finish_switch(self, switches: Sequence[tuple[DocumentInfo, str, str]]) -> None:
        """Record the switched documents, drop their old chunks, then their markers."""
        self._upsert_rows([
            self._document_row(info.doc_id, state=ACTIVE, version=version, sha256=info.sha256,
                               source=info.source, kind=info.kind, pages=info.pages,
                               chunks=info.chunks, meta=info.meta, added_at=info.added_at)
            for info, version, _ in switches])
        replaced = [(info.doc_id, version) for info, version, hidden in switches if hidden]
        if replaced:
            with _milvus("remove the old versions"):
                self._client.delete(
                    self.chunks,
                    filter=f"{_in_list('doc_id', [d for d, _ in replaced])} and "
                           f"not ({_in_list('version', [v for _, v in replaced])})")
        self._drop_markers([info.doc_id for info, _, _ in switches])

    def abort_version(self, doc_id: str, version: str) -> None:
        """Forget a version being written, and every chunk written for it."""
        with _milvus("discard a failed ingest"):
            self._client.delete(self.chunks, filter=f"version == {_quote(version)}")
        self._drop_markers([doc_id])

    def remove_stale_pending(self, older_than: float) -> int:
        """Finish or undo document changes that a stopped process left half-done."""
        cutoff = time.time() - older_than
        rows = self._query(self.documents, f'state == "{PENDING}"',
                           ["version", "meta", "added_at"])
        switches = []
        for row in rows:
            meta = row["meta"]
            doc_id = meta["doc_id"]
            if meta["phase"] == "switching":
                switches.append((DocumentInfo(**meta["info"]), meta["version"], row["version"]))
            elif meta["phase"] == "deleting":
                self._finish_delete(doc_id)
            elif row["added_at"] <= cutoff:
                self.abort_version(doc_id, row["version"])
        if switches:
            self._finish_switch(switches)
        return len(rows)

    def delete_document(self, doc_id: str) -> DocumentInfo:
        """Delete a document and all its chunks."""
        info = self.get_document(doc_id)
        if info is None:
            raise DocumentNotFoundError(f"No document named '{doc_id}' in the knowledge base.")
        self._upsert_rows([self._marker_row(doc_id, hidden=info.meta["version"],
                                             phase="deleting", source=info.source)])
        self._finish_delete(doc_id)
        return info

    def _finish_delete(self, doc_id: str) -> None:
        with _milvus("delete the document"):
            self._client.delete(self.documents, filter=f"doc_id == {_quote(doc_id)}")
            self._client.delete(self.chunks, filter=f"doc_id == {_quote(doc_id)}")
        self._drop_markers([doc_id])

    def flush(self) -> None:
        """Seal written data so searches over it are fast."""
        with _milvus("flush"):
            self._client.flush(self.chunks)
            self._client.flush(self.documents)

    # -- reading ---------------------------------------------------------------------------
    def _to_info(self, row: dict[str, Any]) -> DocumentInfo:
        meta = dict(row.get("meta") or {})
        return DocumentInfo(doc_id=row["doc_id"], source=row["source"], sha256=row["sha256"],
                            kind=row["kind"], pages=row.get("pages"), chunks=row["chunks"],
                            added_at=row["added_at"], meta=meta | {"version": row["version"]})

    def get_document(self, doc_id: str) -> DocumentInfo | None:
        """The committed document of that id, if any."""
        return self.get_documents([doc_id]).get(doc_id)

    def get_documents(self, doc_ids: Sequence[str]) -> dict[str, DocumentInfo]:
        """The committed documents among these ids, by id."""
        rows = self._query(self.documents,
                           f'{_in_list("doc_id", doc_ids)} and state == "{ACTIVE}"', DOC_FIELDS)
        return {row["doc_id"]: self._to_info(row) for row in rows}

    def list_documents(self) -> list[DocumentInfo]:
        """Every committed document, by name."""
        rows = self._query(self.documents, f'state == "{ACTIVE}"', DOC_FIELDS)
        return sorted((self._to_info(r) for r in rows), key=lambda d: d.doc_id)

    def is_empty(self) -> bool:
        """True when no document is stored (a one-row lookup, unlike counting chunks)."""
        return not self._query(self.documents, f'state == "{ACTIVE}"', ["doc_id"], limit=1)

    def count_chunks(self, doc_id: str | None = None) -> int:
        """Visible chunks, of one document or of all."""
        expr = self._visibility_filter([doc_id] if doc_id else None) or 'id != ""'
        with _milvus("count chunks"):
            result = self._client.query(self.chunks, filter=expr, output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def _pending_versions(self) -> list[str]:
        rows = self._query(self.documents, f'state == "{PENDING}"', ["version"])
        return [r["version"] for r in rows if r["version"]]

    def _visibility_filter(self, doc_ids: Sequence[str] | None) -> str:
        parts = []
        pending = self._pending_versions()
        if pending:
            parts.append(f"not ({_in_list('version', pending)})")
        if doc_ids is not None:
            parts.append(_in_list("doc_id", list(doc_ids)) if doc_ids else 'doc_id == ""')
        return " and ".join(parts)

    def _rows_to_hits(self, results: Any, kind: str) -> list[Hit]:
        hits = []
        for rank, row in enumerate(results[0] if results else [], start=1):
            entity = row["entity"]
            distance = float(row["distance"])
            hit = Hit(chunk_id=row["id"], doc_id=entity["doc_id"], source=entity["source"],
                      text=entity["text"], position=entity["position"], page=entity.get("page"),
                      page_end=entity.get("page_end"), heading=entity["heading"], score=0.0,
                      rank=rank)
            if kind == "dense":
                hit.dense_score = hit.score = distance
            else:
                # Milvus returns BM25 relevance negated; report it the usual way round.
                hit.bm25_score = hit.score = abs(distance)
            hits.append(hit)
        return hits

    def search_dense(self, vector: np.ndarray, limit: int,
                     doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """Nearest chunks by cosine similarity."""
        with _milvus("search"):
            results = self._client.search(
                self.chunks, data=[vector.tolist()], anns_field="dense", limit=limit,
                filter=self._visibility_filter(doc_ids), output_fields=CHUNK_FIELDS,
                search_params={"metric_type": "COSINE"})
        return self._rows_to_hits(results, "dense")

    def search_bm25(self, analyzed_query: str, limit: int,
                    doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """Best chunks by BM25 over the analysed text."""
        if not analyzed_query.strip():
            return []
        with _milvus("search"):
            results = self._client.search(
                self.chunks, data=[analyzed_query], anns_field="sparse", limit=limit,
                filter=self._visibility_filter(doc_ids), output_fields=CHUNK_FIELDS,
                search_params={"metric_type": "BM25"})
        return self._rows_to_hits(results, "bm25")
