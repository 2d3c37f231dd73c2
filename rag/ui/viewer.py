"""The passage viewer beside the chat: a click on [n] or on a source card's "View" opens the
cited passage in its document (rag.viewer): a PDF page with the passage boxed, previous and
next page, zoom, or the section's text with the passage marked; "Open original" downloads the
kept file. Only for users who may read that knowledge base.

The browser asks by writing "kb<TAB>chunk id<TAB>nonce" into a hidden textbox (static/app.js):
from a card, a citation link, or a link `?view=CHUNK&kb=NAME` (the API's Markdown).
"""

from __future__ import annotations

import base64
import html
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import gradio as gr

from rag.choices import Role
from rag.errors import RagError
from rag.schema import Hit
from rag.ui.chat import ChatSession
from rag.ui.render import WARN
from rag.ui.services import Services
from rag.viewer.pdf_page import BASE_WIDTH
from rag.viewer.view import Passage, open_passage

ZOOMS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
Updates = dict[object, object]


@dataclass
class ViewerWidgets:
    """The viewer's components."""

    box: gr.Group
    title: gr.HTML
    body: gr.HTML
    prev_btn: gr.Button
    next_btn: gr.Button
    zoom_out: gr.Button
    zoom_in: gr.Button
    download: gr.DownloadButton
    close_btn: gr.Button
    request: gr.Textbox
    state: gr.State


@dataclass(frozen=True)
class ViewState:
    """What the viewer shows: which chunk, of which knowledge base, on which page, how big."""

    kb: str | None = None
    hit: Hit | None = None
    page: int | None = None
    zoom: float = 1.0
    original: str = ""  # the kept file offered for download now


def build_viewer() -> ViewerWidgets:
    """The viewer's components (inside a column of the gr.Blocks), hidden until opened."""
    with gr.Group(visible=False, elem_id="rag-viewer") as box:
        title = gr.HTML("", elem_id="rag-viewer-title")
        with gr.Row(elem_classes="rag-viewer-tools"):
            prev_btn = gr.Button("◀ Page", size="sm", min_width=60, elem_id="rag-viewer-prev")
            next_btn = gr.Button("Page ▶", size="sm", min_width=60, elem_id="rag-viewer-next")
            zoom_out = gr.Button("−", size="sm", min_width=36, elem_id="rag-viewer-zoom-out")
            zoom_in = gr.Button("+", size="sm", min_width=36, elem_id="rag-viewer-zoom-in")
            download = gr.DownloadButton("Open original", size="sm", min_width=100,
                                         elem_id="rag-viewer-download", visible=False)
            close_btn = gr.Button("Close", size="sm", min_width=60, elem_id="rag-viewer-close")
        body = gr.HTML("", elem_id="rag-viewer-body")
    request = gr.Textbox(visible="hidden", elem_id="rag-view-request")
    return ViewerWidgets(box, title, body, prev_btn, next_btn, zoom_out, zoom_in, download,
                         close_btn, request, gr.State(ViewState()))


def page_html(passage: Passage) -> str:
    """A PDF page as an image with a box over each line of the passage (CSS percentages, so
    they stay in place at any zoom)."""
    view = passage.page
    assert view is not None
    data = base64.b64encode(view.image).decode("ascii")
    boxes = "".join(
        f"<div class='rag-hl' style='left:{b.left * 100:.3f}%;top:{b.top * 100:.3f}%;"
        f"width:{b.width * 100:.3f}%;height:{b.height * 100:.3f}%'></div>" for b in view.boxes)
    missing = ("" if view.boxes else
               f"<div class='rag-warn'>{WARN} The passage was not found on this page.</div>")
    share = 100 * view.width / BASE_WIDTH  # zoom 1 fits the panel's width
    return (f"{missing}<div class='rag-page-scroll'><div class='rag-page' "
            f"style='width:{share:.0f}%' data-page='{view.page}'>"
            f"<img src='data:{view.mime};base64,{data}' width='{view.width}' "
            f"height='{view.height}' alt='page {view.page}'>{boxes}</div></div>")


def text_html(passage: Passage) -> str:
    """The section's text, escaped, with the passage marked."""
    parts = [f"<mark class='rag-passage'>{html.escape(p.text)}</mark>" if p.cited
             else f"<span>{html.escape(p.text)}</span>" for p in passage.pieces]
    note = f"<div class='rag-empty'>{html.escape(passage.note)}</div>" if passage.note else ""
    return f"{note}<div class='rag-section-text'>{' '.join(parts)}</div>"


def title_html(passage: Passage) -> str:
    """The document's name and where the passage is."""
    return (f"<div class='rag-viewer-head'><span class='rag-file'>"
            f"{html.escape(passage.title)}</span> <span class='rag-where'>"
            f"{html.escape(passage.where)}</span></div>")


