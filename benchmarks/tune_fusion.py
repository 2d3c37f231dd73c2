"""Tune hybrid fusion on SciFact train and the development question sets; report SciFact test.

python -m benchmarks.tune_fusion --work DIR [--out FILE]

DIR keeps one Milvus Lite database per corpus (built on first use, reused after) and the
candidates cache. Each query's dense and BM25 candidates are fetched once; every fusion setting
is then scored offline on the same candidates (plain floats; the formulas are rag.fusion's, and
the chosen setting is checked with rag.fusion itself). Settings are chosen on SciFact *train*
and the development sets only (objective: the mean of train nDCG@10 and the sets' mean
MRR@10); SciFact test is reported for the best few and for the old default, RRF k=60 1:1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import SCIFACT, log
from benchmarks.qa_sets import QA_SETS
from rag.evaluation import BeirDataset, ingest_corpus, load_questions, ndcg_at
from rag.evaluation.beir import best_chunk_order
from rag.fusion import convex_fuse, normalised
from rag.kb import KnowledgeBase
from rag.lexical import analyze
from rag.schema import Hit
from rag.sentences import best_sentence
from rag.settings import Settings

DEPTH = 100
Pair = tuple[list[Hit], list[Hit]]


def _kb(work: Path, name: str) -> KnowledgeBase:
    settings = Settings.from_env().with_(milvus_uri=str(work / f"{name}.db"),
                                         milvus_collection=name)
    return KnowledgeBase(settings)


def _pairs(kb: KnowledgeBase, queries: list[str]) -> list[Pair]:
    """Each query's dense and BM25 candidates, each hit with its best sentence's cosine."""
    store, where = kb.store, kb.store.visibility_filter()
    pairs = []
    for q in queries:
        vector = kb.embedder.embed_query(q)
        pair = store.search_both(vector, analyze(q), DEPTH, where=where, sentences=True)
        for hit in (*pair[0], *pair[1]):
            if hit.sentences is not None:
                hit.sentence_score = best_sentence(vector, hit.sentences)
            hit.sentences = None  # the scores are all the grid needs
        pairs.append(pair)
    return pairs


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


Scored = Sequence[tuple[str, float]]
Ranked = Callable[[Scored, Scored, dict[str, float]], list[str]]


def rrf_order(dense: Scored, sparse: Scored, k: int, w: float) -> list[str]:
    """Chunk ids by RRF (dense weight w, BM25 weight 1)."""
    score: dict[str, float] = {}
    for weight, hits in ((w, dense), (1.0, sparse)):
        for rank, (cid, _) in enumerate(hits, start=1):
            score[cid] = score.get(cid, 0.0) + weight / (k + rank)
    return sorted(score, key=score.__getitem__, reverse=True)


def convex_order(dense: Scored, sparse: Scored, sentence: dict[str, float], alpha: float,
                 share: float = 0.0) -> list[str]:
    """Chunk ids by the convex combination of min-max normalised scores (the best sentence's
    cosine taking `share`, normalised over the candidates that have one)."""
    score: dict[str, float] = {}
    scored = [c for c in dict.fromkeys(c for c, _ in (*dense, *sparse)) if c in sentence]
    share = share if scored else 0.0
    for weight, hits in (((1 - share) * alpha, dense), ((1 - share) * (1 - alpha), sparse)):
        for (cid, _), value in zip(hits, normalised([s for _, s in hits]), strict=True):
            score[cid] = score.get(cid, 0.0) + weight * value
    for cid, value in zip(scored, normalised([sentence[c] for c in scored]), strict=True):
        score[cid] += share * value
    return sorted(score, key=score.__getitem__, reverse=True)


def settings_grid() -> dict[str, Ranked]:
    """Every fusion setting tried, by name."""
    grid: dict[str, Ranked] = {}
    for k, w in itertools.product((5, 10, 20, 40, 60, 100), (0.5, 0.7, 1.0, 1.4, 2.0, 3.0)):
        grid[f"rrf k={k} dense={w}"] = lambda d, s, _, k=k, w=w: rrf_order(d, s, k, w)
    for alpha in (round(0.2 + 0.05 * i, 2) for i in range(15)):
        grid[f"convex alpha={alpha}"] = lambda d, s, t, a=alpha: convex_order(d, s, t, a)
    for alpha, share in itertools.product((0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
                                          (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)):
        grid[f"convex alpha={alpha} sentences={share}"] = (
            lambda d, s, t, a=alpha, x=share: convex_order(d, s, t, a, x))
    return grid


FUSED = 50  # candidates per retriever that the app fuses (Retriever.candidates)


def _plain(pair: Pair) -> tuple[Scored, Scored, dict[str, float]]:
    """The first FUSED hits of each list (exactly what a search of that depth returns), and
    their best sentences' cosines."""
    dense, sparse = pair[0][:FUSED], pair[1][:FUSED]
    sentence = {h.chunk_id: h.sentence_score for h in (*dense, *sparse)
                if h.sentence_score is not None}
    return ([(h.chunk_id, h.dense_score or 0.0) for h in dense],
            [(h.chunk_id, h.bm25_score or 0.0) for h in sparse], sentence)


