"""The web app: upload documents, chat with cited sources, and the /ingest, /search, /ask API.

This is the only module that imports Gradio. `create_demo()` builds the app from the
environment without launching it; `launch(demo)` serves it (127.0.0.1:7860 unless
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise).
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path, PurePath
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from rag.errors import ConfigError, LLMError, RagError
from rag.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    NoticeEvent,
    QueryEvent,
    ReasoningEvent,
    Source,
    SourcesEvent,
    ToolCallEvent,
)
from rag.ingest import IngestResult, Progress
from rag.kb import KnowledgeBase
from rag.llm import LLMClient, LLMConfig, ModelNotFound
from rag.loading import SUPPORTED_EXTENSIONS, load
from rag.pipeline import AnswerPipeline, AskOptions
from rag.prompting import Turn
from rag.retrieval import MODES
from rag.schema import DocumentInfo, Hit
from rag.settings import EFFORTS, Settings

log = logging.getLogger(__name__)

TITLE = "gpt-oss-rag"
TAGLINE = "Chat with your documents: answers from gpt-oss, each claim cited to its source."
EMPTY_CHAT = ("### Upload documents in the Upload tab, then ask.\n"
              "PDF, Markdown and text files are split into passages and indexed in Milvus; "
              "every answer cites the passages it used.")
READY_CHAT = ("### Ask anything about your documents.\n"
              "{docs} in the knowledge base. Answers cite their sources as [1], [2], …; "
              "click a reply to see its sources.")
MODE_LABELS = {"hybrid": "Hybrid", "dense": "Dense", "bm25": "BM25"}
STATUS_LABELS = {"added": "✓ added", "replaced": "↻ replaced", "skipped": "– skipped",
                 "failed": "✗ failed"}
WARN = "⚠"  # plain text glyphs only: no emoji font is needed to render the app
RESULT_HEADERS = ["File", "Result", "Pages", "Chunks", "Details"]
DOC_HEADERS = ["Document", "Kind", "Pages", "Chunks", "Added"]
STATUS_CHECK_TIMEOUT = 3.0
CHAT_CONCURRENCY = 8
_CITATION = re.compile(r"\[(\d+(?:\s*[-–,]\s*\d+)*)\]")

CSS = """
.rag-header { display: flex; align-items: center; gap: 12px; padding: 0 2px; }
.rag-logo { width: 34px; height: 34px; border-radius: 9px; flex: none;
  background: linear-gradient(135deg, var(--primary-400), var(--primary-700)); }
.rag-title { display: flex; flex-direction: column; min-width: 0; }
.rag-header h1 { margin: 0; font-size: 1.3rem; line-height: 1.2; font-weight: 700;
  letter-spacing: -0.01em; }
.rag-header p { margin: 0; color: var(--body-text-color-subdued); font-size: 0.88rem; }
.rag-header .rag-stats { margin-left: auto; font-size: 0.82rem; padding: 2px 10px;
  white-space: nowrap;
  border-radius: 999px; background: var(--primary-50); color: var(--primary-700);
  border: 1px solid var(--primary-200); }
.rag-status { min-height: 1.3em; font-size: 0.84rem; color: var(--body-text-color-subdued); }
.rag-status p { margin: 1px 0 !important; }
.rag-actions { gap: 8px !important; }
.rag-compact .wrap { gap: 4px !important; flex-wrap: nowrap !important; }
.rag-compact .wrap label { padding: 5px 6px !important; flex: 1 1 0; min-width: 0;
  justify-content: center; font-size: 0.86rem; }
.rag-sources { display: flex; flex-direction: column; gap: 10px; max-height: 620px;
  overflow-y: auto; padding: 2px 4px 2px 2px; }
.rag-sources-head { font-weight: 600; font-size: 0.95rem; }
.rag-sources-head .rag-query { font-weight: 400; color: var(--body-text-color-subdued); }
.rag-empty { color: var(--body-text-color-subdued); font-size: 0.9rem; padding: 24px 12px;
  text-align: center; border: 1px dashed var(--border-color-primary); border-radius: 10px; }
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 10px;
  padding: 9px 12px; background: var(--background-fill-primary);
  transition: box-shadow .3s, border-color .3s; }
.rag-source.rag-cited { border-left: 4px solid var(--primary-500); }
.rag-source.rag-flash { box-shadow: 0 0 0 3px var(--primary-200);
  border-color: var(--primary-500); }
.rag-source-title { display: flex; gap: 6px; align-items: baseline; flex-wrap: wrap; }
.rag-n { font-weight: 700; color: var(--primary-600); }
.rag-file { font-weight: 600; word-break: break-word; }
.rag-where { color: var(--body-text-color-subdued); font-size: 0.86rem; }
.rag-badge { font-size: 0.7rem; font-weight: 600; padding: 1px 8px; border-radius: 999px;
  background: var(--primary-50); color: var(--primary-700); margin-left: auto; }
.rag-scores { display: flex; gap: 5px; flex-wrap: wrap; margin: 6px 0 4px; }
.rag-score { font-size: 0.74rem; font-family: var(--font-mono); padding: 1px 7px;
  border-radius: 6px; background: var(--background-fill-secondary);
  border: 1px solid var(--border-color-primary); white-space: nowrap; }
