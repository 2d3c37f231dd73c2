"""What the `rag` command prints: consoles, the ingest progress bar, tables and hits.

On a terminal (or at the width COLUMNS sets), tables fit its width: a document name keeps its
file name whole and loses the middle of its path first ("userGuide/…/index-vector-fields.md");
nothing is cut with an ellipsis. Piped (not a terminal, and COLUMNS not set), nothing is
wrapped or shortened: lines are as long as their content.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Column, Table
from rich.text import Text

from rag.answer import Answer
from rag.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    NoticeEvent,
    QueryEvent,
    ReasoningEvent,
    Source,
    ToolCallEvent,
)

if TYPE_CHECKING:  # not imported at run time: rag.ingest loads pymilvus (and gRPC)
    from rag.ingest import IngestResult, Progress, ProgressCallback
    from rag.schema import DocumentInfo, Hit

out = Console()
err = Console(stderr=True)

PIPED_WIDTH = 100_000  # "no wrapping" for a console that is not a terminal
STATUS_STYLE = {"added": "green", "replaced": "cyan", "skipped": "dim", "failed": "red"}
TEXT_CHARS = 300  # of a hit's text shown by `rag search`


@contextmanager
def exit_on_error() -> Iterator[None]:
    """For one command: a RagError becomes `error: message` on stderr and exit code 1."""
    import typer

    from rag.errors import RagError

    try:
        yield
    except RagError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None


def fit_consoles(*consoles: Console) -> None:
    """Let consoles whose file is not a terminal print long lines as they are, unless COLUMNS
    sets a width (colours still follow rich's rules: FORCE_COLOR, NO_COLOR, TTY_COMPATIBLE)."""
    for console in consoles or (out, err):
        if not os.environ.get("COLUMNS") and not _isatty(console):
            console.width = PIPED_WIDTH
            console.soft_wrap = True


def _isatty(console: Console) -> bool:
    try:
        return console.file.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def short_path(name: str, width: int) -> str:
    """`name` in at most `width` characters if it can be done without cutting its file name:
    folders go from the middle first, then from the start ("a/…/d/file.md", "…/file.md")."""
    if len(name) <= width or "/" not in name:
        return name
    *folders, file = name.split("/")
    head, tail = folders[:1], folders[1:]
    while True:
        candidate = "/".join([*head, "…", *tail, file]) if head or tail else f"…/{file}"
        if len(candidate) <= width or not (head or tail):
            return candidate if len(candidate) < len(name) else name
        if tail:
            tail = tail[1:]
        else:
            head = []


def name_column(header: str, names: list[str], console: Console,
                others: int) -> tuple[Column, list[str]]:
    """A column of document names that fits beside `others` characters of other columns and
    borders (3 per column, plus 1), and the names as it shows them (see short_path); a name
    that is still too wide is folded onto a second line, never cut."""
    budget = max(console.width - others, 12)
    shown = [short_path(name, budget) for name in names]
    widest = max((len(s) for s in shown), default=len(header))
    return Column(header, overflow="fold", min_width=min(widest, budget)), shown


@contextmanager
def ingest_bar(console: Console, disable: bool = False) -> Iterator[ProgressCallback]:
    """A progress bar over the whole ingest job: its share done, time so far, and the line of
    Progress.describe() (file i/n, stage with real counts, time left)."""
    columns = (TextColumn("{task.description}", markup=False), BarColumn(),
               TaskProgressColumn(), TimeElapsedColumn())
    with Bar(*columns, console=console, transient=True, disable=disable) as bar:
        task = bar.add_task("starting", total=1.0)

        def report(p: Progress) -> None:
            bar.update(task, completed=p.fraction, description=p.describe())

        yield report


def print_results(results: list[IngestResult], ignored: str = "") -> None:
    """The per-file results table, then counts ('3 added, 1 failed'); `ignored` says what
    files of other types were passed over."""
    column, names = name_column("file", [r.source for r in results], out, 55)
    table = Table(column, "result", "pages", "chunks", "seconds", "reason")
    for r, name in zip(results, names, strict=True):
        style = STATUS_STYLE[r.status]
        table.add_row(escape(name), f"[{style}]{r.status}[/{style}]", _number(r.pages),
                      str(r.chunks), f"{r.seconds:.2f}", escape(r.reason))
    if results:
        out.print(table)
    counts = {s: sum(r.status == s for r in results) for s in STATUS_STYLE}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no documents found"
    out.print(summary + (f"; {ignored} skipped" if ignored else ""), highlight=False)


def print_removed(removed: list[DocumentInfo]) -> None:
    """What --sync deleted: the documents whose files are gone."""
    if removed:
        names = ", ".join(d.source for d in removed)
        files = "document" if len(removed) == 1 else "documents"
        out.print(f"removed {len(removed)} {files} whose files are gone: {names}",
                  markup=False, highlight=False)


def print_documents(documents: list[DocumentInfo]) -> None:
    """The documents table."""
    if not documents:
        out.print("The knowledge base is empty: add files with `rag ingest`.")
        return
    column, names = name_column("document", [d.source for d in documents], out, 51)
    table = Table(column, "kind", "pages", "chunks", "added", "notes")
    for d, name in zip(documents, names, strict=True):
        added = datetime.fromtimestamp(d.added_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(escape(name), d.kind, _number(d.pages), str(d.chunks), added,
                      escape(d.notes))
    out.print(table)


def print_hits(query: str, hits: list[Hit]) -> None:
    """Ranked hits: rank, document and place, scores, then the text (collapsed, shortened)."""
    if not hits:
        out.print(f"[yellow]No hits for[/yellow] {escape(query)!r}")
        return
    out.print(Text(query, style="bold"))
    for h in hits:
        where = f"{h.source} · {h.location(' ')}" if h.location(" ") else h.source
        scores = [f"score {_number(h.score, 4)}", f"cosine {_number(h.dense_score)}",
                  f"bm25 {_number(h.bm25_score, 2)}"]
        if h.sentence_score is not None:
            scores.append(f"sentence {_number(h.sentence_score)}")
        if h.rerank_score is not None:
            scores.append(f"rerank {_number(h.rerank_score)}")
        text = " ".join(h.text.split())
        text = text[:TEXT_CHARS] + ("…" if len(text) > TEXT_CHARS else "")
        out.print(Text.assemble((f"{h.rank:>2}  ", "bold"), (where, "cyan")))
        out.print(Padding(Text(" · ".join(scores), style="dim"), (0, 0, 0, 4), expand=False))
        out.print(Padding(Text(text), (0, 0, 0, 4), expand=False))
    out.print()


class AnswerPrinter:
    """Prints an answer for a terminal as its events arrive: the reasoning dim and the steps on
    stderr, the answer text on stdout, then the sources. It only renders: the answer (an
    rag.answer.Answer) has applied each event before it is printed."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.reasoning = False  # the terminal is in the middle of reasoning text
        self.written = False  # answer text is on stdout since the last search

    def __call__(self, event: Event) -> None:
        """Print one event."""
        match event:
            case QueryEvent() if self.answer.searches[-1].rewritten:
                err.print(Text(f"searching for: {event.query}", style="dim"))
            case ReasoningEvent(text=text):
                if not self.reasoning:
                    err.print("[dim]Thinking…[/dim]")
                    self.reasoning = True
                err.print(Text(text, style="dim italic"), end="")
            case AnswerEvent(text=text):
                self._end_reasoning()
                sys.stdout.write(text)
                sys.stdout.flush()
                self.written = True
            case ToolCallEvent(sources=found):
                self._end_reasoning()
                if self.written:  # the answer starts again; what was written is a draft
                    sys.stdout.write("\n")
                    err.print("[dim](the text above was a draft: the model searched again)[/dim]")
                    self.written = False
                query = self.answer.searches[-1].query
                err.print(f"[cyan]searched[/cyan] {escape(repr(query))}: {len(found)} hits")
            case NoticeEvent(message=message):
                err.print(Text(message, style="yellow"))
            case DoneEvent():
                self._end_reasoning()
                sys.stdout.write("\n")
                if self.answer.unknown_citations:
                    listed = ", ".join(f"[{n}]" for n in self.answer.unknown_citations)
                    err.print(Text(f"cited sources that do not exist: {listed}", style="yellow"))
                self._print_claims()
            case ErrorEvent(message=message):
                self._end_reasoning()
                err.print(Text.assemble("\n", ("error:", "red"), f" {message}"))

    def _print_claims(self) -> None:
        """The claim check's verdict: the sentences not backed by their sources, and why."""
        claims = self.answer.claims
        weak = [c for c in claims if not c.supported]
        if not claims:
            return
        if not weak:
            err.print(Text(f"claim check: all {len(claims)} sentences backed by their sources",
                           style="green"))
            return
        err.print(Text(f"claim check: {len(weak)} of {len(claims)} sentences not backed by "
                       "their sources", style="yellow"))
        for claim in weak:
            err.print(Text.assemble("  - ", (" ".join(claim.text.split()), "italic"),
                                    (f" ({claim.reason})", "dim")))

    def _end_reasoning(self) -> None:
        if self.reasoning:
            err.print()
            self.reasoning = False

    def finish(self) -> None:
        """Print the sources table: number, document and place, scores, whether cited."""
        sources = self.answer.listed
        if not sources:
            return
        cited = set(self.answer.citations)
        column, names = name_column("source", [s.hit.source for s in sources], out, 36)
        table = Table("n", column, "cosine", "bm25", "cited", title="Sources")
        for s, name in zip(sources, names, strict=True):
            where = Text(name)
            if s.hit.location(" "):
                where.append("\n" + s.hit.location(" "), style="dim")
            table.add_row(f"[{s.n}]", where, _number(s.hit.dense_score),
                          _number(s.hit.bm25_score, 2), "yes" if s.n in cited else "")
        out.print(table)
        self._print_cited([s for s in sources if s.n in cited])

    def _print_cited(self, sources: list[Source]) -> None:
        """The passages the answer cites, each under its number, document and location, so a
        reader checks a claim without opening the file."""
        if not sources:
            return
        out.print(Text("Cited passages", style="bold"))
        for s in sources:
            head = Text.assemble((f"[{s.n}] ", "bold"), s.hit.source)
            if s.hit.location(" "):
                head.append(f" · {s.hit.location(' ')}", style="dim")
            out.print(head)
            out.print(Padding(Text(" ".join(s.hit.text.split())), (0, 0, 1, 4)))


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"
