"""Rendering for the Upload tab and the frame: header, LLM card, result and document tables.

Pure functions from plain values to HTML, Markdown or Gradio table values.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from rag.ingest import IngestResult
from rag.schema import DocumentInfo
from rag.ui.render import md_text

TITLE = "gpt-oss-rag"
TAGLINE = "Chat with your documents: answers from gpt-oss, each claim cited to its source."
EMPTY_CHAT = ("### Upload documents in the Upload tab, then ask.\n"
              "PDF, Markdown and text files are split into passages and indexed in Milvus; "
              "every answer cites the passages it used.")
READY_CHAT = ("### Ask anything about your documents.\n"
              "{docs} in the knowledge base. Answers cite their sources as [1], [2], …; "
              "click a reply to see its sources.")
STATUS_LABELS = {"added": "✓ added", "replaced": "↻ replaced", "skipped": "– skipped",
                 "failed": "✗ failed"}
RESULT_HEADERS = ["File", "Result", "Pages", "Chunks", "Details"]
DOC_HEADERS = ["Document", "Kind", "Pages", "Chunks", "Added", "Notes"]
EMPTY_ROW = ["", "", "", "", ""]
EMPTY_DOC_ROW = [*EMPTY_ROW, ""]


def docs_label(count: int) -> str:
    """'1 document', '3 documents'."""
    return f"{count} document{'s' if count != 1 else ''}"


def header_html(count: int | None = None, chunks: int | None = None, kb: str = "") -> str:
    """The page header: logo, title, tagline and, once known, the knowledge base's name and
    size."""
    stats = ""
    if count is not None:
        where = f"{html.escape(kb)}: " if kb else ""
        stats = f"<span class='rag-stats'>{where}{docs_label(count)}"
        stats += f" · {chunks} chunks</span>" if chunks is not None else "</span>"
    return (f"<div class='rag-header'><span class='rag-logo'></span><div class='rag-title'>"
            f"<h1>{TITLE}</h1><p>{html.escape(TAGLINE)}</p></div>{stats}</div>")


def chat_placeholder(count: int) -> str:
    """What the empty chat says: upload first, or ask."""
    return READY_CHAT.format(docs=docs_label(count)) if count else EMPTY_CHAT


def llm_card(model: str, where: str, state: str, title: str, detail: str) -> str:
    """The sidebar's LLM status: model, endpoint, a coloured dot (ok, bad, warn, wait), and
    what to do."""
    esc = html.escape
    rows = ""
    if model:
        rows += f"<div class='rag-k'>Model</div><code>{esc(model)}</code>"
    if where:
        rows += f"<div class='rag-k'>Endpoint</div><code>{esc(where)}</code>"
    note = f"<div class='rag-llm-detail'>{esc(detail)}</div>" if detail else ""
    return (f"<div class='rag-llm-card'>{rows}<div class='rag-llm-state'><span "
            f"class='rag-dot rag-dot-{state}'></span>{esc(title)}</div>{note}</div>")


def results_table(results: list[IngestResult]) -> dict[str, Any]:
    """One row per uploaded file: its result, pages, chunks and seconds or reason."""
    rows = []
    for r in results:
        details = f"{r.seconds:.1f} s" if r.status in ("added", "replaced") else r.reason
        rows.append([r.source, STATUS_LABELS[r.status], "" if r.pages is None else r.pages,
                     r.chunks if r.status != "failed" else "", details])
    return {"headers": RESULT_HEADERS, "data": rows or [EMPTY_ROW]}


def results_summary(results: list[IngestResult], seconds: float) -> str:
    """'**2 added, 1 failed** — 40 new chunks in 3.2 s.'"""
    counts = {s: sum(r.status == s for r in results) for s in STATUS_LABELS}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "No files"
    chunks = sum(r.chunks for r in results if r.status in ("added", "replaced"))
    return f"**{text}** — {chunks} new chunks in {seconds:.1f} s."


def docs_table(docs: list[DocumentInfo]) -> dict[str, Any]:
    """One row per document in the knowledge base."""
    rows = [[d.source, d.kind, "" if d.pages is None else d.pages, d.chunks,
             datetime.fromtimestamp(d.added_at).strftime("%Y-%m-%d %H:%M"), d.notes]
            for d in docs]
    return {"headers": DOC_HEADERS, "data": rows or [EMPTY_DOC_ROW]}


def delete_question(docs: list[DocumentInfo]) -> str:
    """The confirmation asked before deleting documents."""
    names = ", ".join(f"**{md_text(d.source)}** ({d.chunks} chunks)" for d in docs)
    return f"Delete {names}? This cannot be undone."


def deleted_note(docs: list[DocumentInfo]) -> str:
    """What was deleted."""
    return "Deleted " + ", ".join(f"{md_text(d.source)} ({d.chunks} chunks)" for d in docs) + "."
