"""Tune hybrid fusion on a BEIR train split, then report the chosen setting on test.

python -m benchmarks.tune_fusion --db FILE [--beir DIR]

FILE is a Milvus Lite database built by `rag eval --beir DIR --db FILE` (train and test share the
corpus). Each query's dense and BM25 candidates are fetched once; every fusion setting is then
scored offline on the same candidates, so the grid costs no extra searches.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from benchmarks.common import SHARED
from rag.evaluation import BeirDataset, ndcg_at, recall_at
from rag.kb import KnowledgeBase
from rag.retrieval import rrf_fuse
from rag.schema import Hit
from rag.settings import Settings

RRF_K = (5, 10, 20, 40, 60, 100)
DENSE_WEIGHT = (0.5, 0.7, 1.0, 1.4, 2.0)  # BM25 weight fixed at 1


def candidates(kb: KnowledgeBase, dataset: BeirDataset, depth: int) -> dict[str, Any]:
    """Dense and BM25 hits of every judged query of the split."""
    retriever = kb.retriever
    return {qid: (retriever.search(text, depth, mode="dense"),
                  retriever.search(text, depth, mode="bm25"))
            for qid, text in dataset.queries().items()}


def _doc_ranking(hits: list[Hit]) -> list[str]:
    ranked: list[str] = []
    for hit in hits:
        if hit.doc_id not in ranked:
            ranked.append(hit.doc_id)
    return ranked


def score(cands: dict[str, Any], qrels: dict[str, dict[str, int]], rrf_k: int,
          dense_weight: float, depth: int) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 of one fusion setting."""
    ndcg, r100 = [], []
    for qid, (dense, sparse) in cands.items():
        fused = rrf_fuse([dense, sparse], (dense_weight, 1.0), k=rrf_k, limit=depth)
        ranked = _doc_ranking(fused)
        ndcg.append(ndcg_at(ranked, qrels[qid], 10))
        r100.append(recall_at(ranked, qrels[qid], 100))
    n = len(ndcg)
    return {"ndcg@10": round(sum(ndcg) / n, 4), "recall@100": round(sum(r100) / n, 4)}


def main() -> None:
    """Grid on train, the best setting and the default on test."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--beir", type=Path, default=SHARED / "beir" / "scifact")
    parser.add_argument("--depth", type=int, default=100)
    args = parser.parse_args()
    settings = Settings.from_env().with_(milvus_uri=str(args.db), milvus_collection="beir")
    out: dict[str, Any] = {}
    kb = KnowledgeBase(settings)
    train, test = BeirDataset(args.beir, "train"), BeirDataset(args.beir, "test")
    try:
        train_c, test_c = candidates(kb, train, args.depth), candidates(kb, test, args.depth)
    finally:
        kb.close()
    grid = {(k, w): score(train_c, train.qrels(), k, w, args.depth)
            for k, w in itertools.product(RRF_K, DENSE_WEIGHT)}
    best = max(grid, key=lambda kw: grid[kw]["ndcg@10"])
    out["train"] = {f"k={k} dense_weight={w}": r for (k, w), r in grid.items()}
    out["best_on_train"] = {"rrf_k": best[0], "dense_weight": best[1], **grid[best]}
    out["test"] = {
        "best_on_train": score(test_c, test.qrels(), *best, args.depth),
        "default (k=60, 1:1)": score(test_c, test.qrels(), 60, 1.0, args.depth),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
