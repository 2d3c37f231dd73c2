"""Fusion of the dense and BM25 rankings: reciprocal ranks and the convex combination."""

from __future__ import annotations

import pytest

from rag.fusion import Fusion, convex_fuse, normalised, rrf_fuse
from rag.schema import Hit


def _hits(kind: str, scores: dict[str, float]) -> list[Hit]:
    hits = []
    for rank, (cid, value) in enumerate(scores.items(), start=1):
        hit = Hit(chunk_id=cid, doc_id="d", source="d.md", text=cid, position=0, page=None,
                  page_end=None, heading="", score=value, rank=rank)
        if kind == "dense":
            hit.dense_score = value
        else:
            hit.bm25_score = value
        hits.append(hit)
    return hits


def test_fusion_names_parse_and_bad_ones_list_the_choices():
    assert Fusion.from_str(" Convex ") is Fusion.CONVEX
    assert Fusion.from_str("rrf") is Fusion.RRF
    with pytest.raises(ValueError, match="rrf, convex"):
        Fusion.from_str("linear")


def test_rrf_sums_weighted_reciprocal_ranks_and_keeps_both_scores():
    dense = _hits("dense", {"a": 0.9, "b": 0.8, "c": 0.7})
    sparse = _hits("bm25", {"c": 12.0, "d": 9.0})
    fused = rrf_fuse([dense, sparse], (2.0, 1.0), k=10, limit=10)
    by_id = {h.chunk_id: h for h in fused}
    assert by_id["c"].score == pytest.approx(2 / 13 + 1 / 11)
    assert by_id["a"].score == pytest.approx(2 / 11)
    assert by_id["d"].score == pytest.approx(1 / 12)
    assert (by_id["c"].dense_score, by_id["c"].bm25_score) == (0.7, 12.0)
    assert [h.chunk_id for h in fused] == ["c", "a", "b", "d"]
    assert [h.rank for h in fused] == [1, 2, 3, 4]
    assert dense[0].score == 0.9  # the inputs are not changed


def test_normalised_is_min_max():
    assert normalised([2.0, 1.0, 0.0]) == [1.0, 0.5, 0.0]
    assert normalised([0.8, 0.6, 0.4]) == pytest.approx([1.0, 0.5, 0.0])
    assert normalised([0.5, 0.5]) == [1.0, 1.0]
    assert normalised([]) == []


def test_convex_combines_normalised_scores_and_a_missing_score_counts_zero():
    dense = _hits("dense", {"a": 0.8, "b": 0.6, "e": 0.4})
    sparse = _hits("bm25", {"b": 10.0, "c": 6.0, "d": 2.0})
    fused = convex_fuse(dense, sparse, alpha=0.7, limit=10)
    by_id = {h.chunk_id: h.score for h in fused}
    assert by_id["a"] == pytest.approx(0.7 * 1.0)
    assert by_id["b"] == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)
    assert by_id["c"] == pytest.approx(0.3 * 0.5)
    assert by_id["d"] == pytest.approx(0.0) and by_id["e"] == pytest.approx(0.0)
    assert [h.chunk_id for h in fused][:3] == ["a", "b", "c"]
    assert (fused[1].dense_score, fused[1].bm25_score) == (0.6, 10.0)


def test_convex_keeps_a_strong_dense_hit_that_rrf_interleaves_away():
    # The answer is dense rank 3 with a cosine close to the best; BM25 found other chunks.
    # RRF interleaves the two lists by rank and pushes the answer down; the convex combination
    # sees that its cosine is nearly the best and keeps it in the top 3.
    dense = _hits("dense", {f"x{i}": 0.62 - 0.004 * i for i in range(20)})
    dense.insert(2, _hits("dense", {"answer": 0.615})[0])
    sparse = _hits("bm25", {f"b{i}": 3.0 - 0.01 * i for i in range(20)})
    rrf = [h.chunk_id for h in rrf_fuse([dense, sparse], (1.0, 1.0), k=60, limit=30)]
    convex = [h.chunk_id for h in convex_fuse(dense, sparse, alpha=0.55, limit=30)]
    assert rrf.index("answer") >= 4
    assert convex[:3] == ["x0", "x1", "answer"]
