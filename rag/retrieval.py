"""Retrieval: dense, BM25, or both fused (rag.fusion); then an optional reranker."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rag.choices import Mode
from rag.embedding import Embedder
from rag.errors import ConfigError
from rag.fusion import Fusion, convex_fuse, rrf_fuse
from rag.lexical import analyze
from rag.rerank import Reranker, RerankError
from rag.schema import Hit
from rag.sentences import best_sentence
from rag.store import MilvusStore

MODES = tuple(Mode.values())  # kept for callers that list them; Mode is the definition


class Retriever:
    """Finds the chunks that answer a query, reranked when a reranker is set."""

    def __init__(self, store: MilvusStore, embedder: Embedder, *, mode: str = Mode.HYBRID,
                 fusion: Fusion = Fusion.CONVEX, rrf_k: int = 60, dense_weight: float = 1.0,
                 alpha: float = 0.5, sentences: float = 0.7, candidates: int = 50,
                 reranker: Reranker | None = None, rerank_candidates: int = 30) -> None:
        self.store = store
        self.embedder = embedder
        self.mode = Mode.from_str(mode)
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.alpha = alpha
        self.sentences = sentences
        self.candidates = candidates
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates

    def search(self, query: str, k: int = 5, *, mode: str | None = None,
               doc_ids: Sequence[str] | None = None, rerank: bool | None = None) -> list[Hit]:
        """The top-k chunks for the query; doc_ids limits the search to those documents.

        With reranking (`rerank=None` means: when a reranker is set), the top
        max(k, rerank_candidates) retrieved chunks are scored by the reranker and the best k
        returned in its order; `score`, `dense_score` and `bm25_score` stay as retrieved.
        """
        mode = Mode.from_str(mode) if mode else self.mode
        reranking = self.reranker is not None if rerank is None else rerank
        if reranking and self.reranker is None:
            raise ConfigError("Reranking was asked for, but no reranker is configured: set "
                              "RERANKER (and RERANKER_BACKEND).")
        if not query.strip():
            return []
        where = self.store.visibility_filter(doc_ids)  # one read of the pending markers
        if not reranking:
            return self._retrieve(query, k, mode, where)
        hits = self._retrieve(query, max(k, self.rerank_candidates), mode, where)
        return self._rerank(query, hits, k)

    def _retrieve(self, query: str, limit: int, mode: Mode, where: str) -> list[Hit]:
        """The hits among the chunks `where` (a store visibility filter) selects."""
        if mode == "dense":
            return self.store.search_dense(self.embedder.embed_query(query), limit, where=where)
        if mode == "bm25":
            return self.store.search_bm25(analyze(query), limit, where=where)
        depth = max(limit, self.candidates)
        vector = self.embedder.embed_query(query)
        scored = bool(self.sentences) and self.fusion is Fusion.CONVEX
        dense, sparse = self.store.search_both(vector, analyze(query), depth, where=where,
                                               sentences=scored)
        if scored:
            for hit in (*dense, *sparse):
                if hit.sentences is not None:
                    hit.sentence_score = best_sentence(vector, hit.sentences)
        return self.fuse(dense, sparse, limit)

    def fuse(self, dense: list[Hit], sparse: list[Hit], limit: int) -> list[Hit]:
        """The two rankings as one, by the configured fusion."""
        if self.fusion is Fusion.CONVEX:
            return convex_fuse(dense, sparse, alpha=self.alpha, limit=limit,
                               sentences=self.sentences)
        return rrf_fuse([dense, sparse], (self.dense_weight, 1.0), k=self.rrf_k, limit=limit)

    def _rerank(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        """The best k hits by the reranker's score; ties keep their retrieval order."""
        if not hits:
            return hits
        assert self.reranker is not None
        scores = self.reranker.score(query, [rerank_text(h) for h in hits])
        if len(scores) != len(hits) or not all(math.isfinite(s) for s in scores):
            raise RerankError(f"The reranker {self.reranker.name} returned {len(scores)} "
                              f"scores for {len(hits)} passages, or a score that is not a number.")
        for hit, value in zip(hits, scores, strict=True):
            hit.rerank_score = float(value)
        ranked = sorted(hits, key=lambda h: -(h.rerank_score or 0.0))[:k]
        for rank, hit in enumerate(ranked, start=1):
            hit.rank = rank
        return ranked


def rerank_text(hit: Hit) -> str:
    """What the reranker reads: the heading path, then the chunk text (as the encoder does)."""
    return f"{hit.heading}\n{hit.text}" if hit.heading else hit.text
