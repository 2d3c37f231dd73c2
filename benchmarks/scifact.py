"""SciFact: retrieval quality (dense, BM25, hybrid, the seed tutorial's method) and query latency.

One full ingest of the SciFact corpus feeds everything here: the quality table, query latency
at its size, the time to the LLM server's first byte, then the same at 100k chunks after copies
of the stored chunks (same text, new ids, slightly perturbed vectors) are inserted through
MilvusStore.insert_chunks.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    Stopwatch,
    log,
    make_embedder,
    open_store,
    percentile,
    scifact,
)
from rag.evaluation import BeirDataset, evaluate, ingest_corpus, ndcg_at, recall_at
from rag.ingest import Ingestor
from rag.lexical import analyze
from rag.llm import LLMClient, LLMConfig
from rag.pipeline import AnswerPipeline
from rag.retrieval import Retriever
from rag.schema import Chunk
from rag.settings import Settings
from rag.store import MilvusStore
from tests.llm_server import FakeGptOss

SYNTHETIC_VERSION = "synthetic"


class ArrivalServer(FakeGptOss):
    """The loopback gpt-oss server, noting when each chat request has arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []
        self._arrival_lock = threading.Lock()

    def _next(self, body: dict[str, Any]) -> Any:
        with self._arrival_lock:
            self.arrivals.append(time.perf_counter())
        return super()._next(body)


def _ms(values: Sequence[float]) -> dict[str, float]:
    """p50 and p95 of seconds, in milliseconds."""
    return {"p50_ms": round(percentile(values, 50) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1)}


def query_latency(retriever: Retriever, queries: list[str], k: int) -> dict[str, Any]:
    """p50/p95 of each step of one hybrid search, and of the whole search."""
    store, embedder = retriever.store, retriever.embedder
    depth = max(k, retriever.candidates)
    steps: dict[str, list[float]] = {"embed_query": [], "search_dense": [], "search_bm25": [],
                                     "visibility_filter": [], "hybrid_total": [],
                                     "dense_bm25_parallel": []}
    retriever.search(queries[0], k)  # warm
    with ThreadPoolExecutor(max_workers=2) as pool:
        for query in queries:
            t0 = time.perf_counter()
            vector = embedder.embed_query(query)
            t1 = time.perf_counter()
            store.search_dense(vector, depth)
            t2 = time.perf_counter()
            store.search_bm25(analyze(query), depth)
            t3 = time.perf_counter()
            store.visibility_filter(None)  # the pending-versions query each search runs
            t4 = time.perf_counter()
            retriever.search(query, k)
            t5 = time.perf_counter()
            # What running the two searches side by side would take (a proposed change).
            dense = pool.submit(store.search_dense, vector, depth)
            sparse = pool.submit(store.search_bm25, analyze(query), depth)
            dense.result()
            sparse.result()
            t6 = time.perf_counter()
            for name, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4,
                                             t6 - t5), strict=True):
                steps[name].append(seconds)
    return {"queries": len(queries), "k": k, "candidates": depth,
            **{name: _ms(values) for name, values in steps.items()}}


def time_to_llm(retriever: Retriever, queries: list[str], k: int) -> dict[str, Any]:
    """From AnswerPipeline.ask() to the chat request arriving at a loopback server."""
    watch = Stopwatch()
    store = retriever.store
    timed_retriever = Retriever(store, retriever.embedder, mode=retriever.mode)
    timed_retriever.search = watch.wrap("search", retriever.search)  # type: ignore[method-assign]
    # the pipeline's empty-knowledge-base check
    store.is_empty = watch.wrap("empty_check", store.is_empty)  # type: ignore[method-assign]
    totals: list[float] = []
    searches: list[float] = []
    counts: list[float] = []
    with ArrivalServer() as server:
        llm = LLMClient(LLMConfig(base_url=server.base_url, api_key="bench", model="gpt-oss-20b"))
        pipeline = AnswerPipeline(timed_retriever, llm, top_k=k)
        for i, query in enumerate([queries[0], *queries]):
            before_search = watch.seconds["search"]
            before_count = watch.seconds["empty_check"]
            started = time.perf_counter()
            events = list(pipeline.ask(query))
            if not server.arrivals or events[-1].type != "done":
                raise RuntimeError(f"the pipeline did not reach the LLM server: {events[-1]}")
            if i == 0:  # warm-up
                server.arrivals.clear()
                continue
            totals.append(server.arrivals.pop() - started)
            searches.append(watch.seconds["search"] - before_search)
            counts.append(watch.seconds["empty_check"] - before_count)
    del store.is_empty  # back to the class method
    rest = [t - s - c for t, s, c in zip(totals, searches, counts, strict=True)]
    return {"queries": len(totals), "k": k, "to_first_byte": _ms(totals),
            "retriever_search": _ms(searches), "empty_check": _ms(counts),
            "prompt_and_http": _ms(rest)}


