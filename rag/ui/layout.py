"""The page's components: header, settings sidebar, the Chat and Upload tabs.

`build_layout` creates them inside a gr.Blocks context and hands them back as `Widgets`; the
handlers (rag.ui.library, rag.ui.blocks) are wired to them by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from rag.choices import Effort, Mode
from rag.loading import SUPPORTED_EXTENSIONS
from rag.settings import Settings
from rag.ui.accounts_tab import AccountsTab, build_accounts_tab
from rag.ui.cards import sources_html
from rag.ui.chat import ChatSession
from rag.ui.tables import EMPTY_CHAT, docs_table, header_html, llm_card, results_table
from rag.ui.viewer import ViewerWidgets, build_viewer

MODE_LABELS = {Mode.HYBRID: "Hybrid", Mode.DENSE: "Dense", Mode.BM25: "BM25"}


@dataclass
class History:
    """The saved conversations: the list, new, rename, export and delete."""

    browser: gr.BrowserState  # this browser's id (its conversations, without logins)
    listing: gr.Radio
    new_btn: gr.Button
    title: gr.Textbox
    rename_btn: gr.Button
    export_btn: gr.DownloadButton
    delete_btn: gr.Button
    status: gr.Markdown


@dataclass
class KBTools:
    """Who is signed in, the knowledge-base picker and, for admins, create, rename, delete."""

    signed_in: gr.Markdown
    picker: gr.Dropdown
    tools: gr.Accordion
    name: gr.Textbox
    create_btn: gr.Button
    rename_btn: gr.Button
    delete_btn: gr.Button
    confirm_row: gr.Row
    confirm_btn: gr.Button
    cancel_btn: gr.Button
    status: gr.Markdown


@dataclass
class Sidebar:
    """The knowledge base, the saved conversations, the LLM status and the answer settings."""

    kbs: KBTools
    history: History

    llm_status: gr.HTML
    recheck: gr.Button
    effort: gr.Radio
    top_k: gr.Slider
    mode: gr.Radio
    doc_filter: gr.Dropdown
    agent: gr.Checkbox


@dataclass
class ChatTab:
    """The chat, its question box and buttons, and the sources panel."""

    chatbot: gr.Chatbot
    status: gr.Markdown
    question: gr.Textbox
    ask_btn: gr.Button
    stop_btn: gr.Button
    clear_btn: gr.Button
    retry_btn: gr.Button
    edit_btn: gr.Button
    note_row: gr.Row
    note: gr.Textbox
    note_btn: gr.Button
    sources: gr.HTML
    viewer: ViewerWidgets


@dataclass
class UploadTab:
    """The drop zone and its results, the document list, and deleting with a confirmation."""

    files: gr.File
    stop_btn: gr.Button
    upload_status: gr.Markdown
    results: gr.Dataframe
    docs_table: gr.Dataframe
    delete_select: gr.Dropdown
    delete_btn: gr.Button
    refresh_btn: gr.Button
    confirm_row: gr.Row
    confirm_text: gr.Markdown
    confirm_btn: gr.Button
    cancel_btn: gr.Button
    delete_status: gr.Markdown


@dataclass
class Widgets:
    """Every component the handlers read or update."""

    header: gr.HTML
    session: gr.State
    tabs: gr.Tabs
    side: Sidebar
    chat: ChatTab
    upload: UploadTab
    accounts: AccountsTab


def build_layout(settings: Settings, browser_key: str) -> Widgets:
    """Create the page's components (inside a gr.Blocks context); `browser_key` encrypts the
    id each browser keeps (the same after a restart, so its conversations are found)."""
    header = gr.HTML(header_html())
    session = gr.State(ChatSession())
    side = _sidebar(settings, browser_key)
    with gr.Tabs() as tabs:
        with gr.Tab("Chat", id="chat"):
            chat = _chat_tab()
        with gr.Tab("Upload", id="upload"):
            upload = _upload_tab()
        accounts = build_accounts_tab()
    return Widgets(header, session, tabs, side, chat, upload, accounts)


def _sidebar(s: Settings, browser_key: str) -> Sidebar:
    # Open beside the page on a wide screen; static/app.js closes it on a phone, where it
    # would cover the page. style.css paints the same 320 px down a long page.
    with gr.Sidebar(label="Settings", open=True, width=320):
        kbs = _kb_tools()
        history = _history(browser_key)
        gr.Markdown("#### Language model")
        llm_status = gr.HTML(llm_card("", "", "wait", "Checking the LLM endpoint…", ""),
                             elem_id="rag-llm-status")
        recheck = gr.Button("Check again", size="sm", variant="secondary")
        gr.Markdown("#### Answer settings")
        effort = gr.Radio(Effort.values(), value=Effort.from_str(s.reasoning_effort).value,
                          label="Reasoning effort", elem_classes="rag-compact")
        top_k = gr.Slider(1, 20, value=s.top_k, step=1, label="Sources (top-k)")
        mode = gr.Radio([(MODE_LABELS[m], m.value) for m in Mode],
                        value=Mode.from_str(s.retrieval_mode).value, label="Retrieval",
                        elem_classes="rag-compact", elem_id="rag-mode",
                        info="Hybrid fuses dense (cosine) and BM25 (keyword) rankings.")
        doc_filter = gr.Dropdown(choices=[], value=[], multiselect=True, label="Search in",
                                 info="Empty: all documents.")
        agent = gr.Checkbox(value=False, label="Agentic search",
                            info="The model runs its own searches before answering.")
    return Sidebar(kbs, history, llm_status, recheck, effort, top_k, mode, doc_filter, agent)


def _kb_tools() -> KBTools:
    signed_in = gr.Markdown("", elem_id="rag-signed-in", elem_classes="rag-status")
    # its choices are set per person on load; a value from elsewhere (the API) is checked
    # by the handlers
    picker = gr.Dropdown(choices=[], value=None, label="Knowledge base", elem_id="rag-kb",
                         allow_custom_value=True,
                         info="Chat, search and uploads use this one.")
    with gr.Accordion("Manage knowledge bases", open=False, visible=False,
                      elem_id="rag-kb-tools") as tools:
        name = gr.Textbox(show_label=False, placeholder="Name (new, or the new name)",
                          max_lines=1, container=False, elem_id="rag-kb-name")
        with gr.Row():
            create_btn = gr.Button("Create", size="sm", variant="secondary", min_width=70)
            rename_btn = gr.Button("Rename", size="sm", variant="secondary", min_width=70)
            delete_btn = gr.Button("Delete", size="sm", variant="stop", min_width=70,
                                   elem_id="rag-kb-delete")
        with gr.Row(visible=False, elem_id="rag-kb-confirm") as confirm_row:
            confirm_btn = gr.Button("Delete it and its documents", size="sm", variant="stop",
                                    elem_id="rag-kb-confirm-delete")
            cancel_btn = gr.Button("Cancel", size="sm", variant="secondary", min_width=70)
    status = gr.Markdown("", elem_classes="rag-status", elem_id="rag-kb-status")
    return KBTools(signed_in, picker, tools, name, create_btn, rename_btn, delete_btn, confirm_row,
                   confirm_btn, cancel_btn, status)


def _history(browser_key: str) -> History:
    browser = gr.BrowserState("", storage_key="gpt-oss-rag-browser", secret=browser_key)
    with gr.Row(equal_height=True):
        gr.Markdown("#### Conversations")
        new_btn = gr.Button("New chat", size="sm", variant="secondary", scale=0, min_width=90,
                            elem_id="rag-new-chat")
    listing = gr.Radio(choices=[], value=None, show_label=False, elem_id="rag-conversations",
                       elem_classes="rag-conversations")
    with gr.Accordion("Rename, export, delete", open=False, elem_id="rag-conversation-tools"):
        title = gr.Textbox(show_label=False, placeholder="Title of this chat", max_lines=1,
                           container=False, elem_id="rag-conversation-title")
        with gr.Row():
            rename_btn = gr.Button("Rename", size="sm", variant="secondary", min_width=70)
            export_btn = gr.DownloadButton("Export", size="sm", variant="secondary",
                                           min_width=70, elem_id="rag-export")
            delete_btn = gr.Button("Delete", size="sm", variant="stop", min_width=70,
                                   elem_id="rag-delete-chat")
    status = gr.Markdown("", elem_classes="rag-status", elem_id="rag-history-status")
    return History(browser, listing, new_btn, title, rename_btn, export_btn, delete_btn, status)


def _chat_tab() -> ChatTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            # Messages arrive as rag.ui.render.safe_markdown (no HTML, no images); the
            # browser's sanitizer stays on behind it, and no custom tag is let through.
            chatbot = gr.Chatbot(label="Chat", height=470, placeholder=EMPTY_CHAT,
                                 elem_classes="rag-chat", feedback_options=("Like", "Dislike"),
                                 buttons=["copy"], show_label=False, render_markdown=True,
                                 sanitize_html=True, allow_tags=False)
            status = gr.Markdown("", elem_classes="rag-status", elem_id="rag-chat-status")
            with gr.Row(equal_height=True):
                question = gr.Textbox(placeholder="Ask a question about your documents…",
                                      show_label=False, lines=1, max_lines=6, scale=8,
                                      autofocus=True, container=False)
                ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=72)
            with gr.Row(elem_classes="rag-actions"):
                stop_btn = gr.Button("Stop", size="sm", variant="secondary", min_width=60,
                                     scale=0)
                clear_btn = gr.Button("Clear chat", size="sm", variant="secondary",
                                      min_width=90, scale=0)
                retry_btn = gr.Button("Regenerate", size="sm", variant="secondary",
                                      min_width=90, scale=0, elem_id="rag-regenerate")
                edit_btn = gr.Button("Edit last question", size="sm", variant="secondary",
                                     min_width=120, scale=0, elem_id="rag-edit-last")
            with gr.Row(visible=False, equal_height=True, elem_id="rag-note-row") as note_row:
                note = gr.Textbox(show_label=False, max_lines=3, scale=6, container=False,
                                  placeholder="What should it have found? A phrase from the "
                                  "passage that answers it (kept as a test question)")
                note_btn = gr.Button("Send note", size="sm", scale=1, min_width=90)
        with gr.Column(scale=2, min_width=320):
            viewer = build_viewer()
            sources = gr.HTML(sources_html(None), elem_id="rag-sources-panel")
    return ChatTab(chatbot, status, question, ask_btn, stop_btn, clear_btn, retry_btn, edit_btn,
                   note_row, note, note_btn, sources, viewer)


def _upload_tab() -> UploadTab:
    # The drop zone offers the knowledge base's types; ingest itself rejects any other file
    # (an API upload, a renamed file) with a reason per file.
    files = gr.File(file_count="multiple", label="Add documents: PDF, Word, PowerPoint, Excel, "
                    "CSV, HTML, EPUB, e-mail, images (OCR), Markdown or text",
                    file_types=sorted(SUPPORTED_EXTENSIONS), height=150)
    with gr.Row(elem_classes="rag-upload-row", equal_height=True):
        upload_status = gr.Markdown(
            "Files are added as soon as they are dropped; unchanged files are skipped.",
            elem_classes="rag-status")
        stop_btn = gr.Button("Stop adding", variant="secondary", size="sm", scale=0,
                             min_width=120, elem_id="rag-stop-upload")
    # Column widths are shares of a table at least 600 px wide (style.css): there "markdown",
    # "Chunks" and a date fit unbroken; a narrower screen scrolls the table sideways.
    results = gr.Dataframe(value=results_table([]), label="Upload results", interactive=False,
                           elem_id="rag-results", wrap=True,
                           column_widths=["32%", "16%", "10%", "12%", "30%"])
    gr.Markdown("### Documents in the knowledge base")
    docs = gr.Dataframe(value=docs_table([]), interactive=False, wrap=True, elem_id="rag-docs",
                        show_label=False,
                        column_widths=["32%", "10%", "8%", "10%", "20%", "20%"])
    with gr.Row(elem_classes="rag-manage"):
        delete_select = gr.Dropdown(choices=[], value=[], multiselect=True, scale=4,
                                    min_width=280,  # on a phone the buttons go below it
                                    label="Select documents to delete (or click a row above)")
        with gr.Column(scale=1, min_width=160):
            delete_btn = gr.Button("Delete selected", variant="stop", size="sm")
            refresh_btn = gr.Button("Refresh list", variant="secondary", size="sm")
    with gr.Row(visible=False, elem_classes="rag-confirm", elem_id="rag-confirm",
                equal_height=True) as confirm_row:
        confirm_text = gr.Markdown("", elem_classes="rag-confirm-text")
        confirm_btn = gr.Button("Delete", variant="stop", size="sm", scale=0, min_width=90,
                                elem_id="rag-confirm-delete")
        cancel_btn = gr.Button("Cancel", variant="secondary", size="sm", scale=0,
                               min_width=90)
    delete_status = gr.Markdown("", elem_classes="rag-status", elem_id="rag-delete-status")
    return UploadTab(files, stop_btn, upload_status, results, docs, delete_select, delete_btn,
                     refresh_btn, confirm_row, confirm_text, confirm_btn, cancel_btn,
                     delete_status)
