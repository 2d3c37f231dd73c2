"""Fusing the dense and BM25 rankings into one: reciprocal ranks, or a convex combination of
normalised scores (the default, tuned on SciFact train and the development question sets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum

from rag.schema import Hit


class Fusion(StrEnum):
    """How hybrid search combines its two rankings."""

    RRF = "rrf"  # sum of weight / (k + rank)
    CONVEX = "convex"  # alpha * cosine' + (1 - alpha) * bm25', scores min-max normalised

    @classmethod
    def from_str(cls, value: str) -> Fusion:
        """The fusion named by value; ValueError listing the choices otherwise."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(f.value for f in cls)
            raise ValueError(f"fusion must be one of {choices}, not {value!r}") from None


def _merged(rankings: Sequence[Sequence[Hit]]) -> dict[str, Hit]:
    """One copy of every hit, carrying each retriever's own score."""
    merged: dict[str, Hit] = {}
    for hits in rankings:
        for hit in hits:
            have = merged.get(hit.chunk_id)
            if have is None:
                merged[hit.chunk_id] = have = replace(hit, score=0.0)
            have.dense_score = have.dense_score if hit.dense_score is None else hit.dense_score
            have.bm25_score = have.bm25_score if hit.bm25_score is None else hit.bm25_score
    return merged


def _ranked(hits: list[Hit], limit: int) -> list[Hit]:
    ranked = sorted(hits, key=lambda h: h.score, reverse=True)[:limit]
    for rank, hit in enumerate(ranked, start=1):
        hit.rank = rank
    return ranked


def rrf_fuse(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int = 60,
             limit: int = 10) -> list[Hit]:
    """Reciprocal-rank fusion: score = sum of weight / (k + rank); keeps each retriever's score."""
    merged = _merged(rankings)
    for hits, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(hits, start=1):
            merged[hit.chunk_id].score += weight / (k + rank)
    return _ranked(list(merged.values()), limit)


def normalised(scores: Sequence[float]) -> list[float]:
    """Min-max normalisation of one list's scores to [0, 1]; all equal gives all 1."""
    if not scores:
        return []
    best, low = max(scores), min(scores)
    if best - low <= 1e-12:
        return [1.0 for _ in scores]
    return [(s - low) / (best - low) for s in scores]


def convex_fuse(dense: Sequence[Hit], sparse: Sequence[Hit], alpha: float = 0.5,
                limit: int = 10, sentences: float = 0.0) -> list[Hit]:
    """alpha * cosine' + (1 - alpha) * bm25', each min-max normalised over its own candidates.

    With a `sentences` share above 0 and hits that carry a `sentence_score` (the cosine of the
    chunk's closest sentence, rag.sentences), that score normalised over the candidates takes
    that share: sentences * best' + (1 - sentences) * (alpha * cosine' + (1 - alpha) * bm25').
    A hit missing from one list gets 0 there (it scored below that list's last candidate).
    Unlike RRF, the size of the gap between scores counts: a dense hit close to the best cosine
    stays near the top even when BM25's list holds other chunks.
    """
    merged = _merged([dense, sparse])
    scored = [h for h in merged.values() if h.sentence_score is not None]
    share = sentences if scored else 0.0
    for hits, weight, field in ((dense, (1 - share) * alpha, "dense_score"),
                                (sparse, (1 - share) * (1 - alpha), "bm25_score")):
        values = normalised([getattr(h, field) or 0.0 for h in hits])
        for hit, value in zip(hits, values, strict=True):
            merged[hit.chunk_id].score += weight * value
    if share:
        for hit, value in zip(scored, normalised([h.sentence_score or 0.0 for h in scored]),
                              strict=True):
            hit.score += share * value
    return _ranked(list(merged.values()), limit)