def grow(store: MilvusStore, recorded: list[tuple[Chunk, np.ndarray, str]], have: int,
         total: int, batch: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Insert perturbed copies of the recorded chunks until the store holds `total` chunks."""
    rng = np.random.default_rng(seed)
    need = total - have
    started = time.perf_counter()
    inserted = 0
    copy = 0
    while inserted < need:
        copy += 1
        for start in range(0, len(recorded), batch):
            rows = recorded[start:start + batch][:need - inserted]
            if not rows:
                break
            chunks = [replace(c, id=f"s{copy}-{c.id}", doc_id=f"synthetic-{copy}/{c.doc_id}")
                      for c, _, _ in rows]
            vectors = np.stack([v for _, v, _ in rows])
            vectors = vectors + rng.normal(0, 0.01, vectors.shape).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.insert_chunks(chunks, vectors, [lex for _, _, lex in rows],
                                [SYNTHETIC_VERSION] * len(rows))
            inserted += len(rows)
        log(f"  grown to {have + inserted} chunks")
    insert_s = time.perf_counter() - started
    flushed = time.perf_counter()
    store.flush()
    flush_s = time.perf_counter() - flushed
    return {"chunks": store.count_chunks(), "inserted": inserted,
            "insert_s": round(insert_s, 1), "rows_per_s": round(inserted / insert_s),
            "flush_s": round(flush_s, 1)}


def tutorial_method(runtime: str, dataset: BeirDataset, k: int = 100) -> dict[str, Any]:
    """The seed tutorial: split each document on "# ", embed whole pieces, dense top-k only."""
    embedder = make_embedder(runtime)
    pieces: list[str] = []
    owners: list[str] = []
    for doc_id, title, text in dataset.corpus():
        for piece in f"{title}\n{text}".split("# "):
            if piece.strip():
                pieces.append(piece)
                owners.append(doc_id)
    started = time.perf_counter()
    matrix = embedder.embed(pieces)
    embed_s = time.perf_counter() - started
    queries, qrels = dataset.queries(), dataset.qrels()
    ndcg, r10, r100 = [], [], []
    for qid, text in queries.items():
        scores = matrix @ embedder.embed_query(text)  # exact inner product, as Milvus FLAT/IP
        ranked: list[str] = []
        for index in np.argsort(-scores)[:k]:
            if owners[index] not in ranked:
                ranked.append(owners[index])
        ndcg.append(ndcg_at(ranked, qrels[qid], 10))
        r10.append(recall_at(ranked, qrels[qid], 10))
        r100.append(recall_at(ranked, qrels[qid], 100))
    return {"pieces": len(pieces), "embed_s": round(embed_s, 1),
            "ndcg@10": round(float(np.mean(ndcg)), 4), "recall@10": round(float(np.mean(r10)), 4),
            "recall@100": round(float(np.mean(r100)), 4), "queries": len(ndcg)}


def run(runtime: str, latency_queries: int, ttfb_queries: int, grow_to: int,
        tutorial: bool, dataset: BeirDataset | None = None) -> dict[str, Any]:
    """Full SciFact ingest, quality, latency at its size and at `grow_to` chunks, tutorial."""
    settings = Settings()
    dataset = dataset or scifact()
    embedder = make_embedder(runtime)
    embedder.embed(["warm-up"])
    queries = list(dataset.queries().values())
    out: dict[str, Any] = {"runtime": runtime}
    with tempfile.TemporaryDirectory(prefix="bench-scifact-") as tmp:
        store = open_store(Path(tmp), embedder, "scifact")
        recorded: list[tuple[Chunk, np.ndarray, str]] = []
        insert = store.insert_chunks

        def keep(chunks: Sequence[Chunk], vectors: np.ndarray, lexical: Sequence[str],
                 versions: Sequence[str]) -> None:
            insert(chunks, vectors, lexical, versions)
            recorded.extend(zip(chunks, vectors, lexical, strict=True))

        store.insert_chunks = keep  # type: ignore[method-assign]
        ingestor = Ingestor(store, embedder, chunk_tokens=settings.chunk_tokens,
                            chunk_overlap=settings.chunk_overlap)
        last = [0.0]

        def progress(p: Any) -> None:
            if p.stage == "done" and time.perf_counter() - last[0] > 30:
                last[0] = time.perf_counter()
                log(f"  scifact ingest: document {p.index}/{p.total}")

        log(f"scifact: ingesting the full corpus with {runtime}")
        started = time.perf_counter()
        results = ingest_corpus(ingestor, dataset, progress=progress)
        ingest_s = time.perf_counter() - started
        del store.insert_chunks
        chunks = sum(r.chunks for r in results)
        out["ingest"] = {"documents": len(results), "chunks": chunks,
                         "seconds": round(ingest_s, 1), "chunks_per_s": round(chunks / ingest_s, 1),
                         "failed": sum(r.status == "failed" for r in results)}
        log(f"scifact: {chunks} chunks in {ingest_s:.0f}s; evaluating dense, bm25, hybrid")
        retriever = Retriever(store, embedder, mode=settings.retrieval_mode)
        out["quality"] = evaluate(retriever, dataset)
        log(f"scifact: {out['quality']}")
        k = settings.top_k
        log(f"scifact: query latency at {chunks} chunks")
        out["latency_small"] = {"chunks": chunks,
                                **query_latency(retriever, queries[:latency_queries], k)}
        out["to_llm_small"] = time_to_llm(retriever, queries[:ttfb_queries], k)
        if grow_to > chunks:
            log(f"scifact: growing the store to {grow_to} chunks")
            out["grow"] = grow(store, recorded, chunks, grow_to)
            recorded.clear()
            log(f"scifact: query latency at {out['grow']['chunks']} chunks")
            out["latency_large"] = {"chunks": out["grow"]["chunks"],
                                    **query_latency(retriever, queries[:latency_queries], k)}
            out["to_llm_large"] = time_to_llm(retriever, queries[:ttfb_queries], k)
        store.close()
    if tutorial:
        log("scifact: the seed tutorial's method (whole pieces, dense only)")
        out["tutorial"] = tutorial_method(runtime, dataset)
    return out