.rag-score b { font-weight: 600; }
.rag-source details summary { cursor: pointer; font-size: 0.84rem; line-height: 1.4;
  color: var(--body-text-color-subdued); }
.rag-source details[open] summary { margin-bottom: 6px; }
.rag-chunk { white-space: pre-wrap; font-size: 0.84rem; line-height: 1.45;
  max-height: 300px; overflow-y: auto; padding: 8px; border-radius: 6px;
  background: var(--background-fill-secondary); }
.rag-warn { font-size: 0.86rem; padding: 8px 10px; border-radius: 8px;
  background: #fffbeb; color: #92400e; border: 1px solid #fcd34d; }
.rag-llm-card { font-size: 0.84rem; display: flex; flex-direction: column; gap: 4px;
  padding: 8px 10px; border-radius: 8px; border: 1px solid var(--border-color-primary);
  background: var(--background-fill-primary); }
.rag-llm-card code { font-size: 0.78rem; word-break: break-all; background: none;
  padding: 0; }
.rag-k { color: var(--body-text-color-subdued); font-size: 0.72rem; text-transform: uppercase;
  letter-spacing: 0.04em; margin-top: 2px; }
.rag-llm-state { font-weight: 600; display: flex; align-items: center; gap: 7px;
  margin-top: 4px; }
.rag-llm-detail { color: var(--body-text-color-subdued); font-size: 0.8rem; }
.rag-dot { width: 9px; height: 9px; border-radius: 50%; display: inline-block; flex: none; }
.rag-dot-ok { background: #16a34a; }
.rag-dot-bad { background: #dc2626; }
.rag-dot-warn { background: #f59e0b; }
.rag-dot-wait { background: #94a3b8; }
.rag-chat .placeholder-content { text-align: center; padding: 0 40px; }
.rag-chat .message a[href^="#src-"] { text-decoration: none; font-weight: 600; }
"""

HEAD = """
<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest('a[href^="#src-"]');
  if (!link) return;
  event.preventDefault();
  const id = link.getAttribute("href").slice(1);
  setTimeout(() => {
    const card = document.getElementById(id);
    if (!card) return;
    card.scrollIntoView({behavior: "smooth", block: "nearest"});
    const details = card.querySelector("details");
    if (details) details.open = true;
    card.classList.add("rag-flash");
    setTimeout(() => card.classList.remove("rag-flash"), 1600);
  }, 350);
}, true);
</script>
"""


# -- chat state ------------------------------------------------------------------------------

@dataclass
class Reply:
    """One answer in a chat: its question, sources and citations, and its chatbot messages."""

    question: str
    first: int  # index of its first chatbot message
    end: int = 0  # one past its last chatbot message
    query: str = ""
    sources: dict[int, Source] = field(default_factory=dict)
    citations: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    error: str = ""
    done: bool = False


@dataclass
class ChatSession:
    """Everything one browser session's chat holds (kept in gr.State, never shared)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    def reply_at(self, message_index: int) -> Reply | None:
        """The reply that a chatbot message belongs to."""
        for reply in self.replies:
            if reply.first <= message_index < max(reply.end, reply.first + 1):
                return reply
        return None


# -- rendering -------------------------------------------------------------------------------

def location(hit: Hit) -> str:
    """Where a chunk is: page or pages, then its heading path."""
    return hit.location(" · ")


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def link_citations(text: str, known: set[int]) -> str:
    """Markdown with each known [n] marker turned into a link to its source card."""

    def one(match: re.Match[str]) -> str:
        inner = re.sub(r"\d+", lambda m: (f"[{m.group()}](#src-{m.group()})"
                                          if int(m.group()) in known else m.group()),
                       match.group(1))
        return f"[{inner}]"

    return _CITATION.sub(one, text)


def one_line(text: str, limit: int = 90) -> str:
    """The first line of a text, whitespace collapsed, cut to a limit with an ellipsis."""
    first = " ".join(text.strip().split("\n", 1)[0].split())
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def hits_markdown(sources: list[Source]) -> str:
    """A short Markdown list of sources, for a collapsible search step."""
    if not sources:
        return "No results."
    lines = []
    for s in sources:
        where = location(s.hit)
        rerank = ("" if s.hit.rerank_score is None
                  else f", rerank {_num(s.hit.rerank_score, 3)}")
        lines.append(f"{s.n}. **{s.hit.source}**{' · ' + where if where else ''} — "
                     f"cosine {_num(s.hit.dense_score, 3)}, BM25 {_num(s.hit.bm25_score, 2)}"
                     f"{rerank}")
    return "\n".join(lines)


def sources_html(reply: Reply | None) -> str:
    """The sources panel for one reply: numbered cards with scores and the chunk text."""
    if reply is None:
        return ("<div class='rag-sources'><div class='rag-empty'>Sources appear here: the "
                "passages each answer was built from, with their scores.</div></div>")
    esc = html.escape
    head = "Sources"
    if reply.query:
        head += f" <span class='rag-query'>for “{esc(reply.query)}”</span>"
    parts = [f"<div class='rag-sources'><div class='rag-sources-head'>{head}</div>"]
    if not reply.sources:
        note = "Searching…" if not reply.done and not reply.error else "No sources found."
        parts.append(f"<div class='rag-empty'>{note}</div>")
    cited = set(reply.citations)
    for n in sorted(reply.sources):
        hit = reply.sources[n].hit
        is_cited = n in cited
        badge = "<span class='rag-badge'>cited</span>" if is_cited else ""
        where = location(hit)
        preview = " ".join(hit.text.split())
        preview = preview[:110] + ("…" if len(preview) > 110 else "")
        scores = [
            f"<span class='rag-score' title='cosine similarity of the query and the chunk'>"
            f"cosine <b>{_num(hit.dense_score, 3)}</b></span>",
            f"<span class='rag-score' title='BM25 keyword relevance'>BM25 "
            f"<b>{_num(hit.bm25_score, 2)}</b></span>",
        ]
        if hit.rerank_score is not None:
            scores.append(f"<span class='rag-score' title='reranker relevance of the query and "
                          f"the chunk'>rerank <b>{_num(hit.rerank_score, 3)}</b></span>")
        order = "reranking" if hit.rerank_score is not None else "fusion"
        scores.append(f"<span class='rag-score' title='rank after {order} (fused score)'>rank "
                      f"<b>{hit.rank}</b> · fused {hit.score:.4f}</span>")
        parts.append(
            f"<div class='rag-source{' rag-cited' if is_cited else ''}' id='src-{n}'>"
            f"<div class='rag-source-title'><span class='rag-n'>[{n}]</span>"
            f"<span class='rag-file'>{esc(hit.source)}</span>"
            f"<span class='rag-where'>{esc(where)}</span>{badge}</div>"
            f"<div class='rag-scores'>{''.join(scores)}</div>"
            f"<details><summary>{esc(preview)}</summary>"
            f"<div class='rag-chunk'>{esc(hit.text)}</div></details></div>")
    for n in reply.unknown:
        parts.append(f"<div class='rag-warn'>{WARN} [{n}] does not match any source.</div>")
    parts.append("</div>")
    return "".join(parts)


def _docs_label(count: int) -> str:
    return f"{count} document{'s' if count != 1 else ''}"


def _results_table(results: list[IngestResult]) -> dict[str, Any]:
    rows = []
    for r in results:
        details = f"{r.seconds:.1f} s" if r.status in ("added", "replaced") else r.reason
        rows.append([r.source, STATUS_LABELS[r.status], "" if r.pages is None else r.pages,
                     r.chunks if r.status != "failed" else "", details])
    return {"headers": RESULT_HEADERS, "data": rows or [["", "", "", "", ""]]}


def _results_summary(results: list[IngestResult], seconds: float) -> str:
    counts = {s: sum(r.status == s for r in results) for s in STATUS_LABELS}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "No files"
    chunks = sum(r.chunks for r in results if r.status in ("added", "replaced"))
    return f"**{text}** — {chunks} new chunks in {seconds:.1f} s."


def _docs_table(docs: list[DocumentInfo]) -> dict[str, Any]:
    rows = [[d.source, d.kind, "" if d.pages is None else d.pages, d.chunks,
             datetime.fromtimestamp(d.added_at).strftime("%Y-%m-%d %H:%M")] for d in docs]
    return {"headers": DOC_HEADERS, "data": rows or [["", "", "", "", ""]]}


def _ingest_progress(progress: Callable[..., Any]) -> Callable[[Progress], None]:
    """Map ingest progress (file by file, page by page) onto a Gradio progress bar."""

    def report(p: Progress) -> None:
        if p.stage == "done":
            within = 1.0
        elif p.stage == "parsing":
            within = 0.02
        elif p.pages and p.page:
            within = 0.05 + 0.9 * min(p.page, p.pages) / p.pages
        else:
            within = 0.5
        detail = f" page {p.page}/{p.pages}" if p.pages and p.page else ""
        if p.chunks:
            detail += f", {p.chunks} chunks stored"
        total = max(p.total, 1)
        progress(min((p.index - 1 + within) / total, 1.0),
                 desc=f"{p.source} ({p.index}/{total}): {p.stage}{detail} …")

    return report


# -- the app's services ----------------------------------------------------------------------

class Services:
    """The knowledge base and answering pipeline of one app, opened once on first use."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.settings = kb.settings
        self._lock = threading.Lock()
        self._pipeline: AnswerPipeline | None = None

    def pipeline(self) -> AnswerPipeline:
        """The answering pipeline; the store and model are opened on the first call."""
        with self._lock:
            if self._pipeline is None:
                try:
                    self._pipeline = self.kb.pipeline
                except ConfigError as exc:
                    # The LLM settings are unusable: search still works, and every answer
                    # says what to configure (the pipeline's sources-only mode).
                    s = self.settings
                    self._pipeline = AnswerPipeline(
                        self.kb.retriever, None, top_k=s.top_k, effort=s.reasoning_effort,
                        context_tokens=s.llm_context_tokens,
                        max_output_tokens=s.llm_max_output_tokens, llm_hint=str(exc))
            return self._pipeline

    def warm_up(self) -> None:
        """Open the store, load the embedding model and a local reranker now, so the first
        page and the first question are fast."""
        started = time.perf_counter()
        try:
            retriever = self.pipeline().retriever
            retriever.store.count_chunks()
            warm = getattr(retriever.reranker, "warm_up", None)  # local models only
            if warm is not None:
                warm()
        except RagError as exc:
            log.warning("The knowledge base is not available yet: %s", exc)
            return
        log.info("Knowledge base ready in %.1f s", time.perf_counter() - started)

    def documents(self) -> list[DocumentInfo]:
        """Every document in the knowledge base."""
        return self.pipeline().retriever.store.list_documents()

    def ingest(self, files: list[dict[str, Any]],
               progress: Callable[[Progress], None] | None = None) -> list[IngestResult]:
        """Ingest uploaded files under their original names; unsupported types fail alone."""
        self.pipeline()
        results: dict[int, IngestResult] = {}
        documents = []
        order = []
        for i, f in enumerate(files):
            path = Path(f["path"])
            name = PurePath(f.get("orig_name") or path.name).name
            suffix = PurePath(name).suffix.lower()
            if suffix not in SUPPORTED_EXTENSIONS:
                kind = suffix or "no extension"
                results[i] = IngestResult(name, "failed", reason=(
                    f"unsupported file type ({kind}): upload PDF, Markdown or text files"))
                continue
            documents.append((name, partial(load, path, name)))
            order.append(i)
        if documents:
            for i, result in zip(order, self.kb.ingestor.ingest_documents(documents, progress),
                                 strict=True):
                results[i] = result
        return [results[i] for i in sorted(results)]

    def delete(self, names: list[str]) -> list[DocumentInfo]:
        """Delete documents by name."""
        store = self.pipeline().retriever.store
        deleted = [store.delete_document(name) for name in names]
        store.flush()
        return deleted

    def check_llm(self) -> str:
        """HTML naming the LLM endpoint and model, and whether it answers (short timeout)."""
        try:
            config = LLMConfig.from_settings(self.settings)
        except ConfigError as exc:
            return llm_card("", "", "bad", "Not configured", str(exc))
        probe = LLMClient(replace(config, timeout=STATUS_CHECK_TIMEOUT, max_retries=0))
        where = f"{config.base_url} ({config.provider_name})"
        try:
            probe.check()
        except ModelNotFound as exc:
            return llm_card(config.model, where, "warn", "Reachable, model missing", str(exc))
        except LLMError as exc:
            return llm_card(config.model, where, "bad", "Not reachable",
                            f"{exc} Search still works; answers need OPENAI_BASE_URL, "
                            "OPENAI_API_KEY and LLM_MODEL.")
        return llm_card(config.model, where, "ok", "Reachable", "")


def llm_card(model: str, where: str, state: str, title: str, detail: str) -> str:
    """The sidebar's LLM status: model, endpoint, a coloured dot and what to do."""
    esc = html.escape
    rows = ""
    if model:
        rows += f"<div class='rag-k'>Model</div><code>{esc(model)}</code>"
    if where:
        rows += f"<div class='rag-k'>Endpoint</div><code>{esc(where)}</code>"
    note = f"<div class='rag-llm-detail'>{esc(detail)}</div>" if detail else ""
    return (f"<div class='rag-llm-card'>{rows}<div class='rag-llm-state'><span "
            f"class='rag-dot rag-dot-{state}'></span>{esc(title)}</div>{note}</div>")


def _dropdown(names: list[str], current: list[str] | None) -> Any:
    keep = [n for n in (current or []) if n in names]
    return gr.Dropdown(choices=names, value=keep)


def _header(count: int | None = None, chunks: int | None = None) -> str:
    stats = ""
    if count is not None:
        stats = f"<span class='rag-stats'>{_docs_label(count)}"
        stats += f" · {chunks} chunks</span>" if chunks is not None else "</span>"
    return (f"<div class='rag-header'><span class='rag-logo'></span><div class='rag-title'>"
            f"<h1>{TITLE}</h1><p>{html.escape(TAGLINE)}</p></div>{stats}</div>")


# -- the app ---------------------------------------------------------------------------------

def build_app(kb: KnowledgeBase) -> gr.Blocks:
    """The Gradio app over a knowledge base: Chat and Upload tabs, settings sidebar, API."""
    services = Services(kb)
    s = kb.settings

    with gr.Blocks(title=f"{TITLE} — chat with your documents",
                   analytics_enabled=False) as demo:
        header = gr.HTML(_header())
        session = gr.State(ChatSession())

        with gr.Sidebar(label="Settings", open=True, width=320):
            gr.Markdown("#### Language model")
            llm_status = gr.HTML(llm_card("", "", "wait", "Checking the LLM endpoint…", ""),
                                 elem_id="rag-llm-status")
            recheck = gr.Button("Check again", size="sm", variant="secondary")
            gr.Markdown("#### Answer settings")
            effort = gr.Radio(list(EFFORTS), value=s.reasoning_effort, label="Reasoning effort",
                              elem_classes="rag-compact")
            top_k = gr.Slider(1, 20, value=s.top_k, step=1, label="Sources (top-k)")
            mode = gr.Radio([(MODE_LABELS[m], m) for m in MODES], value=s.retrieval_mode,
                            label="Retrieval", elem_classes="rag-compact",
                            info="Hybrid fuses dense (cosine) and BM25 (keyword) rankings.")
            doc_filter = gr.Dropdown(choices=[], value=[], multiselect=True,
                                     label="Search in", info="Empty: all documents.")
            agent = gr.Checkbox(value=False, label="Agentic search",
                                info="The model runs its own searches before answering.")

        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"), gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=420):
                    chatbot = gr.Chatbot(
                        label="Chat", height=470, placeholder=EMPTY_CHAT,
                        elem_classes="rag-chat", feedback_options=None,
                        buttons=["copy"], show_label=False)
                    status = gr.Markdown("", elem_classes="rag-status", elem_id="rag-chat-status")
                    with gr.Row(equal_height=True):
                        question = gr.Textbox(
                            placeholder="Ask a question about your documents…",
                            show_label=False, lines=1, max_lines=6, scale=8,
                            autofocus=True, container=False)
                        ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=72)
                    with gr.Row(elem_classes="rag-actions"):
                        stop_btn = gr.Button("Stop", size="sm", variant="secondary",
                                             min_width=60, scale=0)
                        clear_btn = gr.Button("Clear chat", size="sm", variant="secondary",
                                              min_width=90, scale=0)
                with gr.Column(scale=2, min_width=320):
                    sources = gr.HTML(sources_html(None), elem_id="rag-sources-panel")

            with gr.Tab("Upload", id="upload"):
                files = gr.File(
                    file_count="multiple", label="Add documents: PDF, Markdown or text",
                    file_types=sorted(SUPPORTED_EXTENSIONS), height=150)
                upload_status = gr.Markdown(
                    "Files are added as soon as they are dropped; unchanged files are skipped.",
                    elem_classes="rag-status")
                results = gr.Dataframe(value=_results_table([]), label="Upload results",
                                       interactive=False, elem_id="rag-results", wrap=True,
                                       column_widths=["34%", "14%", "10%", "10%", "32%"])
                gr.Markdown("### Documents in the knowledge base")
                docs_table = gr.Dataframe(value=_docs_table([]), interactive=False, wrap=True,
                                          elem_id="rag-docs",
                                          show_label=False,
                                          column_widths=["44%", "10%", "10%", "10%", "26%"])
                with gr.Row(elem_classes="rag-manage"):
                    delete_select = gr.Dropdown(
                        choices=[], value=[], multiselect=True, scale=4,
                        label="Select documents to delete (or click a row above)")
                    with gr.Column(scale=1, min_width=160):
                        delete_btn = gr.Button("Delete selected", variant="stop", size="sm")
                        refresh_btn = gr.Button("Refresh list", variant="secondary",
                                                size="sm")

        # -- handlers ------------------------------------------------------------------------
        def listing(selected: list[str] | None, deleting: list[str] | None) -> tuple:
            docs = services.documents()
            names = [d.source for d in docs]
            chunks = sum(d.chunks for d in docs)
            return (_docs_table(docs), _dropdown(names, selected), _dropdown(names, deleting),
                    _header(len(docs), chunks), gr.Chatbot(
                        placeholder=READY_CHAT.format(docs=_docs_label(len(docs)))
                        if docs else EMPTY_CHAT))

        listing_outputs = [docs_table, doc_filter, delete_select, header, chatbot]

        def on_load(selected: list[str] | None, deleting: list[str] | None) -> tuple:
            try:
                table, *rest = listing(selected, deleting)
            except RagError as exc:
                return (gr.skip(),) * 6 + (f"{WARN} {exc}", f"{WARN} {exc}")
            docs_empty = not table["data"][0][0]
            return (table, *rest, gr.Tabs(selected="upload" if docs_empty else "chat"),
                    gr.skip(), gr.skip())

        def refresh(selected: list[str] | None, deleting: list[str] | None) -> tuple:
            try:
                return (*listing(selected, deleting), "")
            except RagError as exc:
                return (gr.skip(),) * 5 + (f"{WARN} {exc}",)

        def ingest_ui(uploaded: list[dict[str, Any]] | None, selected: list[str] | None,
                      deleting: list[str] | None,
                      progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
            if not uploaded:
                return (gr.skip(),) * 8
            started = time.perf_counter()
            progress(0, desc="Starting …")
            try:
                done = services.ingest(uploaded, _ingest_progress(progress))
            except RagError as exc:
                return (gr.skip(), *(gr.skip(),) * 5, f"{WARN} {exc}", gr.skip())
            summary = _results_summary(done, time.perf_counter() - started)
            try:
                listed = listing(selected, deleting)
            except RagError as exc:
                return (_results_table(done), *(gr.skip(),) * 5, f"{WARN} {exc}", None)
            return (_results_table(done), *listed, summary, None)

        def delete_ui(names: list[str] | None, selected: list[str] | None) -> tuple:
            if not names:
                return (gr.skip(),) * 5 + ("Select documents to delete first.",)
            try:
                deleted = services.delete(list(names))
                listed = listing(selected, [])
            except RagError as exc:
                return (gr.skip(),) * 5 + (f"{WARN} {exc}",)
            text = ", ".join(f"{d.source} ({d.chunks} chunks)" for d in deleted)
            return (*listed, f"Deleted {text}.")

        def pick_document(deleting: list[str] | None, evt: gr.SelectData) -> Any:
            row = evt.row_value or []
            name = row[0] if row else ""
            if not name:
                return gr.skip()
            current = list(deleting or [])
            return current if name in current else [*current, name]

        def chat(text: str, state: ChatSession, effort_: str, k: float, mode_: str,
                 doc_ids: list[str] | None, agent_: bool) -> Iterator[tuple]:
            yield from _chat_stream(services, text, state, AskOptions(
                effort=effort_, k=int(k), mode=mode_, doc_ids=list(doc_ids or []) or None,
                agent=bool(agent_)))

        def select_reply(state: ChatSession, evt: gr.SelectData) -> str:
            index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
            return sources_html(state.reply_at(int(index)))

        def clear() -> tuple:
            return [], sources_html(None), "", ChatSession()

        # -- events --------------------------------------------------------------------------
        demo.load(on_load, [doc_filter, delete_select],
                  [*listing_outputs, tabs, upload_status, status], api_visibility="private",
                  show_progress="hidden")
        demo.load(services.check_llm, None, llm_status, api_visibility="private",
                  concurrency_id="status", concurrency_limit=4, show_progress="hidden")
        recheck.click(services.check_llm, None, llm_status, api_visibility="private",
                      concurrency_id="status", concurrency_limit=4)
        files.upload(ingest_ui, [files, doc_filter, delete_select],
                     [results, *listing_outputs, upload_status, files], preprocess=False,
                     api_visibility="private", concurrency_limit=1, concurrency_id="ingest",
                     show_progress_on=[results])
        refresh_btn.click(refresh, [doc_filter, delete_select],
                          [*listing_outputs, upload_status], api_visibility="private")
        delete_btn.click(delete_ui, [delete_select, doc_filter],
                         [*listing_outputs, upload_status], api_visibility="private",
                         concurrency_limit=1, concurrency_id="ingest")
        docs_table.select(pick_document, [delete_select], delete_select,
                          api_visibility="private")
        chat_inputs = [question, session, effort, top_k, mode, doc_filter, agent]
        chat_outputs = [chatbot, sources, status, session, question]
        asked = gr.on([question.submit, ask_btn.click], chat, chat_inputs, chat_outputs,
                      api_name="chat", api_visibility="undocumented",
                      concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat",
                      show_progress="hidden")
        stop_btn.click(None, None, None, cancels=[asked], api_visibility="private")
        chatbot.select(select_reply, [session], sources, api_visibility="private")
        clear_btn.click(clear, None, [chatbot, sources, status, session],
                        api_visibility="private")
        chatbot.clear(clear, None, [chatbot, sources, status, session],
                      api_visibility="private")

        # -- API and MCP tools ---------------------------------------------------------------
        _register_api(services)

    demo.queue(default_concurrency_limit=4)
    demo.rag_services = services  # type: ignore[attr-defined]  # read by launch()
    return demo


def _chat_stream(services: Services, text: str, state: ChatSession,
                 options: AskOptions) -> Iterator[tuple]:
    """Run one question through the pipeline, yielding chatbot, sources, status updates."""
    question = (text or "").strip()
    if not question:
        yield state.messages, gr.skip(), "Type a question first.", state, gr.skip()
        return
    msgs = state.messages
    reply = Reply(question, first=len(msgs), query=question)  # a rewrite replaces the query
    state.replies.append(reply)
    msgs.append({"role": "user", "content": question})
    reply.end = len(msgs)
    notes: list[str] = []
    answer_at: int | None = None
    thinking_at: int | None = None
    query_at: int | None = None
    answer = ""
    started = time.perf_counter()
    thought_started = started

    def status() -> str:
        return "  \n".join(notes)

    def add(message: dict[str, Any]) -> int:
        msgs.append(message)
        reply.end = len(msgs)
        return len(msgs) - 1

    def close_thinking() -> None:
        nonlocal thinking_at
        if thinking_at is not None:
            meta = msgs[thinking_at]["metadata"]
            meta["status"] = "done"
            meta["duration"] = round(time.perf_counter() - thought_started, 1)
            thinking_at = None

    def out(panel: bool = False) -> tuple:
        return (msgs, sources_html(reply) if panel else gr.skip(), status(), state, "")

    yield out(panel=True)
    try:
        events = services.pipeline().ask(question, list(state.turns), options)
        for event in events:
            if isinstance(event, QueryEvent):
                reply.query = event.query
                if event.query.strip().casefold() != question.casefold():
                    query_at = add({"role": "assistant", "content": "…", "metadata": {
                        "title": f"Searched for: {one_line(event.query)}", "status": "done"}})
                yield out(panel=True)
            elif isinstance(event, SourcesEvent):
                reply.sources.update({src.n: src for src in event.sources})
                if query_at is not None:
                    msgs[query_at]["content"] = hits_markdown(event.sources)
                yield out(panel=True)
            elif isinstance(event, ReasoningEvent):
                if thinking_at is None:
                    thought_started = time.perf_counter()
                    thinking_at = add({"role": "assistant", "content": "", "metadata": {
                        "title": "Thinking", "status": "pending"}})
                msgs[thinking_at]["content"] += event.text
                yield out()
            elif isinstance(event, ToolCallEvent):
                close_thinking()
                answer_at, answer = None, ""
                for src in event.sources:
                    reply.sources.setdefault(src.n, src)
                query = str(event.arguments.get("query", "")).strip() or event.name
                add({"role": "assistant", "content": hits_markdown(event.sources),
                     "metadata": {"title": f"Searched: {one_line(query)}", "status": "done"}})
                yield out(panel=True)
            elif isinstance(event, AnswerEvent):
                close_thinking()
                answer += event.text
                content = link_citations(answer, set(reply.sources))
                if answer_at is None:
                    answer_at = add({"role": "assistant", "content": content})
                else:
                    msgs[answer_at]["content"] = content
                yield out()
            elif isinstance(event, NoticeEvent):
                notes.append(f"ℹ {event.message}")
                yield out()
            elif isinstance(event, DoneEvent):
                close_thinking()
                reply.citations, reply.unknown = event.citations, event.unknown_citations
                reply.done = True
                notes.append(_done_note(event))
                if answer.strip():
                    state.turns.append(Turn(question, answer))
                yield out(panel=True)
            elif isinstance(event, ErrorEvent):
                close_thinking()
                reply.error = event.message
                hint = ("\n\nThe sources found for your question are listed beside the chat."
                        if reply.sources else "")
                add({"role": "assistant", "content": f"{WARN} {event.message}{hint}"})
                yield out(panel=True)
    except RagError as exc:
        close_thinking()
        reply.error = str(exc)
        add({"role": "assistant", "content": f"{WARN} {exc}"})
    reply.done = True
    close_thinking()
    yield out(panel=True)


def _done_note(event: DoneEvent) -> str:
    parts = []
    total = event.timings.get("total")
    if total is not None:
        parts.append(f"answered in {total:.1f} s")
    first = event.timings.get("first_token")
    if first is not None:
        parts.append(f"first token after {first:.1f} s")
    if event.usage:
        parts.append(f"{event.usage.get('total_tokens', 0)} tokens")
    if event.citations:
        parts.append("cites " + ", ".join(f"[{n}]" for n in event.citations))
    note = "✓ " + (" · ".join(parts) or "done")
    if event.unknown_citations:
        bad = ", ".join(f"[{n}]" for n in event.unknown_citations)
        verb = "does" if len(event.unknown_citations) == 1 else "do"
        note += f"  \n{WARN} {bad} {verb} not match any source."
    return note


def _register_api(services: Services) -> None:
    """The public /ingest, /search and /ask endpoints (also MCP tools when RAG_MCP is on)."""
    s = services.settings

    def ingest(files: list[FileData]) -> list[dict]:
        """Add documents (PDF, Markdown, plain text) to the knowledge base.

        Each file is stored under its original file name; a file whose content is already in
        the knowledge base is skipped, and a changed file replaces its earlier version.

        Args:
            files: The files to add.

        Returns:
            Per file: source, status (added/replaced/skipped/failed), pages, chunks, reason.
        """
        try:
            done = services.ingest([dict(f) for f in files])
        except RagError as exc:
            raise gr.Error(str(exc)) from exc
        return [r.to_dict() for r in done]

    def search(query: str, k: int = s.top_k, mode: str = s.retrieval_mode,
               documents: list[str] | None = None) -> list[dict]:
        """Search the knowledge base and return the best-matching passages with their scores.

        Args:
            query: What to look for, in natural language or keywords.
            k: How many passages to return (1-50).
            mode: Ranking: "hybrid" (dense and BM25 fused), "dense" (cosine) or "bm25".
            documents: Document names to search in; empty or omitted searches them all.

        Returns:
            Passages by rank: source, page, heading, text, score, dense_score, bm25_score,
            rerank_score (null when no reranker ran).
        """
        if mode not in MODES:
            raise gr.Error(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        try:
            retriever = services.pipeline().retriever
            hits = retriever.search(query, max(1, min(int(k), 50)), mode=mode,
                                    doc_ids=list(documents or []) or None)
        except RagError as exc:
            raise gr.Error(str(exc)) from exc
        return [h.to_dict() for h in hits]

    def ask(question: str, effort: str = s.reasoning_effort, k: int = s.top_k,
            mode: str = s.retrieval_mode, agent: bool = False,
            documents: list[str] | None = None) -> Iterator[tuple[str, dict]]:
        """Answer a question from the knowledge base with gpt-oss, citing sources as [n].

        Streams the answer as it grows. Each item is (answer so far, details); details holds
        the numbered sources (with cosine and BM25 scores) and, once the answer is complete,
        done=true with the cited source numbers and any citation that matches no source.

        Args:
            question: The question to answer.
            effort: Reasoning effort of gpt-oss: "low", "medium" or "high".
            k: How many sources to retrieve (1-50).
            mode: Retrieval mode: "hybrid", "dense" or "bm25".
            agent: If true, the model runs its own searches before answering.
            documents: Document names to search in; empty or omitted searches them all.

        Returns:
            The answer so far, with [n] citations
            Details: query, sources, reasoning, error; once done, citations and timings.
        """
        if effort not in EFFORTS:
            raise gr.Error(f"effort must be one of {', '.join(EFFORTS)}, not {effort!r}")
        if mode not in MODES:
            raise gr.Error(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        options = AskOptions(effort=effort, k=max(1, min(int(k), 50)), mode=mode,
                             doc_ids=list(documents or []) or None, agent=bool(agent))
        yield from _ask_stream(services, question, options)

    gr.api(ingest, api_name="ingest", concurrency_limit=1, concurrency_id="ingest")
    gr.api(search, api_name="search", concurrency_limit=CHAT_CONCURRENCY,
           concurrency_id="search")
    gr.api(ask, api_name="ask", concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat")


def _ask_stream(services: Services, question: str,
                options: AskOptions) -> Iterator[tuple[str, dict]]:
    """The /ask stream: (answer so far, details) after every event."""
    answer = ""
    details: dict[str, Any] = {"query": question, "sources": [], "reasoning": "",
                               "searches": [], "notices": [], "error": None, "done": False,
                               "citations": [], "unknown_citations": [], "timings": {},
                               "usage": None}
    known: dict[int, Source] = {}

    def listed() -> list[dict]:
        return [known[n].to_dict() for n in sorted(known)]

    try:
        pipeline = services.pipeline()
        for event in pipeline.ask(question, [], options):
            if isinstance(event, QueryEvent):
                details["query"] = event.query
            elif isinstance(event, SourcesEvent):
                known.update({src.n: src for src in event.sources})
                details["sources"] = listed()
            elif isinstance(event, ReasoningEvent):
                details["reasoning"] += event.text
            elif isinstance(event, ToolCallEvent):
                answer = ""
                for src in event.sources:
                    known.setdefault(src.n, src)
                details["sources"] = listed()
                details["searches"].append({"name": event.name, "arguments": event.arguments,
                                            "sources": [src.n for src in event.sources]})
            elif isinstance(event, AnswerEvent):
                answer += event.text
            elif isinstance(event, NoticeEvent):
                details["notices"].append(event.message)
            elif isinstance(event, DoneEvent):
                details.update(citations=event.citations,
                               unknown_citations=event.unknown_citations,
                               timings=event.timings, usage=event.usage)
            elif isinstance(event, ErrorEvent):
                details["error"] = event.message
            yield answer, dict(details)
    except RagError as exc:
        details["error"] = str(exc)
    details["done"] = True
    yield answer, details


# -- entry points ----------------------------------------------------------------------------

def create_demo(settings: Settings | None = None) -> gr.Blocks:
    """The app for these settings (default: the environment), not yet launched."""
    settings = settings or Settings.from_env()
    kb = KnowledgeBase(settings)
    if settings.rag_demo_docs:
        _load_demo_docs(kb, Path(settings.rag_demo_docs))
    return build_app(kb)


def _load_demo_docs(kb: KnowledgeBase, folder: Path) -> None:
    """Ingest the demo folder into an empty knowledge base (RAG_DEMO_DOCS)."""
    try:
        if not kb.store.is_empty():
            return
        if not folder.is_dir():
            raise ConfigError(f"RAG_DEMO_DOCS={folder} is not a folder.")
        results = kb.ingestor.ingest_paths([folder])
    except RagError as exc:
        log.warning("Demo documents were not loaded: %s", exc)
        return
    added = sum(r.status == "added" for r in results)
    log.info("Loaded %d demo documents from %s", added, folder)


def auth_from(value: str) -> tuple[str, str] | None:
    """RAG_AUTH="user:password" as a (user, password) pair; empty means no login."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError("RAG_AUTH must look like user:password")
    return user, password


def launch(demo: gr.Blocks, **overrides: Any) -> Any:
    """Serve the app, with a login if RAG_AUTH is set and MCP tools if RAG_MCP is on."""
    # No host or port here: Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself and
    # defaults to 127.0.0.1:7860.
    services: Services = demo.rag_services  # type: ignore[attr-defined]
    settings = services.settings
    auth = auth_from(settings.rag_auth)
    services.warm_up()
    theme = gr.themes.Default(
        primary_hue="indigo", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])
    kwargs: dict[str, Any] = dict(auth=auth,
                                  mcp_server=settings.rag_mcp, theme=theme, css=CSS, head=HEAD,
                                  footer_links=["api"])
    kwargs.update(overrides)
    return demo.launch(**kwargs)


def main() -> None:
    """Read the settings once and serve the app until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        auth_from(settings.rag_auth)
        demo = create_demo(settings)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    launch(demo)
