"""Fusing the dense and BM25 rankings into one: reciprocal ranks, or a convex combination of
normalised scores, which keeps a strong dense hit on top when BM25 finds nothing like it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from enum import StrEnum

from rag.schema import Hit


class Fusion(StrEnum):
    """How hybrid search combines its two rankings."""

    RRF = "rrf"  # sum of weight / (k + rank)
    CONVEX = "convex"  # alpha * dense' + (1 - alpha) * bm25', scores normalised per query

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
                merged[hit.chunk_id] = have = Hit(**{**hit.to_dict(), "score": 0.0})
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


def normalised(scores: Sequence[float], floor: float | None = None) -> list[float]:
    """Scores mapped to [0, 1]: (s - low) / (best - low), low the floor or the list's minimum."""
    if not scores:
        return []
    best = max(scores)
    low = min(scores) if floor is None else min(floor, min(scores))
    if best - low <= 1e-12:
        return [1.0 for _ in scores]
    return [(s - low) / (best - low) for s in scores]


def convex_fuse(dense: Sequence[Hit], sparse: Sequence[Hit], alpha: float = 0.5,
                limit: int = 10, dense_floor: float | None = 0.0,
                bm25_share: float = 0.0) -> list[Hit]:
    """alpha * dense' + (1 - alpha) * bm25', each normalised over its own candidates.

    Cosine is normalised from `dense_floor` (0: unrelated text) to the best candidate, BM25 from
    zero to its best. A hit missing from one list gets 0 there. `bm25_share` damps a weak BM25
    list: when its best score is below bm25_share times its mean, the lexical side is noise
    (no query term is rare there), and it counts for less.
    """
    merged = _merged([dense, sparse])
    d_norm = normalised([h.dense_score or 0.0 for h in dense], dense_floor)
    b_norm = normalised([0.0, *[h.bm25_score or 0.0 for h in sparse]], 0.0)[1:]
    weight = (1 - alpha) * _lexical_confidence(sparse, bm25_share)
    for hit, value in zip(dense, d_norm, strict=True):
        merged[hit.chunk_id].score += alpha * value
    for hit, value in zip(sparse, b_norm, strict=True):
        merged[hit.chunk_id].score += weight * value
    return _ranked(list(merged.values()), limit)


def _lexical_confidence(sparse: Sequence[Hit], share: float) -> float:
    """1, or less when the best BM25 score barely stands out from the rest (share > 0 only)."""
    scores = [h.bm25_score or 0.0 for h in sparse]
    if share <= 0 or len(scores) < 3:
        return 1.0
    mean = statistics.fmean(scores)
    if mean <= 0:
        return 0.0
    return min(1.0, max(scores) / (share * mean))
