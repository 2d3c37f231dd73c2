"""The Milvus store: chunks with dense and BM25 vectors, and the documents they belong to.

Visibility is what keeps a document from ever showing half-stored or twice. Each document being
changed has one *marker* row naming the version that searches must skip. New chunks are written
while the marker hides them; one upsert of the marker then hides the old version instead (the
commit point); the document row, the old chunks and the marker are updated after. Whatever the
moment a process dies, searches see the old version or the new one, never both, and the next open
of the store rolls the change back (still writing) or forward (already switched). An ingest run
begins and switches the documents of one embedding batch together (one upsert for all their
markers), so many small files cost a few Milvus calls per batch, not per file.

Every value in a filter goes in through `_literal`, which escapes it for the expression grammar
(Milvus Lite implements no filter templates; see there). A change that cannot be finished or
undone when the store opens is logged and left hidden, so one bad row never locks the store.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
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

log = logging.getLogger(__name__)

META_ID = "__meta__"
PENDING = "pending"
ACTIVE = "active"
MAX_TEXT = 65_535
MAX_NAME_BYTES = 1000  # a document name; doc_id fields hold 1024 (chunks) and 1100 bytes
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


# Inside a double-quoted string Milvus (its Plan.g4 grammar) and Milvus Lite 3 both need a
# backslash, the quote, CR and LF escaped, and Lite knows only these escapes (no \uXXXX).
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _literal(value: str) -> str:
    """`value` as a filter string literal that reads back as exactly `value`.

    Filter templates (`filter_params`) would keep values out of the expression, but Milvus Lite
    3.2, embedded or as `milvus-lite server`, does not implement them (it rejects `{name}`) for
    query, search or delete alike. So values are escaped here instead, and only here: every
    other character, any Unicode one or a control character, stands for itself (json.dumps wrote
    \\uXXXX escapes, which Lite rejects, and that made a name like `résumé.md` unusable).
    """
    if not isinstance(value, str):
        raise TypeError(f"filter values are strings, not {type(value).__name__}")
    return '"' + value.translate(_ESCAPES) + '"'


def _in_list(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(_literal(v) for v in values)}]"


def _marker_doc_id(row: dict[str, Any]) -> str:
    """The document a marker row belongs to (from its key, should its meta be damaged)."""
    meta = row.get("meta") or {}
    doc_id = meta.get("doc_id") if isinstance(meta, dict) else None
    return doc_id if isinstance(doc_id, str) else row["doc_id"].removeprefix(f"{PENDING}:")


class _PendingCache:
    """The versions hidden by pending markers in one Lite collection, shared by every store on
    it in this process. One process owns a Lite file, so the list changes only through those
    stores, and each of their document writes forgets it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: list[str] | None = None
        self._generation = 0

    def get(self, read: Callable[[], list[str]]) -> list[str]:
        with self._lock:
            versions, generation = self._versions, self._generation
        if versions is None:
            versions = read()
            with self._lock:
                if generation == self._generation:  # no write began meanwhile
                    self._versions = versions
        return versions

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._versions = None


_LITE_CACHES: dict[tuple[str, str], _PendingCache] = {}
_LITE_CACHES_LOCK = threading.Lock()


