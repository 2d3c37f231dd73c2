"""Sentence vectors: spans, pooling from the chunk's own encoding, storage, and their score in
hybrid fusion, on the real encoder (both runtimes) and a real Milvus Lite store."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest

from rag.embedding import LocalEmbedder
from rag.fusion import convex_fuse
from rag.ingest import Ingestor
from rag.retrieval import Retriever
from rag.schema import Hit
from rag.sentences import (
    MAX_PACKED,
    MAX_SENTENCES,
    best_sentence,
    pack,
    pool,
    sentence_spans,
    unpack,
)
from rag.store import MilvusStore

TEXT = ("Milvus keeps vectors in collections. A collection is split into segments that seal "
        "when they grow large.\nHNSW builds a graph of neighbours for every vector field.\n"
        "Yes.")


def test_spans_follow_sentences_and_lines_and_short_ones_join_the_next():
    spans = sentence_spans(TEXT)
    pieces = [TEXT[a:b] for a, b in spans]
    # "Milvus keeps vectors in collections." has 5 words: it joins the sentence after it;
    # the trailing "Yes." joins the last span.
    assert pieces == [
        "Milvus keeps vectors in collections. A collection is split into segments that seal "
        "when they grow large.",
        "HNSW builds a graph of neighbours for every vector field.\nYes."]
    assert sentence_spans("") == [] and sentence_spans("  Two words  ") == [(2, 11)]


def test_many_spans_merge_pairwise_to_the_limit_and_always_fit_the_field():
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(150))
    spans = sentence_spans(text)
    assert len(spans) <= MAX_SENTENCES
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # in order, apart
    assert len(pack(np.ones((MAX_SENTENCES, 384), dtype=np.float32))) <= MAX_PACKED
    with pytest.raises(ValueError, match="do not fit"):
        pack(np.ones((MAX_SENTENCES * 2, 384), dtype=np.float32))


def test_pack_round_trips_within_float16_precision():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(7, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    back = unpack(pack(vectors), 384)
    assert back.shape == (7, 384) and back.dtype == np.float32
    assert np.abs(back - vectors).max() < 1e-3
    assert unpack(pack(np.zeros((0, 384))), 384).shape == (0, 384)


def test_pool_means_the_tokens_inside_each_span_and_skips_special_and_unreached_ones():
    tokens = np.array([[9.0, 9.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    offsets = [(0, 0), (6, 8), (9, 12), (13, 15), (0, 0)]  # CLS, three words, SEP
    # The chunk text starts 6 characters into the encoded text (after "Head:\n").
    out = pool(tokens, offsets, [(0, 6), (7, 9), (40, 50)], shift=6)
    assert out.shape == (2, 2)  # the third span lies past the truncated input: no vector
    assert out[0] == pytest.approx([1.0, 0.0])  # mean of (1,0) and (3,0), normalised
    assert out[1] == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_the_encoder_pools_sentences_from_one_pass_and_they_point_at_their_own_topic(
        runtime: str, embedder: LocalEmbedder, tmp_path: Path):
    local = LocalEmbedder(runtime=runtime) if runtime != embedder.runtime else embedder
    heading = "Index guide\n"
    text = ("The cafeteria serves soup and fresh bread every day at noon. "
            "Milvus builds an HNSW graph index on each vector field to speed up searches.")
    vectors, sentences = local.embed_sentences([heading + text], [sentence_spans(text)],
                                               [len(heading)])
    assert vectors == pytest.approx(local.embed([heading + text]), abs=1e-5)
    assert sentences[0].shape == (2, local.dimension)
    assert np.linalg.norm(sentences[0], axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    query = local.embed_query("how is the vector index built?")
    scores = sentences[0] @ query
    assert scores[1] > scores[0] + 0.1
    assert best_sentence(query, sentences[0]) == pytest.approx(float(scores[1]))
    # The best sentence is closer to the question than the whole chunk is.
    assert float(scores[1]) > float(vectors[0] @ query)


def test_stored_hits_carry_their_sentences_and_hybrid_scores_the_best_one(
        store: MilvusStore, ingestor: Ingestor, embedder: LocalEmbedder, tmp_path: Path):
    doc = tmp_path / "guide.md"
    doc.write_text("# Guide\n\n" + TEXT + "\n\n## Lunch\n\nThe cafeteria serves soup and bread "
                   "at noon every day of the working week for all staff.\n")
    [result] = ingestor.ingest_paths([doc])
    assert result.status == "added"
    hits = Retriever(store, embedder, sentences=0.4).search("how does HNSW index vectors?", 3)
    assert hits and all(h.sentence_score is not None for h in hits)
    first = hits[0]
    assert "HNSW" in first.text
    assert first.sentences.shape[1] == embedder.dimension
    assert len(first.sentences) == len(sentence_spans(first.text))
    assert first.sentence_score == pytest.approx(
        best_sentence(embedder.embed_query("how does HNSW index vectors?"), first.sentences))
    assert "sentences" not in first.to_dict() and "sentence_score" in first.to_dict()
    for mode in ("dense", "bm25"):  # the single-index modes rank as before
        assert all(h.sentence_score is None
                   for h in Retriever(store, embedder, sentences=0.4).search("HNSW", 3,
                                                                             mode=mode))


def _hits(kind: str, scores: dict[str, float], best: dict[str, float] | None = None
          ) -> list[Hit]:
    hits = []
    for rank, (cid, value) in enumerate(scores.items(), start=1):
        hit = Hit(chunk_id=cid, doc_id="d", source="d", text=cid, position=rank, page=None,
                  page_end=None, heading="", score=value, rank=rank)
        setattr(hit, f"{kind}_score", value)
        hit.sentence_score = (best or {}).get(cid)
        hits.append(hit)
    return hits


def test_convex_fusion_gives_the_best_sentence_its_share():
    best = {"a": 0.30, "b": 0.50, "c": 0.70}
    dense = _hits("dense", {"a": 0.8, "b": 0.6, "c": 0.5}, best)
    sparse = _hits("bm25", {"b": 10.0, "a": 6.0, "c": 2.0}, best)
    without = convex_fuse(dense, sparse, alpha=0.5, limit=3)
    fused = convex_fuse(dense, sparse, alpha=0.5, limit=3, sentences=0.6)
    by_id = {h.chunk_id: h.score for h in fused}
    # c: dense' 0, bm25' 0, best sentence' 1
    assert by_id["c"] == pytest.approx(0.6)
    # b: dense' (0.6-0.5)/0.3, bm25' 1, best' 0.5
    assert by_id["b"] == pytest.approx(0.4 * (0.5 * (1 / 3) + 0.5) + 0.6 * 0.5)
    assert [h.chunk_id for h in without][-1] == "c" and fused[0].chunk_id == "c"
    assert fused[0].sentence_score == 0.70
    # No sentence scores at all (a collection without them): the two-way fusion, unchanged.
    plain_d, plain_s = _hits("dense", {"a": 0.8, "b": 0.6}), _hits("bm25", {"b": 3.0, "a": 1.0})
    assert ([h.score for h in convex_fuse(plain_d, plain_s, alpha=0.5, sentences=0.6)]
            == [h.score for h in convex_fuse(plain_d, plain_s, alpha=0.5)])


def test_a_collection_without_the_sentences_field_warns_and_still_searches(
        tmp_path: Path, embedder: LocalEmbedder, caplog: pytest.LogCaptureFixture):
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    uri = str(tmp_path / "old.db")
    client = MilvusClient(uri)  # the chunks collection as made before sentence vectors
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    for name, length in (("id", 64), ("doc_id", 1024), ("version", 64), ("source", 1024),
                         ("text", 65535), ("heading", 2048)):
        schema.add_field(name, DataType.VARCHAR, max_length=length, is_primary=name == "id")
    schema.add_field("lexical", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                     analyzer_params={"type": "standard"})
    schema.add_field("page", DataType.INT64, nullable=True)
    schema.add_field("page_end", DataType.INT64, nullable=True)
    schema.add_field("position", DataType.INT64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=embedder.dimension)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["lexical"], output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index("dense", index_type="AUTOINDEX", metric_type="COSINE")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection("knowledge_base_chunks", schema=schema, index_params=index)
    client.close()

    with caplog.at_level(logging.WARNING, logger="rag.store"):
        store = MilvusStore(uri, embedding_model=embedder.name, dimension=embedder.dimension)
    try:
        assert not store.has_sentences
        assert "made before sentence vectors" in caplog.text
        doc = tmp_path / "guide.md"
        doc.write_text("# Guide\n\n" + TEXT + "\n")
        ingestor = Ingestor(store, embedder, chunk_tokens=200, chunk_overlap=40, batch_size=32)
        assert ingestor.ingest_paths([doc])[0].status == "added"
        hits = Retriever(store, embedder, sentences=0.4).search("HNSW graph", 2)
        assert hits and "HNSW" in hits[0].text and hits[0].sentence_score is None
    finally:
        store.close()
