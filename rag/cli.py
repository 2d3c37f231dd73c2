"""The `rag` command line: ingest, search, list, delete, evaluate, ask.

The knowledge base (and with it pymilvus and gRPC) is imported only inside the commands, after
the Typer callback has configured logging (rag.logs), so gRPC's own lines stay off the console.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rag.choices import Effort, Mode
from rag.cli_kb import kb_app, selected_settings
from rag.cli_render import err, exit_on_error, fit_consoles, out
from rag.cli_workspace import feedback_app, users_app
from rag.errors import ConfigError
from rag.logs import configure_logging
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.kb import KnowledgeBase

app = typer.Typer(help="gpt-oss-rag: a knowledge base in Milvus, answers from gpt-oss.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(users_app, name="users")
app.add_typer(feedback_app, name="feedback")
app.add_typer(kb_app, name="kb")

ModeOption = Annotated[Mode | None, typer.Option(
    case_sensitive=False, help="Retrieval mode (default: RETRIEVAL_MODE).")]


@dataclass(slots=True)
class Options:
    """The global options of this run: set by the Typer callback, read by `knowledge_base()`
    (the command functions do not take the Typer context)."""

    kb: str | None = None


OPTIONS = Options()


@app.callback()
def setup(
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Debug logging, libraries' included.")] = False,
    kb: Annotated[str | None, typer.Option(
        "--kb", envvar="RAG_KB", show_envvar=False, help="The knowledge base to work on, by "
        "name (see `rag kb list`; default: MILVUS_COLLECTION's).")] = None,
) -> None:
    """gpt-oss-rag: a knowledge base in Milvus, answers from gpt-oss."""
    configure_logging(logging.DEBUG if verbose else logging.WARNING)
    fit_consoles()
    OPTIONS.kb = kb.strip() if kb and kb.strip() else None


@contextmanager
def knowledge_base(settings: Settings | None = None,
                   select: bool = True) -> Iterator[KnowledgeBase]:
    """A knowledge base for one command: the --kb one if given (and `select`), otherwise the
    configured one; RagErrors become a clean message and exit code 1."""
    from rag.kb import KnowledgeBase

    kb = None
    try:
        with exit_on_error():
            settings = settings or Settings.from_env()
            if OPTIONS.kb is not None and not select:
                raise ConfigError("--kb names a knowledge base of the app; this command "
                                  "builds its own database (--beir, --docs or --db), so it "
                                  "cannot also use one. Drop --kb, or drop --docs/--db.")
            if OPTIONS.kb is not None:
                settings = selected_settings(settings, OPTIONS.kb)
            kb = KnowledgeBase(settings)
            yield kb
    finally:
        if kb is not None:
            kb.close()


def _json_line(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def stop_on_interrupt(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C sets `stop` (the ingest ends at the next document boundary, every
    document stored whole or not at all); a second one interrupts at once (what is begun
    and not committed is removed)."""
    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err.print("\nstopping after the current file (Ctrl-C again to stop at once)",
                  highlight=False)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(
        help="Files and folders (recursive: the documents in them).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per file.")] = False,
    sync: Annotated[bool, typer.Option(
        "--sync", help="Also delete the documents whose files are not among PATHS "
        "(the knowledge base mirrors them).")] = False,
) -> None:
    """Add documents (PDF, Word, PowerPoint, Excel, CSV, HTML, EPUB, e-mail, images, Markdown,
    text) to the knowledge base; unchanged ones are skipped."""
    from rag.cli_render import ingest_bar, print_removed, print_results
    from rag.loading import find_files

    found = find_files(paths)
    stop = threading.Event()
    with stop_on_interrupt(stop), knowledge_base() as kb, \
            ingest_bar(err, disable=as_json) as bar:
        results = kb.ingestor.ingest_files(found.files, progress=bar, stop=stop)
        stopped = stop.is_set()
        removed = kb.ingestor.remove_missing(s for _, s in found.files) \
            if sync and not stopped else []
    ignored = found.ignored_summary()
    if as_json:
        for r in results:
            _json_line(r.to_dict())
        for d in removed:
            _json_line({"source": d.source, "status": "removed", "chunks": d.chunks})
        if ignored:
            err.print(f"{ignored} skipped", highlight=False)
    else:
        print_results(results, ignored)
        print_removed(removed)
    if stopped:
        err.print("stopped: the files not reached are listed; run the same command again to "
                  "add them", highlight=False)
        raise typer.Exit(130)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@app.command()
