"""The Upload tab's handlers: list, upload, delete (after a confirmation) and refresh.

Each handler returns a `{component: value}` dict of what it changes; components it leaves out
stay as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from rag.errors import RagError
from rag.ingest import Progress
from rag.schema import DocumentInfo
from rag.ui.layout import Widgets
from rag.ui.render import WARN
from rag.ui.services import INGEST_CONCURRENCY, Services
from rag.ui.tables import (
    chat_placeholder,
    delete_question,
    deleted_note,
    docs_table,
    header_html,
    results_summary,
    results_table,
)

Updates = dict[Any, Any]


def ingest_progress(progress: Callable[..., Any]) -> Callable[[Progress], None]:
    """Ingest progress (a fraction of the whole job, and a line saying where it is) onto a
    Gradio progress bar."""

    def report(p: Progress) -> None:
        progress(p.fraction, desc=p.describe())

    return report


def _kept(names: list[str], current: list[str] | None) -> gr.Dropdown:
    return gr.Dropdown(choices=names, value=[n for n in (current or []) if n in names])


class Library:
    """The handlers of the document list, bound to the page's components."""

    def __init__(self, services: Services, widgets: Widgets) -> None:
        self.services = services
        self.w = widgets
        up = widgets.upload
        self.listing_outputs = [up.docs_table, widgets.side.doc_filter, up.delete_select,
                                widgets.header, widgets.chat.chatbot]

    def listing(self, kb: str | None, selected: list[str] | None, deleting: list[str] | None,
                docs: list[DocumentInfo] | None = None) -> Updates:
        """The document list, both document pickers, the header's counts and the chat's
        placeholder, as the knowledge base `kb` is now (or as `docs` says)."""
        docs = self.services.documents(kb) if docs is None else docs
        names = [d.source for d in docs]
        return {self.w.upload.docs_table: docs_table(docs),
                self.w.side.doc_filter: _kept(names, selected),
                self.w.upload.delete_select: _kept(names, deleting),
                self.w.header: header_html(len(docs), sum(d.chunks for d in docs),
                                           self._label(kb)),
                self.w.chat.chatbot: gr.Chatbot(placeholder=chat_placeholder(len(docs)))}

    def _label(self, kb: str | None) -> str:
        """The knowledge base's name in the header, once there are several."""
        return self.services.kb_label(kb) if len(self.services.kbs.list()) > 1 else ""

    def on_load(self, kb: str | None, selected: list[str] | None,
                deleting: list[str] | None) -> Updates:
        """A new page: the listing, and the Upload tab first while the knowledge base is empty."""
        try:
            docs = self.services.documents(kb)
        except RagError as exc:
            return {self.w.upload.upload_status: f"{WARN} {exc}",
                    self.w.chat.status: f"{WARN} {exc}"}
        return {**self.listing(kb, selected, deleting, docs),
                self.w.tabs: gr.Tabs(selected="chat" if docs else "upload")}

    def refresh(self, kb: str | None, selected: list[str] | None,
                deleting: list[str] | None) -> Updates:
        """The listing again (another process may have changed the knowledge base)."""
        try:
            return {**self.listing(kb, selected, deleting), self.w.upload.delete_status: ""}
        except RagError as exc:
            return {self.w.upload.delete_status: f"{WARN} {exc}"}

    def upload(self, uploaded: list[dict[str, Any]] | None, kb: str | None,
               selected: list[str] | None, deleting: list[str] | None, request: gr.Request,
               progress: gr.Progress = gr.Progress()) -> Updates:  # noqa: B008
        """Ingest dropped files; the results table, a summary and the new listing. The Stop
        button ends the run after the current file (stop_upload)."""
        up = self.w.upload
        if not uploaded:  # the files were cleared: nothing changes
            return gr.skip()
        started = time.perf_counter()
        progress(0, desc="Starting …")
        try:
            done = self.services.ingest(uploaded, ingest_progress(progress),
                                        session=request.session_hash,
                                        user=request.username or None, kb=kb)
        except RagError as exc:
            return {up.upload_status: f"{WARN} {exc}"}
        updates: Updates = {up.results: results_table(done), up.files: None,
                            up.upload_status: results_summary(done,
                                                              time.perf_counter() - started)}
        try:
            updates.update(self.listing(kb, selected, deleting))
        except RagError as exc:
            updates[up.upload_status] = f"{WARN} {exc}"
        return updates

    def stop_upload(self, request: gr.Request) -> Updates:
        """Stop this browser's running upload after its current file."""
        stopping = self.services.stop_ingest(request.session_hash or "")
        return {self.w.upload.upload_status: "Stopping after the current file …" if stopping
                else "Nothing is being added."}

    def ask_delete(self, names: list[str] | None, kb: str | None) -> Updates:
        """Show what would be deleted, with Delete and Cancel, beside the delete button."""
        up = self.w.upload
        if not names:
            return {up.confirm_row: gr.Row(visible=False),
                    up.delete_status: "Select documents to delete first."}
        try:
            docs = {d.source: d for d in self.services.documents(kb)}
        except RagError as exc:
            return {up.delete_status: f"{WARN} {exc}"}
        chosen = [docs[n] for n in names if n in docs]
        if not chosen:
            return {up.delete_status: "Those documents are no longer in the knowledge base."}
        return {up.confirm_text: delete_question(chosen), up.confirm_row: gr.Row(visible=True),
                up.delete_status: ""}

    def delete(self, names: list[str] | None, kb: str | None, selected: list[str] | None,
               request: gr.Request) -> Updates:
        """Delete the confirmed documents; the message says what was deleted."""
        up = self.w.upload
        hide = {up.confirm_row: gr.Row(visible=False)}
        if not names:
            return {**hide, up.delete_status: "Select documents to delete first."}
        try:
            deleted = self.services.delete(list(names), user=request.username or None, kb=kb)
            listed = self.listing(kb, selected, [])
        except RagError as exc:
            return {**hide, up.delete_status: f"{WARN} {exc}"}
        return {**listed, **hide, up.delete_status: deleted_note(deleted)}

    def cancel_delete(self) -> Updates:
        """Hide the confirmation; nothing is deleted."""
        up = self.w.upload
        return {up.confirm_row: gr.Row(visible=False), up.delete_status: "Nothing deleted."}

    def pick_document(self, deleting: list[str] | None, evt: gr.SelectData) -> Any:
        """A click on a row of the document list adds that document to the delete selection."""
        row = evt.row_value or []
        name = row[0] if row else ""
        if not name:
            return gr.skip()
        current = list(deleting or [])
        return current if name in current else [*current, name]

    def refresh_after(self, event: gr.events.Dependency) -> None:
        """List the picked knowledge base's documents after an event that changed it."""
        w = self.w
        event.then(self.refresh, [w.side.kbs.picker, w.side.doc_filter, w.upload.delete_select],
                   [*self.listing_outputs, w.upload.delete_status], api_visibility="private",
                   show_progress="hidden")

    def wire(self, after: gr.events.Dependency) -> gr.events.Dependency:
        """Connect the handlers to the page's events (inside the gr.Blocks context); the page's
        listing runs after `after` (the knowledge-base picker's load). Returns the listing's
        event, for handlers that must run after it."""
        w, up, private = self.w, self.w.upload, {"api_visibility": "private"}
        pickers = [w.side.doc_filter, up.delete_select]
        kb = w.side.kbs.picker
        loaded = after.then(self.on_load, [kb, *pickers],
                           [*self.listing_outputs, w.tabs, up.upload_status, w.chat.status],
                           show_progress="hidden", **private)
        up.files.upload(self.upload, [up.files, kb, *pickers],
                        [up.results, *self.listing_outputs, up.upload_status, up.files],
                        preprocess=False, concurrency_limit=INGEST_CONCURRENCY,
                        concurrency_id="ingest", show_progress_on=[up.results], **private)
        # not queued: it must run while the uploads it stops hold "ingest" slots
        up.stop_btn.click(self.stop_upload, None, [up.upload_status], queue=False, **private)
        up.refresh_btn.click(self.refresh, [kb, *pickers],
                             [*self.listing_outputs, up.delete_status], **private)
        up.delete_btn.click(self.ask_delete, [up.delete_select, kb],
                            [up.confirm_text, up.confirm_row, up.delete_status], **private)
        up.confirm_btn.click(self.delete, [up.delete_select, kb, w.side.doc_filter],
                             [*self.listing_outputs, up.confirm_row, up.delete_status],
                             concurrency_limit=INGEST_CONCURRENCY, concurrency_id="ingest",
                             **private)
        up.cancel_btn.click(self.cancel_delete, None, [up.confirm_row, up.delete_status],
                            **private)
        up.docs_table.select(self.pick_document, [up.delete_select], up.delete_select,
                             **private)
        return loaded
