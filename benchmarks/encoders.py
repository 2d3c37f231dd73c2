"""Encoder benchmark: torch vs ONNX fp32 vs ONNX int8 on the same chunks.

Throughput: the same SciFact chunk texts, one run of each encoder per round, rounds repeated;
medians, and speed-ups computed inside each round (so machine noise hits both sides alike).
Quality: SciFact test nDCG@10 through rag.evaluation, on a reduced corpus (every judged
document plus seeded random distractors) because a full SciFact ingest per encoder costs too
long on a small CPU; the full-corpus numbers of the default encoder are in benchmarks.scifact.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    RUNTIMES,
    log,
    make_embedder,
    median,
    open_store,
    percentile,
    scifact,
    scifact_chunk_texts,
)
from rag.evaluation import BeirDataset, evaluate, ingest_corpus
from rag.ingest import Ingestor
from rag.retrieval import Retriever
from rag.settings import Settings


@dataclass(frozen=True, slots=True)
class SubsetDataset(BeirDataset):
    """A BEIR split whose corpus is cut down to the listed documents."""

    keep: frozenset[str] = frozenset()

    def corpus(self) -> Iterator[tuple[str, str, str]]:
        """Only the kept documents."""
        # (zero-argument super() fails in a slots dataclass)
        return (row for row in BeirDataset.corpus(self) if row[0] in self.keep)


def subset(docs: int, seed: int = 0) -> SubsetDataset:
    """SciFact test with every judged document plus random others, `docs` in all."""
    full = scifact()
    judged = {d for rel in full.qrels().values() for d in rel}
    others = sorted({row[0] for row in full.corpus()} - judged)
    random.Random(seed).shuffle(others)
    keep = judged | set(others[:max(0, docs - len(judged))])
    return SubsetDataset(full.root, full.split, frozenset(keep))


def throughput(texts: list[str], runs: int) -> dict[str, Any]:
    """Seconds per run of each encoder on the same texts, medians and in-round speed-ups."""
    embedders = {rt: make_embedder(rt) for rt in RUNTIMES}
    vectors: dict[str, np.ndarray] = {}
    for embedder in embedders.values():
        embedder.embed(texts[:8])  # load (and export once) outside the timing
    tokens = sum(embedders["torch"].count_tokens(texts))
    seconds: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
    for round_ in range(runs):
        for rt, embedder in embedders.items():
            started = time.perf_counter()
            vectors[rt] = embedder.embed(texts)
            seconds[rt].append(time.perf_counter() - started)
        log(f"  encoders round {round_ + 1}/{runs}: "
            + ", ".join(f"{rt} {seconds[rt][-1]:.1f}s" for rt in RUNTIMES))
    query_ms: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
    queries = list(scifact().queries().values())[:50]
    for rt, embedder in embedders.items():
        embedder.embed_query(queries[0])
        for q in queries:
            started = time.perf_counter()
            embedder.embed_query(q)
            query_ms[rt].append((time.perf_counter() - started) * 1000)
    out: dict[str, Any] = {"chunks": len(texts), "tokens": tokens, "runs": runs}
    for rt in RUNTIMES:
        cos = (vectors[rt] * vectors["torch"]).sum(axis=1)
        speedups = [t / s for t, s in zip(seconds["torch"], seconds[rt], strict=True)]
        out[rt] = {"seconds": [round(s, 2) for s in seconds[rt]],
                   "median_s": round(median(seconds[rt]), 2),
                   "chunks_per_s": round(len(texts) / median(seconds[rt]), 1),
                   "tokens_per_s": round(tokens / median(seconds[rt])),
                   "speedup_vs_torch": round(median(speedups), 2),
                   "cosine_vs_torch_min": round(float(cos.min()), 4),
                   "cosine_vs_torch_median": round(float(np.median(cos)), 4),
                   "query_embed_ms_p50": round(percentile(query_ms[rt], 50), 1),
                   "query_embed_ms_p95": round(percentile(query_ms[rt], 95), 1)}
    return out


def quality(docs: int) -> dict[str, Any]:
    """nDCG@10 and recall of each encoder (dense, BM25, hybrid) on the reduced SciFact corpus."""
    dataset = subset(docs)
    settings = Settings()
    out: dict[str, Any] = {"docs": len(dataset.keep), "queries": len(dataset.queries())}
    for rt in RUNTIMES:
        embedder = make_embedder(rt)
        with tempfile.TemporaryDirectory(prefix="bench-enc-") as tmp:
            store = open_store(Path(tmp), embedder)
            ingestor = Ingestor(store, embedder, chunk_tokens=settings.chunk_tokens,
                                chunk_overlap=settings.chunk_overlap)
            started = time.perf_counter()
            results = ingest_corpus(ingestor, dataset)
            seconds = time.perf_counter() - started
            metrics = evaluate(Retriever(store, embedder), dataset)
            store.close()
        chunks = sum(r.chunks for r in results)
        out[rt] = {"ingest_s": round(seconds, 1), "chunks": chunks, **metrics}
        log(f"  {rt}: {chunks} chunks in {seconds:.0f}s; nDCG@10 dense "
            f"{metrics['dense']['ndcg@10']}, hybrid {metrics['hybrid']['ndcg@10']}")
    return out


def run(sample_chunks: int, runs: int, quality_docs: int) -> dict[str, Any]:
    """Throughput and quality of the three encoders."""
    texts = scifact_chunk_texts(make_embedder("onnx"), sample_chunks)
    log(f"encoders: throughput on {len(texts)} SciFact chunks, {runs} rounds")
    result = {"throughput": throughput(texts, runs)}
    if quality_docs:
        log(f"encoders: SciFact quality on {quality_docs} documents per encoder")
        result["quality"] = quality(quality_docs)
    return result