def search(
    queries: Annotated[list[str], typer.Argument(help="One or more questions.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Hits per query.")] = 5,
    mode: ModeOption = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", help="Search only these.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per query.")] = False,
    rerank: Annotated[bool | None, typer.Option(
        "--rerank/--no-rerank", help="Rerank the hits (default: when RERANKER is set).")] = None,
) -> None:
    """Search the knowledge base: ranked chunks with their scores."""
    from rag.cli_render import print_hits

    with knowledge_base() as kb:
        for query in queries:
            hits = kb.retriever.search(query, k, mode=mode, doc_ids=doc or None, rerank=rerank)
            if as_json:
                _json_line({"query": query, "hits": [h.to_dict() for h in hits]})
            else:
                print_hits(query, hits)


@app.command()
def docs(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the documents in the knowledge base."""
    from rag.cli_render import print_documents

    with knowledge_base() as kb:
        documents = kb.store.list_documents()
    if as_json:
        for d in documents:
            _json_line(d.to_dict())
    else:
        print_documents(documents)


@app.command()
def rm(documents: Annotated[list[str], typer.Argument(help="Document names, as listed.")]) -> None:
    """Delete documents, all their chunks and their kept original files."""
    with knowledge_base() as kb:
        for name in documents:
            info = kb.delete_document(name)
            out.print(f"deleted {info.source} ({info.chunks} chunks)", markup=False,
                      highlight=False)
        kb.store.flush()


@app.command("eval")
def evaluate(
    beir: Annotated[Path | None, typer.Option("--beir", help="BEIR dataset folder.")] = None,
    qa: Annotated[Path | None, typer.Option(
        "--qa", help="Questions with evidence spans (JSON Lines).")] = None,
    docs: Annotated[list[Path] | None, typer.Option(
        "--docs", help="With --qa: files or folders to evaluate on, in a separate database "
        "(repeatable). Without it, the configured knowledge base (or --kb's) is used.")] = None,
    split: Annotated[str, typer.Option(help="qrels split (--beir).")] = "test",
    depth: Annotated[int, typer.Option(min=10, help="Hits searched per question.")] = 50,
    misses: Annotated[int, typer.Option(help="Misses listed (--qa).")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: Annotated[Path | None, typer.Option(help="Milvus Lite file to build and reuse.")] = None,
) -> None:
    """Retrieval quality of every mode: hit@1/hit@5/MRR on questions with evidence (--qa), \
or nDCG@10 and Recall@10/100 on a BEIR benchmark (--beir)."""
    from rag import cli_eval

    if (beir is None) == (qa is None):
        err.print("[red]error:[/red] give exactly one of --beir DIR or --qa FILE")
        raise typer.Exit(2)
    settings = Settings.from_env()
    separate = beir is not None or bool(docs) or db is not None
    with (cli_eval.eval_settings(settings, db, "beir" if beir else "qa", separate) as chosen,
          knowledge_base(chosen, select=not separate) as kb):
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
    effort: Annotated[Effort | None, typer.Option(
        case_sensitive=False, help="Reasoning effort (default: REASONING_EFFORT).")] = None,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Sources.")] = None,
    mode: ModeOption = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", help="Search only these.")] = None,
    agent: Annotated[bool, typer.Option("--agent", help="Let the model search itself.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Ask a question: streams the reasoning (dim, to stderr), the answer, then the sources."""
    from rag.answer import Answer
    from rag.cli_render import AnswerPrinter
    from rag.events import to_dict
    from rag.pipeline import AskOptions

    options = AskOptions(effort=effort, k=k, mode=mode, doc_ids=doc or None, agent=agent)
    answer = Answer(question)
    printer = None if as_json else AnswerPrinter(answer)
    with knowledge_base() as kb:
        for event in answer.follow(kb.pipeline.ask(question, options=options)):
            if printer is None:
                _json_line(to_dict(event))
            else:
                printer(event)
        if printer is not None:
            printer.finish()
    if answer.error is not None:
        raise typer.Exit(1)


@app.command()
def serve() -> None:
    """Run the web app (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, default 127.0.0.1:7860)."""
    from rag.ui import main as ui_main

    ui_main()


def main() -> None:
    """Console-script entry point."""
    app()
