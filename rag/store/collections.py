"""The two collections of one knowledge base, opened, and the calls every part makes on them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from rag.store.client import connect, is_lite, milvus, query_all, quiet_lite_server, release
from rag.store.pending import lite_cache
from rag.store.schema import (
    SENTENCES,
    check_model,
    create_chunks,
    create_documents,
)

log = logging.getLogger(__name__)


class Collections:
    """The chunks and documents collections in Milvus (Lite, server, or Zilliz Cloud), checked
    to hold vectors of this embedding model."""

    def __init__(self, uri: str, *, token: str, collection: str, embedding_model: str,
                 dimension: int, bm25: dict[str, float]) -> None:
        self.uri = uri
        self.embedding_model = embedding_model
        self.dimension = dimension
        self.chunks = f"{collection}_chunks"
        self.documents = f"{collection}_documents"
        self.is_lite = is_lite(uri)
        # The pending versions are cached on Lite only: a server may be shared with another
        # process's ingest, so there they are read for every search. Another process may have
        # written the Lite file since it was last open here, so each open starts afresh.
        self._pending = lite_cache(uri, self.documents) if self.is_lite else None
        if self._pending is not None:
            self._pending.forget()
        self._client = connect(uri, token)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="milvus-search")
        with milvus("create the collections"), quiet_lite_server():
            if not self._client.has_collection(self.chunks):
                create_chunks(self._client, self.chunks, dimension, bm25)
            if not self._client.has_collection(self.documents):
                create_documents(self._client, self.documents, embedding_model, dimension)
            self._client.load_collection(self.chunks)
            self._client.load_collection(self.documents)
        check_model(self._client, uri, self.documents, embedding_model, dimension)
        self.has_sentences = self._has_field(self.chunks, SENTENCES)
        if not self.has_sentences:
            log.warning("The collection %s was made before sentence vectors were stored: hybrid "
                        "search ranks without sentence scores. Ingest into a new collection "
                        "(MILVUS_COLLECTION) to have them.", self.chunks)

    def _has_field(self, collection: str, name: str) -> bool:
        with milvus("describe the chunks collection"):
            description = self._client.describe_collection(collection)
        return any(f.get("name") == name for f in description.get("fields", []))

    def close(self) -> None:
        """Release the connection (and for Milvus Lite the file lock)."""
        self._pool.shutdown(wait=True)
        release(self._client, self.uri)

    def drop(self) -> None:
        """Delete both collections with everything in them (a knowledge base is deleted)."""
        with milvus("drop the collections"):
            for name in (self.chunks, self.documents):
                if self._client.has_collection(name):
                    self._client.drop_collection(name)
        if self._pending is not None:
            self._pending.forget()

    def flush(self) -> None:
        """Seal written data so searches over it are fast."""
        with milvus("flush"):
            self._client.flush(self.chunks)
            self._client.flush(self.documents)

    def _query(self, collection: str, expr: str, fields: list[str],
               limit: int | None = None) -> list[dict[str, Any]]:
        with milvus(f"read {collection}"):
            if limit is not None:
                return list(self._client.query(collection, filter=expr, output_fields=fields,
                                               limit=limit))
            key = "doc_id" if collection == self.documents else "id"
            return query_all(self._client, collection, expr, fields, key)

    def _count(self, expr: str) -> int:
        with milvus("count chunks"):
            result = self._client.query(self.chunks, filter=expr, output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def _delete_chunks(self, expr: str, action: str) -> None:
        with milvus(action):
            self._client.delete(self.chunks, filter=expr)

    def _upsert_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self._changing_documents(), milvus("record the documents"):
                self._client.upsert(self.documents, rows)

    def _delete_documents(self, expr: str, action: str) -> None:
        with self._changing_documents(), milvus(action):
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
