"""Calibrate the claim check's threshold on real text: BEIR SciFact's claims and abstracts.

For each claim of a split whose evidence abstract SUPPORTS it (SciFact's own labels; claims
only contradicted are left out, since neither an embedder nor a relevance reranker tells
support from contradiction), the claim check's score is taken twice, through the product's
own scorer (rag.claims.ClaimChecker.scores):

- against its evidence abstract: a source that backs the claim (should pass);
- against the best-ranked abstract that is not evidence for it (the embedder's nearest by
  title and first sentence): an on-topic source that does not back it, as when an answer cites
  the wrong source (should fail).

The threshold is the one that maximises balanced accuracy (the mean of the two pass/fail
rates) on `train`; `test` reports it at that threshold. With --reranker the configured
reranker scores instead of the embedder.

    python -m benchmarks.claims                      # embedder (the default scorer)
    python -m benchmarks.claims --reranker DIR_OR_NAME --claims 300
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, SCIFACT, log, machine
from rag.claims import ClaimChecker
from rag.embedding import LocalEmbedder
from rag.events import Source
from rag.rerank import make_reranker
from rag.schema import Hit


def _hit(doc_id: str, text: str) -> Hit:
    return Hit(chunk_id=doc_id, doc_id=doc_id, source=doc_id, text=text, position=0,
               page=None, page_end=None, heading="", score=0.0)


def load() -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, Any]]]:
    """The corpus (id -> title, text) and the claims (id -> text, supporting ids, split)."""
    corpus = {}
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            corpus[str(row["_id"])] = (row.get("title", ""), row.get("text", ""))
    splits: dict[str, str] = {}
    for split in ("train", "test"):
        for line in (SCIFACT / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
            splits[line.split("\t")[0]] = split
    claims = {}
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            support = [d for d, ev in (row.get("metadata") or {}).items()
                       if any(e.get("label") == "SUPPORT" for e in ev) and d in corpus]
            if support and str(row["_id"]) in splits:
                claims[str(row["_id"])] = {"text": row["text"], "support": support,
                                           "split": splits[str(row["_id"])]}
    return corpus, claims


def negatives(embedder: LocalEmbedder, corpus: dict[str, tuple[str, str]],
              claims: dict[str, dict[str, Any]]) -> dict[str, str]:
    """For each claim, the nearest abstract (by title and first sentence) not among its
    evidence: on topic, but not a source that backs the claim."""
    ids = list(corpus)
    heads = [f"{corpus[i][0]}. {corpus[i][1].split('. ')[0]}" for i in ids]
    log(f"embedding {len(heads)} abstract heads")
    matrix = embedder.embed(heads)
    queries = embedder.embed([c["text"] for c in claims.values()])
    out = {}
    for (cid, claim), vector in zip(claims.items(), queries, strict=True):
        order = np.argsort(-(matrix @ vector))
        evidence = set(claim["support"])
        out[cid] = next(ids[j] for j in order if ids[j] not in evidence)
    return out


def best_threshold(pos: list[float], neg: list[float]) -> tuple[float, float]:
    """(threshold, balanced accuracy) that best separates pos (>=) from neg (<)."""
    best = (0.0, 0.0)
    for t in sorted(set(pos) | set(neg)):
        acc = (np.mean([p >= t for p in pos]) + np.mean([n < t for n in neg])) / 2
        if acc > best[1]:
            best = (float(t), float(acc))
    return best


def rates(pos: list[float], neg: list[float], t: float) -> dict[str, float]:
    """Share of supported pairs passed and of unsupported pairs failed at threshold t."""
    passed = float(np.mean([p >= t for p in pos]))
    failed = float(np.mean([n < t for n in neg]))
    return {"supported_passed": round(passed, 4), "unsupported_flagged": round(failed, 4),
            "balanced_accuracy": round((passed + failed) / 2, 4), "pairs": len(pos) + len(neg)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", type=int, default=0, help="claims per split (0: all)")
    parser.add_argument("--reranker", default="", help="score with this reranker instead")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "claims.json")
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = LocalEmbedder()
    reranker = make_reranker(backend="local", model=args.reranker) if args.reranker else None
    checker = ClaimChecker(embedder, reranker)
    corpus, claims = load()
    if args.claims:
        rng = random.Random(0)
        keep = {s: [c for c in claims if claims[c]["split"] == s] for s in ("train", "test")}
        chosen = {c for s in keep.values() for c in rng.sample(s, min(args.claims, len(s)))}
        claims = {c: v for c, v in claims.items() if c in chosen}
    wrong = negatives(embedder, corpus, claims)
    scores: dict[str, dict[str, list[float]]] = {"train": {"pos": [], "neg": []},
                                                 "test": {"pos": [], "neg": []}}
    for split in scores:
        ids = [c for c in claims if claims[c]["split"] == split]
        log(f"{split}: scoring {len(ids)} claims")
        items_pos = [(claims[c]["text"], [Source(1, _hit(d, " ".join(corpus[d])))
                                          for d in claims[c]["support"]]) for c in ids]
        items_neg = [(claims[c]["text"], [Source(1, _hit(wrong[c], " ".join(corpus[wrong[c]])))])
                     for c in ids]
        scores[split]["pos"] = checker.scores(items_pos)
        scores[split]["neg"] = checker.scores(items_neg)
    threshold, _train_acc = best_threshold(scores["train"]["pos"], scores["train"]["neg"])
    result = {"date": time.strftime("%Y-%m-%d"), "scorer": checker.scorer,
              "model": args.reranker or embedder.name, "threshold": round(threshold, 4),
              "train": rates(scores["train"]["pos"], scores["train"]["neg"], threshold),
              "test": rates(scores["test"]["pos"], scores["test"]["neg"], threshold),
              "product_threshold": checker.threshold,
              "test_at_product_threshold": rates(scores["test"]["pos"], scores["test"]["neg"],
                                                 checker.threshold),
              "seconds": round(time.perf_counter() - started, 1), "machine": machine()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| scorer | threshold (train) | split | supported passed | unsupported flagged "
          "| balanced accuracy |\n|---|---|---|---|---|---|")
    for split in ("train", "test"):
        r = result[split]
        print(f"| {result['model']} | {threshold:.3f} | {split} | {r['supported_passed']:.3f} | "
              f"{r['unsupported_flagged']:.3f} | {r['balanced_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