def score_qa(data: dict[str, Any], order: Ranked) -> dict[str, float]:
    """hit@1, hit@5 and MRR@10 over one development set."""
    ranks = []
    for q, pair in zip(data["questions"], data["pairs"], strict=True):
        good = {h.chunk_id for h in pair[0] + pair[1] if q.matches(h)}
        top = order(*_plain(pair))[:10]
        ranks.append(next((i for i, c in enumerate(top, start=1) if c in good), None))
    n = len(ranks)
    return {"hit@1": sum(r == 1 for r in ranks) / n,
            "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n}


def score_beir(data: dict[str, Any], order: Ranked) -> float:
    """Mean nDCG@10, documents ranked by their best chunk."""
    values = []
    for qrels, pair in zip(data["qrels"], data["pairs"], strict=True):
        doc = {h.chunk_id: h.doc_id for h in pair[0] + pair[1]}
        ranked = list(dict.fromkeys(doc[c] for c in order(*_plain(pair))))
        values.append(ndcg_at(ranked, qrels, 10))
    return sum(values) / len(values)


def check_with_rag_fusion(data: dict[str, Any], alpha: float, share: float) -> float:
    """SciFact train nDCG@10 of the chosen convex setting through rag.fusion itself."""
    values = [ndcg_at(best_chunk_order(convex_fuse(d[:FUSED], s[:FUSED], alpha=alpha,
                                                   limit=DEPTH * 2, sentences=share)), qrels, 10)
              for qrels, (d, s) in zip(data["qrels"], data["pairs"], strict=True)]
    return sum(values) / len(values)


def main() -> None:
    """Score the grid; choose on train + development; report test."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/fusion_tuning.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = candidates(args.work)
    grid = settings_grid()
    rows = {}
    for name, order in grid.items():
        row = {"scifact_train": score_beir(data["scifact"]["train"], order)}
        for qa in QA_SETS:
            row |= {f"{qa} {m}": v for m, v in score_qa(data[qa], order).items()}
        dev = [row[f"{qa} mrr@10"] for qa in QA_SETS]
        row["objective"] = (row["scifact_train"] + sum(dev) / len(dev)) / 2
        rows[name] = {k: round(v, 4) for k, v in row.items()}
    top = sorted(rows, key=lambda n: rows[n]["objective"], reverse=True)
    default = "convex alpha=0.5"  # the default before sentence scores
    test = {n: round(score_beir(data["scifact"]["test"], grid[n]), 4)
            for n in dict.fromkeys([*top[:3], default])}
    report: dict[str, Any] = {"best": top[0], "scifact_test": test,
                              "top": {n: rows[n] for n in top[:10]},
                              "default": rows[default], "all": rows}
    if top[0].startswith("convex"):
        values = dict(part.split("=") for part in top[0].split()[1:])
        report["best_train_via_rag_fusion"] = round(check_with_rag_fusion(
            data["scifact"]["train"], float(values["alpha"]), float(values.get("sentences", 0))),
            4)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "all"}, indent=1))


if __name__ == "__main__":
    main()