def _lite_cache(uri: str, collection: str) -> _PendingCache:
    key = (str(Path(uri).expanduser().resolve()), collection)
    with _LITE_CACHES_LOCK:
        return _LITE_CACHES.setdefault(key, _PendingCache())


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
        # The pending versions are cached on Lite only: a server may be shared with another
        # process's ingest, so there they are read for every search. Another process may have
        # written the Lite file since it was last open here, so each open starts afresh.
        self._pending = _lite_cache(uri, self.documents) if self.is_lite else None
        if self._pending is not None:
            self._pending.forget()
        self._unfinished: set[str] = set()  # documents whose leftover change could not be undone
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="milvus-search")
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
        rows = self._query(self.documents, f"doc_id == {_literal(META_ID)}", ["meta"])
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
        self._pool.shutdown(wait=True)
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
            return self._query_all(collection, expr, fields)

    def _query_all(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        rows = list(self._client.query(collection, filter=expr, output_fields=fields,
                                       limit=QUERY_WINDOW))
        if len(rows) < QUERY_WINDOW:
            return rows
        # More rows than one query window holds: page through them in primary-key order (what
        # the `iterator` flag asks of Milvus and Lite). pymilvus's query_iterator does the same
        # but splices the last key into its next filter unescaped, which breaks on a document
        # name with a quote; here the key goes in as a literal.
        key = "doc_id" if collection == self.documents else "id"
        fields = fields if key in fields else [*fields, key]
        rows, page_expr = [], expr
        while True:
            page = list(self._client.query(collection, filter=page_expr, output_fields=fields,
                                           limit=QUERY_WINDOW, iterator="True"))
            rows.extend(page)
            if len(page) < QUERY_WINDOW:
                return rows
            page_expr = f"{key} > {_literal(page[-1][key])} and ({expr})"

    def _document_row(self, doc_id: str, *, state: str, version: str, sha256: str,
                      source: str, kind: str, pages: int | None, chunks: int,
                      meta: dict[str, Any], added_at: float | None = None) -> dict[str, Any]:
        return {"doc_id": doc_id, "state": state, "version": version, "sha256": sha256,
                "source": source, "kind": kind, "pages": pages, "chunks": chunks,
                "added_at": time.time() if added_at is None else added_at, "meta": meta,
                "unused": [0.0, 0.0]}

    def _upsert_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self._changing_documents(), _milvus("record the documents"):
                self._client.upsert(self.documents, rows)

    def _delete_documents(self, expr: str, action: str) -> None:
        with self._changing_documents(), _milvus(action):
            self._client.delete(self.documents, filter=expr)

    @contextmanager
    def _changing_documents(self) -> Iterator[None]:
        """Around every write of document rows: forget the cached pending versions after it,
        failed or not."""
        try:
            yield
        finally:
            if self._pending is not None:
                self._pending.forget()

    # -- writing ---------------------------------------------------------------------------
    def _marker_row(self, doc_id: str, *, hidden: str, phase: str, source: str,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The one marker row of a document being changed; its `version` is hidden from searches."""
        return self._document_row(f"{PENDING}:{doc_id}", state=PENDING, version=hidden,
                                  sha256="", source=source, kind="", pages=None, chunks=0,
                                  meta={"doc_id": doc_id, "phase": phase, **(extra or {})})

    def _drop_markers(self, doc_ids: Sequence[str]) -> None:
        if doc_ids:
            self._delete_documents(_in_list("doc_id", [f"{PENDING}:{d}" for d in doc_ids]),
                                   "finish the document change")

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
            self._client.delete(self.chunks, filter=f"version == {_literal(version)}")
        self._drop_markers([doc_id])

    def remove_stale_pending(self, older_than: float) -> int:
        """Finish or undo document changes that a stopped process left half-done.

        One change that cannot be finished or undone does not stop the others, nor the store:
        it is logged, its marker keeps hiding its version, and `delete_document` (or the next
        ingest of that document) clears it. Returns how many changes were pending.
        """
        cutoff = time.time() - older_than
        rows = self._query(self.documents, f"state == {_literal(PENDING)}",
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

    def _marker(self, doc_id: str) -> dict[str, Any] | None:
        rows = self._query(self.documents, f"doc_id == {_literal(f'{PENDING}:{doc_id}')}",
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
                pages=None, chunks=self._count(f"doc_id == {_literal(doc_id)}"),
                added_at=marker["added_at"],
                meta={"version": hidden})
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
        self._delete_documents(f"doc_id == {_literal(doc_id)}", "delete the document")
        with _milvus("delete the document"):
            self._client.delete(self.chunks, filter=f"doc_id == {_literal(doc_id)}")
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
        if not doc_ids:
            return {}
        rows = self._query(self.documents,
                           f"{_in_list('doc_id', doc_ids)} and state == {_literal(ACTIVE)}",
                           DOC_FIELDS)
        return {row["doc_id"]: self._to_info(row) for row in rows}

    def list_documents(self) -> list[DocumentInfo]:
        """Every committed document, by name."""
        rows = self._query(self.documents, f"state == {_literal(ACTIVE)}", DOC_FIELDS)
        return sorted((self._to_info(r) for r in rows), key=lambda d: d.doc_id)

    def is_empty(self) -> bool:
        """True when no document is stored (a one-row lookup, unlike counting chunks)."""
        return not self._query(self.documents, f"state == {_literal(ACTIVE)}", ["doc_id"],
                               limit=1)

    def count_chunks(self, doc_id: str | None = None) -> int:
        """Visible chunks, of one document or of all."""
        return self._count(self._visibility_filter([doc_id] if doc_id else None) or 'id != ""')

    def _count(self, expr: str) -> int:
        with _milvus("count chunks"):
            result = self._client.query(self.chunks, filter=expr, output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def _pending_versions(self) -> list[str]:
        """Versions that searches must skip (cached on Lite, see _PendingCache)."""
        if self._pending is None:
            return self._read_pending_versions()
        return self._pending.get(self._read_pending_versions)

    def _read_pending_versions(self) -> list[str]:
        rows = self._query(self.documents, f"state == {_literal(PENDING)}", ["version"])
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

    def _search_dense(self, vector: np.ndarray, limit: int, expr: str) -> list[Hit]:
        with _milvus("search"):
            results = self._client.search(
                self.chunks, data=[vector.tolist()], anns_field="dense", limit=limit,
                filter=expr, output_fields=CHUNK_FIELDS, search_params={"metric_type": "COSINE"})
        return self._rows_to_hits(results, "dense")

    def _search_bm25(self, analyzed_query: str, limit: int, expr: str) -> list[Hit]:
        if not analyzed_query.strip():
            return []
        with _milvus("search"):
            results = self._client.search(
                self.chunks, data=[analyzed_query], anns_field="sparse", limit=limit,
                filter=expr, output_fields=CHUNK_FIELDS, search_params={"metric_type": "BM25"})
        return self._rows_to_hits(results, "bm25")

    def search_dense(self, vector: np.ndarray, limit: int,
                     doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """Nearest chunks by cosine similarity."""
        return self._search_dense(vector, limit, self._visibility_filter(doc_ids))

    def search_bm25(self, analyzed_query: str, limit: int,
                    doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """Best chunks by BM25 over the analysed text."""
        if not analyzed_query.strip():
            return []
        return self._search_bm25(analyzed_query, limit, self._visibility_filter(doc_ids))

    def search_both(self, vector: np.ndarray, analyzed_query: str, limit: int,
                    doc_ids: Sequence[str] | None = None) -> tuple[list[Hit], list[Hit]]:
        """The dense and the BM25 hits of one query, over the same visible chunks.

        The visibility filter is built once for both, and the BM25 search runs on the store's
        search thread while the dense one runs here.
        """
        expr = self._visibility_filter(doc_ids)
        if not analyzed_query.strip():
            return self._search_dense(vector, limit, expr), []
        bm25 = self._pool.submit(self._search_bm25, analyzed_query, limit, expr)
        try:
            dense = self._search_dense(vector, limit, expr)
        finally:
            sparse = bm25.result()  # also when the dense search failed: never leave it running
        return dense, sparse
