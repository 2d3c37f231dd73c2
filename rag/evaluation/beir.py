"""Retrieval evaluation on a BEIR-format dataset, through the same ingest and search code."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import ConfigError
from rag.evaluation.metrics import ndcg_at, recall_at
from rag.evaluation.modes import eval_modes, searcher
from rag.ingest import Ingestor, IngestResult, ProgressCallback
from rag.loading import LoadedDocument
from rag.retrieval import Retriever
from rag.schema import Hit, Section


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """Corpus, queries and relevance judgements of one split."""

    root: Path
    split: str

    def corpus(self) -> Iterator[tuple[str, str, str]]:
        """(doc id, title, text) for every corpus document."""
        with (self.root / "corpus.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                yield str(row["_id"]), row.get("title", ""), row.get("text", "")

    def queries(self) -> dict[str, str]:
        """Query text by id, for the queries judged in this split."""
        judged = self.qrels()
        out = {}
        with (self.root / "queries.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if str(row["_id"]) in judged:
                    out[str(row["_id"])] = row["text"]
        return out

    def qrels(self) -> dict[str, dict[str, int]]:
        """Relevance grade by query id and doc id."""
        path = self.root / "qrels" / f"{self.split}.tsv"
        if not path.exists():
            raise ConfigError(f"No qrels for split '{self.split}' at {path}")
        judged: dict[str, dict[str, int]] = {}
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            for row in reader:
                if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                    continue  # header line
                judged.setdefault(row[0].strip(), {})[row[1].strip()] = int(row[2])
        return judged


def _corpus_document(doc_id: str, title: str, text: str) -> LoadedDocument:
    digest = hashlib.sha256(f"{title}\0{text}".encode()).hexdigest()
    sections = iter([Section(text=text, heading=(title,) if title else ())])
    return LoadedDocument(source=doc_id, kind="text", sha256=digest, pages=None,
                          sections=sections)


def ingest_corpus(ingestor: Ingestor, dataset: BeirDataset,
                  progress: ProgressCallback | None = None) -> list[IngestResult]:
    """Store every corpus document as its own knowledge-base document (title as heading)."""
    documents = [
        (doc_id, lambda d=doc_id, t=title, x=text: _corpus_document(d, t, x))
        for doc_id, title, text in dataset.corpus()
    ]
    return ingestor.ingest_documents(documents, progress=progress)


def evaluate(retriever: Retriever, dataset: BeirDataset, modes: tuple[str, ...] | None = None,
             depth: int = 100) -> dict[str, Any]:
    """nDCG@10 and Recall@10/100 per mode, ranking documents by their best chunk."""
    queries = dataset.queries()
    qrels = dataset.qrels()
    results: dict[str, Any] = {}
    for mode in modes or eval_modes(retriever):
        search = searcher(retriever, mode)
        ndcg, r10, r100 = [], [], []
        started = time.perf_counter()
        for qid, text in queries.items():
            ranked = best_chunk_order(search(text, depth))
            ndcg.append(ndcg_at(ranked, qrels[qid], 10))
            r10.append(recall_at(ranked, qrels[qid], 10))
            r100.append(recall_at(ranked, qrels[qid], 100))
        n = max(len(ndcg), 1)
        results[mode] = {"ndcg@10": round(sum(ndcg) / n, 4), "recall@10": round(sum(r10) / n, 4),
                         "recall@100": round(sum(r100) / n, 4), "queries": len(ndcg),
                         "seconds": round(time.perf_counter() - started, 2)}
    return results


def best_chunk_order(hits: list[Hit]) -> list[str]:
    """Document ids in the order of each document's first (best) chunk."""
    return list(dict.fromkeys(hit.doc_id for hit in hits))
