"""The app: the layout, its handlers and the API, put together in one gr.Blocks."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from rag.kb import KnowledgeBase
from rag.pipeline import AskOptions
from rag.ui.api import register_api
from rag.ui.chat import ChatSession, chat_stream
from rag.ui.layout import Widgets, build_layout
from rag.ui.library import Library, Updates
from rag.ui.render import sources_html
from rag.ui.services import CHAT_CONCURRENCY, Services
from rag.ui.tables import TITLE


def build_app(kb: KnowledgeBase) -> gr.Blocks:
    """The Gradio app over a knowledge base: Chat and Upload tabs, settings sidebar, API."""
    services = Services(kb)
    with gr.Blocks(title=f"{TITLE} — chat with your documents",
                   analytics_enabled=False) as demo:
        widgets = build_layout(kb.settings)
        demo.load(services.check_llm, None, widgets.side.llm_status, api_visibility="private",
                  concurrency_id="status", concurrency_limit=4, show_progress="hidden")
        widgets.side.recheck.click(services.check_llm, None, widgets.side.llm_status,
                                   api_visibility="private", concurrency_id="status",
                                   concurrency_limit=4)
        Library(services, widgets).wire(demo)
        Chat(services, widgets).wire()
        register_api(services)
    demo.queue(default_concurrency_limit=4)
    demo.rag_services = services  # type: ignore[attr-defined]  # read by launch()
    return demo


class Chat:
    """The Chat tab's handlers, bound to the page's components."""

    def __init__(self, services: Services, widgets: Widgets) -> None:
        self.services = services
        self.w = widgets

    def ask(self, text: str, session: ChatSession, effort: str, k: float, mode: str,
            doc_ids: list[str] | None, agent: bool) -> Iterator[Updates]:
        """Stream one answer into the chat, the sources panel and the status line."""
        c = self.w.chat
        options = AskOptions(effort=effort, k=int(k), mode=mode,
                             doc_ids=list(doc_ids or []) or None, agent=bool(agent))
        for update in chat_stream(self.services, text, session, options):
            shown: Updates = {c.chatbot: update.messages, c.status: update.status,
                              self.w.session: session, c.question: ""}
            if update.panel is not None:
                shown[c.sources] = update.panel
            yield shown

    def select_reply(self, session: ChatSession, evt: gr.SelectData) -> str:
        """A click on a message shows the sources of the reply it belongs to."""
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        reply = session.reply_at(int(index))
        return sources_html(reply.answer if reply else None)

    def clear(self) -> Updates:
        """An empty chat with a new session."""
        c = self.w.chat
        return {c.chatbot: [], c.sources: sources_html(None), c.status: "",
                self.w.session: ChatSession()}

    def wire(self) -> None:
        """Connect the handlers to the page's events (inside the gr.Blocks context)."""
        c, side, private = self.w.chat, self.w.side, {"api_visibility": "private"}
        inputs = [c.question, self.w.session, side.effort, side.top_k, side.mode,
                  side.doc_filter, side.agent]
        outputs = [c.chatbot, c.sources, c.status, self.w.session, c.question]
        asked = gr.on([c.question.submit, c.ask_btn.click], self.ask, inputs, outputs,
                      api_name="chat", api_visibility="undocumented",
                      concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat",
                      show_progress="hidden")
        c.stop_btn.click(None, None, None, cancels=[asked], **private)
        c.chatbot.select(self.select_reply, [self.w.session], c.sources, **private)
        cleared = [c.chatbot, c.sources, c.status, self.w.session]
        c.clear_btn.click(self.clear, None, cleared, **private)
        c.chatbot.clear(self.clear, None, cleared, **private)
