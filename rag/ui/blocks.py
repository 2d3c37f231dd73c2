"""The app: the layout, its handlers and the API, put together in one gr.Blocks."""

from __future__ import annotations

import gradio as gr

from rag.kb import KnowledgeBase
from rag.ui.accounts_tab import Accounts
from rag.ui.api import register_api
from rag.ui.chat_tab import Chat
from rag.ui.history import ChatHistory
from rag.ui.kb_panel import KBPanel
from rag.ui.layout import build_layout
from rag.ui.library import Library
from rag.ui.services import Services
from rag.ui.tables import TITLE
from rag.ui.viewer import Viewer
from rag.workspace import Workspace


def build_app(kb: KnowledgeBase, workspace: Workspace,
              admin: tuple[str, str] | None = None) -> gr.Blocks:
    """The Gradio app over a knowledge base and a workspace (accounts, conversations,
    feedback): Chat and Upload tabs, the sidebar with saved conversations and settings, the
    API. `admin` is the RAG_AUTH account."""
    services = Services(kb, workspace, admin)
    with gr.Blocks(title=f"{TITLE} — chat with your documents",
                   analytics_enabled=False) as demo:
        widgets = build_layout(kb.settings, workspace.key("browser-state"))
        demo.load(services.check_llm, None, widgets.side.llm_status, api_visibility="private",
                  concurrency_id="status", concurrency_limit=4, show_progress="hidden")
        widgets.side.recheck.click(services.check_llm, None, widgets.side.llm_status,
                                   api_visibility="private", concurrency_id="status",
                                   concurrency_limit=4)
        kb_loaded, kb_changed, kb_renamed = KBPanel(services, widgets).wire(demo)
        library = Library(services, widgets)
        history = ChatHistory(services, widgets)
        for event in history.wire(demo, library.wire(kb_loaded)):
            library.refresh_after(event)  # a conversation of another knowledge base opened
        for event in kb_changed:  # another knowledge base picked: a new chat on it
            library.refresh_after(history.new_after(event))
        library.refresh_after(kb_renamed)
        Accounts(services, widgets.accounts).wire(demo)
        Chat(services, widgets, history).wire()
        Viewer(services, widgets.chat.viewer).wire(widgets.session)
        register_api(services)
    demo.queue(default_concurrency_limit=4)
    demo.rag_services = services  # type: ignore[attr-defined]  # read by launch()
    return demo
