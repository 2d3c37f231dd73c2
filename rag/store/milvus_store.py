"""MilvusStore: the knowledge base's chunks and documents, opened and recovered."""

from __future__ import annotations

from rag.store.versions import StoreWriter


class MilvusStore(StoreWriter):
    """Chunks and documents of one knowledge base in Milvus (Lite, server, or Zilliz Cloud).

    Opening checks the embedding model, then finishes or undoes what a stopped process left
    half-done (see rag.store.versions).
    """

    def __init__(self, uri: str, *, token: str = "", collection: str = "knowledge_base",
                 embedding_model: str, dimension: int, bm25_k1: float = 1.2,
                 bm25_b: float = 0.75, pending_grace_seconds: float | None = None) -> None:
        self._unfinished = set()
        super().__init__(uri, token=token, collection=collection,
                         embedding_model=embedding_model, dimension=dimension,
                         bm25={"bm25_k1": bm25_k1, "bm25_b": bm25_b})
        # One process owns a Lite file, so anything pending there is a leftover; a server may be
        # shared with a live ingest elsewhere, so leave young pending versions alone.
        grace = pending_grace_seconds
        if grace is None:
            grace = 0.0 if self.is_lite else 3600.0
        self.remove_stale_pending(older_than=grace)
