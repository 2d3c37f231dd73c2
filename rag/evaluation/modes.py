"""The retrieval modes an evaluation compares: each retriever alone, fused, fused and reranked."""

from __future__ import annotations

from rag.evaluation.qa import Search
from rag.retrieval import MODES, Retriever

RERANKED = "hybrid+rerank"


def eval_modes(retriever: Retriever) -> tuple[str, ...]:
    """Every mode, plus hybrid with reranking when the retriever has a reranker."""
    return (*MODES, RERANKED) if retriever.reranker is not None else MODES


def searcher(retriever: Retriever, mode: str) -> Search:
    """A (query, k) -> hits function for one evaluation mode; reranking only where asked."""
    base, _, extra = mode.partition("+")
    if base not in MODES or extra not in ("", "rerank"):
        raise ValueError(f"unknown evaluation mode {mode!r}")
    rerank = extra == "rerank"
    return lambda query, k: retriever.search(query, k, mode=base, rerank=rerank)
