"""Retrieval: dense, BM25, or both fused with reciprocal-rank fusion."""

from __future__ import annotations

from collections.abc import Sequence

from rag.embedding import Embedder
from rag.lexical import analyze
from rag.schema import Hit
from rag.store import MilvusStore

MODES = ("hybrid", "dense", "bm25")


def rrf_fuse(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int = 60,
             limit: int = 10) -> list[Hit]:
    """Reciprocal-rank fusion: score = sum of weight / (k + rank); keeps each retriever's score."""
    fused: dict[str, Hit] = {}
    for hits, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(hits, start=1):
            merged = fused.get(hit.chunk_id)
            if merged is None:
                merged = fused[hit.chunk_id] = Hit(**{**hit.to_dict(), "score": 0.0})
            merged.dense_score = merged.dense_score if hit.dense_score is None else hit.dense_score
            merged.bm25_score = merged.bm25_score if hit.bm25_score is None else hit.bm25_score
            merged.score += weight / (k + rank)
    ranked = sorted(fused.values(), key=lambda h: h.score, reverse=True)[:limit]
    for rank, hit in enumerate(ranked, start=1):
        hit.rank = rank
    return ranked


class Retriever:
    """Finds the chunks that answer a query."""

    def __init__(self, store: MilvusStore, embedder: Embedder, *, mode: str = "hybrid",
                 rrf_k: int = 60, dense_weight: float = 1.0, bm25_weight: float = 1.0,
                 candidates: int = 50) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.rrf_k = rrf_k
        self.weights = (dense_weight, bm25_weight)
        self.candidates = candidates

    def search(self, query: str, k: int = 5, *, mode: str | None = None,
               doc_ids: Sequence[str] | None = None) -> list[Hit]:
        """The top-k chunks for the query; doc_ids limits the search to those documents."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if not query.strip():
            return []
        depth = max(k, self.candidates)
        if mode == "dense":
            return self.store.search_dense(self.embedder.embed_query(query), k, doc_ids)
        if mode == "bm25":
            return self.store.search_bm25(analyze(query), k, doc_ids)
        dense = self.store.search_dense(self.embedder.embed_query(query), depth, doc_ids)
        sparse = self.store.search_bm25(analyze(query), depth, doc_ids)
        return rrf_fuse([dense, sparse], self.weights, k=self.rrf_k, limit=k)
