"""`rag eval`: retrieval quality on a BEIR benchmark or on evidence-annotated questions."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rag.cli_render import ingest_bar
from rag.errors import ConfigError
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.kb import KnowledgeBase

_SEARCHING = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())


@contextmanager
def eval_settings(settings: Settings, db: Path | None, collection: str,
                  separate: bool) -> Iterator[Settings]:
    """The settings to evaluate with: a separate (temporary unless db) Lite file, or as they are."""
    if not separate:
        yield settings
        return
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        uri = str(db or Path(tmp) / "eval.db")
        yield settings.with_(milvus_uri=uri, milvus_collection=collection)


def run_beir(kb: KnowledgeBase, beir: Path, split: str, err: Console) -> dict[str, Any]:
    """Ingest the corpus (unchanged documents are skipped) and score every mode."""
    from rag.evaluation import BeirDataset, evaluate, ingest_corpus

    dataset = BeirDataset(beir, split)
    with ingest_bar(err) as bar:
        ingest_corpus(kb.ingestor, dataset, progress=bar)
    results = evaluate(kb.retriever, dataset)
    mode = kb.settings.retrieval_mode
    return {"ndcg@10": results[mode]["ndcg@10"], "mode": mode, "split": split, **results}


def run_qa(kb: KnowledgeBase, qa: Path, docs: list[Path], depth: int,
           err: Console) -> dict[str, Any]:
    """Ingest the given documents, if any, then rank every question's evidence in every mode."""
    from rag.evaluation import eval_modes, load_questions, qa_report, run_mode, searcher

    questions = load_questions(qa)
    if docs:
        with ingest_bar(err) as bar:
            results = kb.ingestor.ingest_paths(docs, progress=bar)
        for r in results:
            if r.status == "failed":
                err.print(f"[yellow]not ingested:[/yellow] {escape(r.source)}: {escape(r.reason)}")
    elif kb.store.is_empty():
        raise ConfigError("The knowledge base is empty: ingest documents first, or pass --docs.")
    runs = {}
    with Progress(*_SEARCHING, console=err, transient=True) as progress:
        for mode in eval_modes(kb.retriever):
            task = progress.add_task(f"searching ({mode})", total=None)
            runs[mode] = run_mode(searcher(kb.retriever, mode), questions, depth)
            progress.update(task, visible=False)
    report = qa_report(questions, runs, depth)
    default = kb.settings.retrieval_mode
    if "hybrid+rerank" in runs and default == "hybrid":
        default = "hybrid+rerank"
    return {"mode": default, **report}


def print_beir(report: dict[str, Any], name: str, out: Console) -> None:
    """One row per mode."""
    table = Table("mode", "nDCG@10", "Recall@10", "Recall@100", "queries",
                  title=f"{escape(name)} ({report['split']})")
    for mode, r in report.items():
        if not isinstance(r, dict):
            continue
        marker = " (default)" if mode == report["mode"] else ""
        table.add_row(mode + marker, f"{r['ndcg@10']:.4f}", f"{r['recall@10']:.4f}",
                      f"{r['recall@100']:.4f}", str(r["queries"]))
    out.print(table)


def print_qa(report: dict[str, Any], name: str, out: Console, misses: int) -> None:
    """Modes, then modes by question kind, then the default mode's misses."""
    table = Table("mode", "hit@1", "hit@5", "MRR@10", "questions", title=escape(name))
    for mode, r in report["modes"].items():
        marker = " (default)" if mode == report["mode"] else ""
        table.add_row(mode + marker, f"{r['hit@1']:.3f}", f"{r['hit@5']:.3f}",
                      f"{r['mrr@10']:.3f}", str(r["questions"]))
    out.print(table)
    kinds = Table("kind", *report["modes"], title="hit@1 / hit@5 by question kind")
    first = next(iter(report["modes"].values()))
    for kind in first["kinds"]:
        cells = [f"{r['kinds'][kind]['hit@1']:.2f} / {r['kinds'][kind]['hit@5']:.2f}"
                 for r in report["modes"].values()]
        kinds.add_row(f"{kind} ({first['kinds'][kind]['questions']})", *cells)
    out.print(kinds)
    _print_misses(report, out, misses)


def _print_misses(report: dict[str, Any], out: Console, limit: int) -> None:
    mode = report["mode"]
    missed = report["modes"][mode]["misses"]
    if not missed or limit <= 0:
        return
    table = Table("rank", "id", "question", "evidence", "source",
                  title=f"not first in {mode} ({len(missed)}; rank '-' = not in the top "
                        f"{report['depth']})")
    for m in sorted(missed, key=lambda m: m["rank"] or 10**6)[:limit]:
        where = (m["source"] or "") + (f" p. {m['page']}" if m["page"] else "")
        table.add_row(str(m["rank"] or "-"), escape(m["id"]), escape(m["question"]),
                      escape(m["evidence"][:80]), escape(where))
    out.print(table)


def write_json(report: dict[str, Any]) -> None:
    """The whole report as one JSON line on stdout."""
    sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
