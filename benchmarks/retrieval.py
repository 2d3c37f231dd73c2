"""Retrieval quality and query-path speed, measured in one run on the code as it is.

python -m benchmarks.retrieval [--work DIR] [--out benchmarks/retrieval.json]

- The development question sets (benchmarks/qa/*.jsonl, corpora in benchmarks/qa_sets.py): each
  corpus ingested into its own fresh Milvus Lite file, then hit@1 / hit@5 / MRR@10 per mode with
  the strict evidence yardstick of `rag eval --qa`.
- BEIR SciFact test: nDCG@10 and Recall@10/100 per mode, as `rag eval --beir`.
- The query path at SciFact's size (about 12k chunks): p50 / p95 of the query embedding, of
  hybrid search without reranking (embedding, both searches, fusion), of reranking alone, and of
  the whole path, over the SciFact test queries, after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import SCIFACT, log, machine, percentile
from benchmarks.qa_sets import QA_SETS
from rag.evaluation import (
    BeirDataset,
    eval_modes,
    evaluate,
    ingest_corpus,
    load_questions,
    qa_report,
    run_mode,
    searcher,
)
from rag.kb import KnowledgeBase
from rag.retrieval import rerank_text
from rag.settings import Settings


def _kb(work: Path, name: str) -> KnowledgeBase:
    settings = Settings.from_env().with_(milvus_uri=str(work / f"{name}.db"),
                                         milvus_collection=name)
    return KnowledgeBase(settings)


def qa_set(work: Path, name: str) -> dict[str, Any]:
    """One development set: ingest its corpus, then every mode."""
    path, docs = QA_SETS[name]
    questions = load_questions(path)
    kb = _kb(work, name)
    try:
        started = time.perf_counter()
        results = kb.ingestor.ingest_paths(docs)
        ingest_s = time.perf_counter() - started
        runs = {mode: run_mode(searcher(kb.retriever, mode), questions, 50)
                for mode in eval_modes(kb.retriever)}
    finally:
        kb.close()
    report = qa_report(questions, runs, 50)
    for mode in report["modes"].values():
        mode["misses"] = {m["id"]: m["rank"] for m in mode["misses"]}
    report["documents"] = sum(r.status != "failed" for r in results)
    report["chunks"] = sum(r.chunks for r in results)
    report["ingest_seconds"] = round(ingest_s, 1)
    return report


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1)}


def _timed(func: Callable[[], Any]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def latency(kb: KnowledgeBase, queries: list[str], k: int = 5) -> dict[str, Any]:
    """p50/p95 of each part of the query path (each query once per part, interleaved)."""
    retriever, reranker = kb.retriever, kb.reranker
    parts: dict[str, list[float]] = {"embed_query": [], "hybrid": []}
    if reranker is not None:
        parts |= {"rerank": [], "hybrid_rerank": []}
    for query in queries[:10]:  # warm-up: model sessions, Milvus segments
        retriever.search(query, k, rerank=reranker is not None)
    for query in queries:
        parts["embed_query"].append(_timed(lambda q=query: kb.embedder.embed_query(q)))
        parts["hybrid"].append(_timed(lambda q=query: retriever.search(q, k, rerank=False)))
        if reranker is None:
            continue
        pool = retriever.search(query, retriever.rerank_candidates, rerank=False)
        texts = [rerank_text(h) for h in pool]
        parts["rerank"].append(_timed(lambda q=query, t=texts: reranker.score(q, t)))
        parts["hybrid_rerank"].append(_timed(lambda q=query: retriever.search(q, k,
                                                                            rerank=True)))
    return {"queries": len(queries), "k": k, "chunks": kb.store.count_chunks(),
            "rerank_candidates": retriever.rerank_candidates if reranker else None,
            **{name: _ms(values) for name, values in parts.items()}}


def scifact(work: Path) -> dict[str, Any]:
    """SciFact test quality per mode, then the query path's latency on the same store."""
    kb = _kb(work, "scifact")
    dataset = BeirDataset(SCIFACT, "test")
    try:
        started = time.perf_counter()
        ingest_corpus(kb.ingestor, dataset)
        ingest_s = time.perf_counter() - started
        log("scifact: quality")
        quality = evaluate(kb.retriever, dataset)
        log("scifact: latency")
        speed = latency(kb, list(dataset.queries().values()))
    finally:
        kb.close()
    return {"ingest_seconds": round(ingest_s, 1), "quality": quality, "latency": speed}


def render(results: dict[str, Any]) -> str:
    """The README's tables from one run's results."""
    lines = ["| questions | mode | hit@1 | hit@5 | MRR@10 |", "|---|---|---|---|---|"]
    for name in QA_SETS:
        if name not in results:
            continue
        report = results[name]
        for mode, r in report["modes"].items():
            lines.append(f"| {name} ({report['questions']}) | {mode} | {r['hit@1']:.3f} | "
                         f"{r['hit@5']:.3f} | {r['mrr@10']:.3f} |")
    if "scifact" in results:
        quality, speed = results["scifact"]["quality"], results["scifact"]["latency"]
        lines += ["", "| SciFact test | nDCG@10 | Recall@10 | Recall@100 |", "|---|---|---|---|"]
        lines += [f"| {mode} | {r['ndcg@10']:.4f} | {r['recall@10']:.4f} | {r['recall@100']:.4f} |"
                  for mode, r in quality.items()]
        parts = [p for p in ("embed_query", "hybrid", "rerank", "hybrid_rerank") if p in speed]
        lines += ["", f"| query path, {speed['chunks']:,} chunks, {speed['queries']} queries | "
                  "p50 | p95 |", "|---|---|---|"]
        lines += [f"| {p} | {speed[p]['p50_ms']} ms | {speed[p]['p95_ms']} ms |" for p in parts]
    return "\n".join(lines)


def main() -> None:
    """Run everything once; write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the databases (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/retrieval.json"))
    parser.add_argument("--sets", default=",".join(QA_SETS))
    parser.add_argument("--no-scifact", action="store_true")
    parser.add_argument("--render", type=Path, default=None,
                        help="print the README tables of an earlier run's JSON and stop")
    args = parser.parse_args()
    if args.render is not None:
        print(render(json.loads(args.render.read_text())))
        return
    settings = Settings.from_env()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "command": "python -m benchmarks.retrieval",
        "settings": {"embedding_model": settings.embedding_model,
                     "embedding_runtime": settings.embedding_runtime,
                     "reranker": settings.reranker or "none",
                     "rerank_candidates": settings.rerank_candidates,
                     "fusion": settings.fusion, "fusion_alpha": settings.fusion_alpha,
                     "fusion_sentences": settings.fusion_sentences,
                     "retrieval_mode": settings.retrieval_mode},
    }
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.sets.split(","):
            log(f"development set: {name}")
            results[name] = qa_set(work, name)
        if not args.no_scifact:
            log("scifact")
            results["scifact"] = scifact(work)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {args.out}")
    print(render(results))


if __name__ == "__main__":
    main()