def download_copy(original: Path, name: str) -> str:
    """A copy of the kept file under the document's own file name, in a folder of its own
    in the temp dir (Gradio serves it from its cache as a download)."""
    folder = Path(tempfile.mkdtemp(prefix="rag-original-"))
    target = folder / (PurePosixPath(name).name or original.name)
    try:
        target.hardlink_to(original)
    except OSError:  # another file system: copy it
        shutil.copyfile(original, target)
    return str(target)


class Viewer:
    """The viewer's handlers."""

    def __init__(self, services: Services, widgets: ViewerWidgets) -> None:
        self.services = services
        self.w = widgets

    def open(self, value: str, session: ChatSession, request: gr.Request) -> Updates:
        """Open the chunk the browser asked for (kb, chunk id, nonce)."""
        parts = (value or "").split("\t")
        if len(parts) < 2 or not parts[1]:
            return {}
        kb = parts[0] or session.kb
        user = getattr(request, "username", None)
        try:
            self.services.require(user, Role.VIEWER, kb)
            hit = self._find(session, kb, parts[1])
        except RagError as exc:
            return self._failed(str(exc))
        if hit is None:
            return self._failed("That passage is no longer in the knowledge base (its "
                                "document was deleted or replaced).")
        return self._show(ViewState(kb, hit, None, 1.0))

    def _find(self, session: ChatSession, kb: str | None, chunk_id: str) -> Hit | None:
        """The hit from this chat's answers if it is one of them, else from the store."""
        if (kb or None) == (session.kb or None):
            for reply in reversed(session.replies):
                for source in reply.answer.sources.values():
                    if source.hit.chunk_id == chunk_id:
                        return source.hit
        return self.services.kbs.open(kb).store.get_chunk(chunk_id)

    def _show(self, state: ViewState, current: ViewState | None = None) -> Updates:
        w = self.w
        assert state.hit is not None
        try:
            passage = open_passage(self.services.kbs.open(state.kb), state.hit, page=state.page,
                                   zoom=state.zoom)
        except RagError as exc:
            return self._failed(str(exc))
        pdf = passage.page is not None
        state = replace(state, page=passage.page.page if pdf else None)
        updates: Updates = {
            w.box: gr.Group(visible=True), w.title: title_html(passage),
            w.body: page_html(passage) if pdf else text_html(passage),
            w.prev_btn: gr.Button(visible=pdf, interactive=pdf and state.page > 1),
            w.next_btn: gr.Button(visible=pdf, interactive=pdf and state.page
                                  < passage.page.pages),
            w.zoom_out: gr.Button(visible=pdf, interactive=state.zoom > ZOOMS[0]),
            w.zoom_in: gr.Button(visible=pdf, interactive=state.zoom < ZOOMS[-1])}
        if passage.original is None:
            updates[w.download] = gr.DownloadButton(visible=False, value=None)
        elif current is None or current.original != str(passage.original):
            updates[w.download] = gr.DownloadButton(
                visible=True, value=download_copy(passage.original, passage.hit.source))
        updates[w.state] = replace(state, original=str(passage.original or ""))
        return updates

    def _failed(self, message: str) -> Updates:
        return {self.w.box: gr.Group(visible=True), self.w.title: "",
                self.w.body: f"<div class='rag-warn'>{WARN} {html.escape(message)}</div>",
                self.w.download: gr.DownloadButton(visible=False, value=None)}

    def turn(self, state: ViewState, step: int) -> Updates:
        """Show the previous (-1) or next (+1) page."""
        if state.hit is None or state.page is None:
            return {}
        return self._show(replace(state, page=max(1, state.page + step)), state)

    def zoom(self, state: ViewState, step: int) -> Updates:
        """One zoom step smaller (-1) or larger (+1)."""
        if state.hit is None:
            return {}
        at = min(range(len(ZOOMS)), key=lambda i: abs(ZOOMS[i] - state.zoom))
        zoom = ZOOMS[max(0, min(len(ZOOMS) - 1, at + step))]
        return self._show(replace(state, zoom=zoom), state)

    def close(self) -> Updates:
        """Hide the viewer."""
        return {self.w.box: gr.Group(visible=False), self.w.state: ViewState()}

    def wire(self, session: gr.State) -> None:
        """Connect the handlers (inside the gr.Blocks context)."""
        w, private = self.w, {"api_visibility": "private", "show_progress": "hidden"}
        shown = [w.box, w.title, w.body, w.state, w.prev_btn, w.next_btn, w.zoom_out,
                 w.zoom_in, w.download]
        w.request.change(self.open, [w.request, session], shown, **private)
        w.prev_btn.click(lambda s: self.turn(s, -1), [w.state], shown, **private)
        w.next_btn.click(lambda s: self.turn(s, 1), [w.state], shown, **private)
        w.zoom_out.click(lambda s: self.zoom(s, -1), [w.state], shown, **private)
        w.zoom_in.click(lambda s: self.zoom(s, 1), [w.state], shown, **private)
        w.close_btn.click(self.close, None, [w.box, w.state], **private)
