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


def test_normalised_maps_to_unit_range_from_a_floor():
    assert normalised([2.0, 1.0, 0.0]) == [1.0, 0.5, 0.0]
    assert normalised([0.8, 0.4], floor=0.0) == [1.0, 0.5]
    assert normalised([0.5, 0.5]) == [1.0, 1.0]
    assert normalised([]) == []


def test_convex_combines_normalised_scores_and_a_missing_score_counts_zero():
    dense = _hits("dense", {"a": 0.8, "b": 0.4})
    sparse = _hits("bm25", {"b": 10.0, "c": 5.0})
    fused = convex_fuse(dense, sparse, alpha=0.7, limit=10)
    by_id = {h.chunk_id: h.score for h in fused}
    assert by_id["a"] == pytest.approx(0.7 * 1.0)
    assert by_id["b"] == pytest.approx(0.7 * 0.5 + 0.3 * 1.0)
    assert by_id["c"] == pytest.approx(0.3 * 0.5)


def test_convex_keeps_a_strong_dense_hit_when_bm25_matched_only_common_words():
    # The answer is dense rank 3 with a cosine close to the best; BM25 matched only common
    # words, so its list is other chunks with flat, low scores. RRF interleaves the two lists
    # and pushes the answer down; the damped convex combination keeps the dense order on top.
    dense = _hits("dense", {f"x{i}": 0.62 - 0.004 * i for i in range(20)})
    dense.insert(2, _hits("dense", {"answer": 0.615})[0])
    sparse = _hits("bm25", {f"b{i}": 3.0 - 0.01 * i for i in range(20)})
    rrf = [h.chunk_id for h in rrf_fuse([dense, sparse], (1.0, 1.0), k=60, limit=30)]
    damped = [h.chunk_id for h in convex_fuse(dense, sparse, alpha=0.5, limit=30,
                                              bm25_share=2.0)]
    assert rrf.index("answer") >= 4
    assert damped[:3] == ["x0", "x1", "answer"]


def test_a_bm25_list_that_stands_out_keeps_its_full_weight():
    dense = _hits("dense", {"a": 0.5, "b": 0.49})
    sparse = _hits("bm25", {"b": 20.0, "c": 2.0, "d": 1.5, "e": 1.0})
    plain = {h.chunk_id: h.score for h in convex_fuse(dense, sparse, alpha=0.5)}
    damped = {h.chunk_id: h.score for h in convex_fuse(dense, sparse, alpha=0.5,
                                                        bm25_share=2.0)}
    assert damped == pytest.approx(plain)
