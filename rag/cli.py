"""The `rag` command line: ingest, search, list, delete, evaluate, ask."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rag.errors import RagError
from rag.events import Event, Source
from rag.ingest import IngestResult
from rag.ingest import Progress as IngestProgress
from rag.kb import KnowledgeBase
from rag.retrieval import MODES
from rag.settings import Settings

app = typer.Typer(help="gpt-oss-rag: a knowledge base in Milvus, answers from gpt-oss.",
                  no_args_is_help=True, add_completion=False)
out = Console()
err = Console(stderr=True)

STATUS_STYLE = {"added": "green", "replaced": "cyan", "skipped": "dim", "failed": "red"}


@contextmanager
def knowledge_base(settings: Settings | None = None) -> Iterator[KnowledgeBase]:
    """A knowledge base for one command; RagErrors become a clean message and exit code 1."""
    kb = None
    try:
        kb = KnowledgeBase(settings or Settings.from_env())
        yield kb
    except RagError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        if kb is not None:
            kb.close()


def _score(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class _IngestBar:
    """A rich progress bar over files and chunks."""

    def __init__(self, progress: Progress, total_files: int) -> None:
        self.progress = progress
        self.files = progress.add_task("files", total=total_files)
        self.current = progress.add_task("", total=None)

    def __call__(self, p: IngestProgress) -> None:
        pages = f" page {p.page}/{p.pages}" if p.pages and p.page else ""
        self.progress.update(self.current, description=f"{p.source}: {p.stage}{pages}",
                             completed=p.chunks)
        if p.stage == "done":
            self.progress.advance(self.files)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursive).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per file.")] = False,
) -> None:
    """Add documents (PDF, Markdown, text) to the knowledge base; unchanged files are skipped."""
    from rag.loading import iter_files

    with knowledge_base() as kb:
        total = len(list(iter_files(paths)))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True, disable=as_json) as progress:
            results = kb.ingestor.ingest_paths(paths, progress=_IngestBar(progress, total))
    _print_results(results, as_json)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _print_results(results: list[IngestResult], as_json: bool) -> None:
    if as_json:
        for r in results:
            out.print_json(json.dumps(r.to_dict()), indent=None)
        return
    table = Table("file", "result", "pages", "chunks", "seconds", "reason")
    for r in results:
        style = STATUS_STYLE[r.status]
        table.add_row(r.source, f"[{style}]{r.status}[/{style}]", _score(r.pages, 0),
                      str(r.chunks), f"{r.seconds:.2f}", r.reason)
    out.print(table)
    counts = {s: sum(r.status == s for r in results) for s in STATUS_STYLE}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no files found")


@app.command()
def search(
    queries: Annotated[list[str], typer.Argument(help="One or more questions.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Hits per query.")] = 5,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or bm25.")] = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", help="Search only these.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per query.")] = False,
    rerank: Annotated[bool | None, typer.Option(
        "--rerank/--no-rerank", help="Rerank the hits (default: when RERANKER is set).")] = None,
) -> None:
    """Search the knowledge base: ranked chunks with their scores."""
    if mode is not None and mode not in MODES:
        err.print(f"[red]error:[/red] --mode must be one of {', '.join(MODES)}")
        raise typer.Exit(2)
    with knowledge_base() as kb:
        for query in queries:
            hits = kb.retriever.search(query, k, mode=mode, doc_ids=doc or None, rerank=rerank)
            if as_json:
                line = {"query": query, "hits": [h.to_dict() for h in hits]}
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                continue
            reranked = any(h.rerank_score is not None for h in hits)
            table = Table("#", "source", "page / heading", "score", "cosine", "bm25",
                          *(["rerank"] if reranked else []), "text", title=query, show_lines=True)
            for h in hits:
                table.add_row(str(h.rank), h.source, h.location(" "), _score(h.score, 4),
                              _score(h.dense_score), _score(h.bm25_score, 2),
                              *([_score(h.rerank_score)] if reranked else []),
                              h.text[:300] + ("…" if len(h.text) > 300 else ""))
            out.print(table if hits else f"[yellow]No hits for[/yellow] {query!r}")


@app.command()
def docs(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the documents in the knowledge base."""
    with knowledge_base() as kb:
        documents = kb.store.list_documents()
    if as_json:
        for d in documents:
            sys.stdout.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
        return
    table = Table("document", "kind", "pages", "chunks", "added")
    for d in documents:
        added = datetime.fromtimestamp(d.added_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(d.source, d.kind, _score(d.pages, 0), str(d.chunks), added)
    out.print(table if documents else "The knowledge base is empty: add files with `rag ingest`.")


@app.command()
def rm(documents: Annotated[list[str], typer.Argument(help="Document names, as listed.")]) -> None:
    """Delete documents and all their chunks."""
    with knowledge_base() as kb:
        for name in documents:
            info = kb.store.delete_document(name)
            out.print(f"deleted {info.source} ({info.chunks} chunks)")
        kb.store.flush()


@app.command("eval")
def evaluate(
    beir: Annotated[Path | None, typer.Option("--beir", help="BEIR dataset folder.")] = None,
    qa: Annotated[Path | None, typer.Option(
        "--qa", help="Questions with evidence spans (JSON Lines).")] = None,
    docs: Annotated[list[Path] | None, typer.Option(
        "--docs", help="With --qa: files or folders to evaluate on, in a separate database "
        "(repeatable). Without it, the configured knowledge base is used.")] = None,
    split: Annotated[str, typer.Option(help="qrels split (--beir).")] = "test",
    depth: Annotated[int, typer.Option(min=10, help="Hits searched per question.")] = 50,
    misses: Annotated[int, typer.Option(help="Misses listed (--qa).")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: Annotated[Path | None, typer.Option(help="Milvus Lite file to build and reuse.")] = None,
) -> None:
    """Retrieval quality: hit@1/hit@5/MRR on questions with evidence (--qa), or nDCG@10 and
    Recall@10/100 on a BEIR benchmark (--beir), for every mode."""
    from rag import cli_eval

    if (beir is None) == (qa is None):
        err.print("[red]error:[/red] give exactly one of --beir DIR or --qa FILE")
        raise typer.Exit(2)
    settings = Settings.from_env()
    separate = beir is not None or bool(docs) or db is not None
    with (cli_eval.eval_settings(settings, db, "beir" if beir else "qa", separate) as chosen,
          knowledge_base(chosen) as kb):
        if beir is not None:
            report = cli_eval.run_beir(kb, beir, split, err)
        else:
            report = cli_eval.run_qa(kb, qa, docs or [], depth, err)
    if as_json:
        cli_eval.write_json(report)
    elif beir is not None:
        cli_eval.print_beir(report, beir.name, out)
    else:
        cli_eval.print_qa(report, qa.name, out, misses)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    effort: Annotated[str | None, typer.Option(help="Reasoning effort: low, medium, high.")] = None,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Sources.")] = None,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or bm25.")] = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", help="Search only these.")] = None,
    agent: Annotated[bool, typer.Option("--agent", help="Let the model search itself.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Ask a question: streams the reasoning (dim, to stderr), the answer, then the sources."""
    from rag.events import to_dict
    from rag.pipeline import AskOptions
    from rag.settings import EFFORTS

    if effort is not None and effort not in EFFORTS:
        err.print(f"[red]error:[/red] --effort must be one of {', '.join(EFFORTS)}")
        raise typer.Exit(2)
    if mode is not None and mode not in MODES:
        err.print(f"[red]error:[/red] --mode must be one of {', '.join(MODES)}")
        raise typer.Exit(2)
    options = AskOptions(effort=effort, k=k, mode=mode, doc_ids=doc or None, agent=agent)
    failed = False
    with knowledge_base() as kb:
        renderer = _AnswerRenderer()
        for event in kb.pipeline.ask(question, options=options):
            failed = failed or event.type == "error"
            if as_json:
                sys.stdout.write(json.dumps(to_dict(event), ensure_ascii=False) + "\n")
                sys.stdout.flush()
            else:
                renderer(event)
        if not as_json:
            renderer.finish()
    if failed:
        raise typer.Exit(1)


class _AnswerRenderer:
    """Renders pipeline events for a terminal."""

    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.cited: set[int] = set()
        self.thinking = False

    def __call__(self, event: Event) -> None:
        """Print one event."""
        kind = event.type
        if kind == "query" and event.query != event.original:
            err.print(f"[dim]searching for: {event.query}[/dim]")
        elif kind == "sources":
            self.sources = list(event.sources)
        elif kind == "reasoning":
            if not self.thinking:
                err.print("[dim]Thinking…[/dim]")
                self.thinking = True
            err.print(f"[dim italic]{escape(event.text)}[/dim italic]", end="")
        elif kind == "answer":
            if self.thinking:
                err.print()
                self.thinking = False
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif kind == "tool_call":
            self.sources.extend(s for s in event.sources if s not in self.sources)
            err.print(f"[cyan]searched[/cyan] {event.arguments.get('query', '')!r}: "
                      f"{len(event.sources)} hits")
        elif kind == "notice":
            err.print(f"[yellow]{escape(event.message)}[/yellow]")
        elif kind == "done":
            sys.stdout.write("\n")
            if event.unknown_citations:
                err.print("[yellow]cited sources that do not exist: "
                          + ", ".join(f"[{n}]" for n in event.unknown_citations) + "[/yellow]")
            self.cited = set(event.citations)
        elif kind == "error":
            err.print(f"\n[red]error:[/red] {escape(event.message)}")

    def finish(self) -> None:
        """Print the sources table."""
        if not self.sources:
            return
        cited = self.cited
        table = Table("n", "source", "page / heading", "cosine", "bm25", "cited", title="Sources")
        for s in sorted(self.sources, key=lambda s: s.n):
            table.add_row(f"[{s.n}]", s.hit.source, s.hit.location(" "),
                          _score(s.hit.dense_score), _score(s.hit.bm25_score, 2),
                          "yes" if s.n in cited else "")
        out.print(table)


@app.command()
def serve() -> None:
    """Run the web app (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, default 127.0.0.1:7860)."""
    from rag.ui import main as ui_main

    ui_main()


def main() -> None:
    """Console-script entry point."""
    # pypdf logs every repairable oddity of a PDF; the per-file result says what matters.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    app()
