"""Tune hybrid fusion on SciFact train and the development question sets; report SciFact test.

python -m benchmarks.tune_fusion --work DIR [--out FILE]

DIR keeps one Milvus Lite database per corpus (built on first use, reused after) and the
candidates cache. Each query's dense and BM25 candidates are fetched once; every fusion setting
is then scored offline on the same candidates. Settings are chosen on SciFact *train* and the
development sets only; SciFact test is reported for the chosen setting and the old default.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import SCIFACT, log
from benchmarks.qa_sets import QA_SETS
from rag.evaluation import BeirDataset, ingest_corpus, load_questions, ndcg_at
from rag.evaluation.beir import best_chunk_order
from rag.evaluation.qa import first_match
from rag.fusion import convex_fuse, rrf_fuse
from rag.kb import KnowledgeBase
from rag.schema import Hit
from rag.settings import Settings

DEPTH = 100
Pair = tuple[list[Hit], list[Hit]]
Fuse = Callable[[list[Hit], list[Hit]], list[Hit]]


def _kb(work: Path, name: str) -> KnowledgeBase:
    settings = Settings.from_env().with_(milvus_uri=str(work / f"{name}.db"),
                                         milvus_collection=name)
    return KnowledgeBase(settings)


def _pairs(kb: KnowledgeBase, queries: list[str]) -> list[Pair]:
    r = kb.retriever
    return [(r.search(q, DEPTH, mode="dense", rerank=False),
             r.search(q, DEPTH, mode="bm25", rerank=False)) for q in queries]


def qa_candidates(work: Path, name: str) -> dict[str, Any]:
    """Questions of one development set and their candidates, ingesting its corpus if needed."""
    path, docs = QA_SETS[name]
    questions = load_questions(path)
    kb = _kb(work, name)
    try:
        kb.ingestor.ingest_paths(docs)
        return {"questions": questions, "pairs": _pairs(kb, [q.question for q in questions])}
    finally:
        kb.close()


def scifact_candidates(work: Path) -> dict[str, Any]:
    """SciFact train and test queries with their candidates."""
    kb = _kb(work, "scifact")
    out: dict[str, Any] = {}
    try:
        ingest_corpus(kb.ingestor, BeirDataset(SCIFACT, "test"))
        for split in ("train", "test"):
            data = BeirDataset(SCIFACT, split)
            ids, texts = zip(*data.queries().items(), strict=True)
            out[split] = {"qrels": [data.qrels()[i] for i in ids],
                          "pairs": _pairs(kb, list(texts))}
    finally:
        kb.close()
    return out


def candidates(work: Path) -> dict[str, Any]:
    """Everything the grid needs, from the cache in work when there is one."""
    cache = work / "candidates.pickle"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    data: dict[str, Any] = {}
    for name in QA_SETS:
        log(f"candidates: {name}")
        data[name] = qa_candidates(work, name)
    log("candidates: scifact")
    data["scifact"] = scifact_candidates(work)
    cache.write_bytes(pickle.dumps(data))
    return data


def settings_grid() -> dict[str, Fuse]:
    """Every fusion setting tried, by name."""
    grid: dict[str, Fuse] = {}
    for k, w in itertools.product((5, 10, 20, 40, 60, 100), (0.5, 0.7, 1.0, 1.4, 2.0)):
        grid[f"rrf k={k} dense={w}"] = (
            lambda d, s, k=k, w=w: rrf_fuse([d, s], (w, 1.0), k=k, limit=DEPTH))
    alphas = [round(0.2 + 0.05 * i, 2) for i in range(15)]
    for a, floor, share in itertools.product(alphas, (0.0, None), (0.0, 2.0, 4.0)):
        grid[f"convex alpha={a} floor={floor} share={share}"] = (
            lambda d, s, a=a, f=floor, sh=share: convex_fuse(
                d, s, alpha=a, limit=DEPTH, dense_floor=f, bm25_share=sh))
    return grid


def score_qa(data: dict[str, Any], fuse: Fuse) -> dict[str, float]:
    """hit@1, hit@5 and MRR@10 over one development set."""
    ranks = [first_match(q, fuse(*pair)[:10])
             for q, pair in zip(data["questions"], data["pairs"], strict=True)]
    n = len(ranks)
    return {"hit@1": sum(r == 1 for r in ranks) / n,
            "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n}


def score_beir(data: dict[str, Any], fuse: Fuse) -> float:
    """Mean nDCG@10."""
    values = [ndcg_at(best_chunk_order(fuse(*pair)), qrels, 10)
              for qrels, pair in zip(data["qrels"], data["pairs"], strict=True)]
    return sum(values) / len(values)


def main() -> None:
    """Score the grid; choose on train + development; report test."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/fusion_tuning.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = candidates(args.work)
    rows = {}
    for name, fuse in settings_grid().items():
        row = {"scifact_train": score_beir(data["scifact"]["train"], fuse)}
        for qa in QA_SETS:
            row |= {f"{qa} {m}": v for m, v in score_qa(data[qa], fuse).items()}
        dev = [row[f"{qa} mrr@10"] for qa in QA_SETS]
        row["objective"] = (row["scifact_train"] + sum(dev) / len(dev)) / 2
        rows[name] = {k: round(v, 4) for k, v in row.items()}
    best = max(rows, key=lambda n: rows[n]["objective"])
    default = "rrf k=60 dense=1.0"
    grid = settings_grid()
    test = {n: round(score_beir(data["scifact"]["test"], grid[n]), 4) for n in (best, default)}
    top = sorted(rows, key=lambda n: rows[n]["objective"], reverse=True)[:15]
    report = {"best": best, "best_row": rows[best], "default_row": rows[default],
              "scifact_test": test, "top": {n: rows[n] for n in top}, "all": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("best", "best_row", "default_row",
                                              "scifact_test", "top")}, indent=1))


if __name__ == "__main__":
    main()
