"""Saved conversations in the web app: the list in the sidebar; open, new, rename, delete and
export; each reply saved as it ends; thumbs up or down with a note.

Conversations belong to the signed-in account, or without logins to this browser: an id kept in
its local storage (gr.BrowserState), so a reload or a restart of the app finds them again. A new
page reopens the most recent conversation.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from rag.errors import RagError
from rag.ui.cards import sources_html
from rag.ui.chat import ChatSession, Reply
from rag.ui.layout import Widgets
from rag.ui.render import WARN, chat_messages, safe_markdown, status_text
from rag.ui.services import Services
from rag.workspace import ConversationInfo, SavedReply, answer_from_record, answer_record
from rag.workspace.export import conversation_markdown

Updates = dict[Any, Any]
_UNSAFE_FILE_CHARS = re.compile(r"[^\w\- ]+")


def restore(conversation: str, kb: str, replies: list[SavedReply]) -> ChatSession:
    """A chat session showing a saved conversation's replies as they were answered."""
    session = ChatSession(conversation=conversation, kb=kb)
    for saved in replies:
        answer = answer_from_record(saved.answer)
        reply = Reply(answer, first=len(session.messages), settings=dict(saved.settings),
                      position=saved.position)
        session.messages.append({"role": "user", "content": safe_markdown(saved.question)})
        session.messages.extend(chat_messages(answer))
        reply.end = len(session.messages)
        session.replies.append(reply)
    return session


def choices(infos: list[ConversationInfo]) -> list[tuple[str, str]]:
    """The list's entries: (title, id), the most recent first."""
    return [(info.title, info.id) for info in infos]


class ChatHistory:
    """The handlers of the conversation list, bound to the page's components."""

    def __init__(self, services: Services, widgets: Widgets) -> None:
        self.services = services
        self.store = services.workspace.conversations
        self.w = widgets
        self.h = widgets.side.history
        self._exports = Path(tempfile.mkdtemp(prefix="rag-exports-"))

    def owner(self, request: gr.Request, browser: str | None) -> str:
        """Whose conversations: the signed-in account's, else this browser's."""
        return self.services.access.owner(getattr(request, "username", None), browser)

    def listing(self, owner: str, current: str | None) -> gr.Radio:
        """The list, with the open conversation selected."""
        return gr.Radio(choices=choices(self.store.list(owner)), value=current)

    @staticmethod
    def identify(browser: str | None) -> str:
        """This browser's id: the one it keeps, or a new one on its first visit."""
        return browser or uuid.uuid4().hex

    def on_load(self, browser: str | None, request: gr.Request) -> Updates:
        """A new page: the list, and the most recent conversation opened (nothing yet on a
        browser's very first visit, before `identify` has given it an id)."""
        updates: Updates = {}
        if not browser and not getattr(request, "username", None):
            return updates
        try:
            owner = self.owner(request, browser)
            infos = self.store.list(owner)
            updates[self.h.listing] = gr.Radio(choices=choices(infos),
                                               value=infos[0].id if infos else None)
            if infos:
                updates.update(self._show(owner, infos[0]))
        except RagError as exc:
            updates[self.h.status] = f"{WARN} {exc}"
        return updates

    def open(self, conversation: str | None, browser: str | None,
             request: gr.Request) -> Updates:
        """Show the conversation picked in the list."""
        if not conversation:
            return {}
        try:
            owner = self.owner(request, browser)
            return self._show(owner, self.store.get(owner, conversation))
        except RagError as exc:
            return {self.h.status: f"{WARN} {exc}"}

    def _show(self, owner: str, info: ConversationInfo) -> Updates:
        session = restore(info.id, info.kb, self.store.replies(owner, info.id))
        last = session.replies[-1].answer if session.replies else None
        c = self.w.chat
        return {self.w.session: session, c.chatbot: session.messages,
                c.sources: sources_html(last), c.status: status_text(last) if last else "",
                self.h.title: info.title, self.h.status: "",
                self.h.export_btn: self._export_file(owner, info),
                c.note_row: gr.Row(visible=False), self.w.side.kbs.picker: info.kb}

    def new_after(self, event: gr.events.Dependency) -> gr.events.Dependency:
        """Start an empty chat after an event (another knowledge base was picked)."""
        h, w = self.h, self.w
        return event.then(self.new, None, [w.session, w.chat.chatbot, w.chat.sources,
                                           w.chat.status, h.title, h.status, h.export_btn,
                                           w.chat.note_row, h.listing],
                          api_visibility="private", show_progress="hidden")

    def new(self) -> Updates:
        """An empty chat; it is saved (and listed) with its first reply."""
        c = self.w.chat
        return {self.w.session: ChatSession(), c.chatbot: [], c.sources: sources_html(None),
                c.status: "", self.h.listing: gr.Radio(value=None), self.h.title: "",
                self.h.export_btn: None, self.h.status: "", c.note_row: gr.Row(visible=False)}

    def rename(self, title: str, session: ChatSession, browser: str | None,
               request: gr.Request) -> Updates:
        """Give the open conversation the typed title."""
        if session.conversation is None:
            return {self.h.status: "Ask a question first: a chat is saved with its first "
                                   "reply."}
        try:
            owner = self.owner(request, browser)
            info = self.store.rename(owner, session.conversation, title)
            return {self.h.listing: self.listing(owner, info.id), self.h.title: info.title,
                    self.h.status: "Renamed.", self.h.export_btn: self._export_file(owner, info)}
        except RagError as exc:
            return {self.h.status: f"{WARN} {exc}"}

    def delete(self, session: ChatSession, browser: str | None, request: gr.Request) -> Updates:
        """Delete the open conversation; an empty chat takes its place."""
        if session.conversation is None:
            return {**self.new(), self.h.status: "Nothing saved to delete."}
        try:
            owner = self.owner(request, browser)
            info = self.store.get(owner, session.conversation)
            self.store.delete(owner, info.id)
            listing = self.listing(owner, None)
        except RagError as exc:
            return {self.h.status: f"{WARN} {exc}"}
        return {**self.new(), self.h.listing: listing,
                self.h.status: f"Deleted “{safe_markdown(info.title)}”."}

    def save(self, session: ChatSession, reply: Reply, owner: str) -> Updates:
        """Save a reply that has ended (answered, failed or stopped) with its conversation."""
        question, record = reply.answer.question, answer_record(reply.answer)
        if session.conversation is None:
            session.conversation = self.store.create(
                owner, self.services.kb_label(session.kb)).id
        reply.position = self.store.add_reply(owner, session.conversation, question, record,
                                              reply.settings)
        info = self.store.get(owner, session.conversation)
        return {self.h.listing: self.listing(owner, info.id), self.h.title: info.title,
                self.h.export_btn: self._export_file(owner, info)}

    def _export_file(self, owner: str, info: ConversationInfo) -> str:
        """The conversation as a Markdown file for the Export button."""
        name = _UNSAFE_FILE_CHARS.sub("", info.title).strip()[:60] or "conversation"
        folder = self._exports / info.id  # one file per conversation, rewritten
        for old in folder.glob("*.md"):
            old.unlink()
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.md"
        path.write_text(conversation_markdown(info, self.store.replies(owner, info.id)),
                        encoding="utf-8")
        return str(path)

    def wire(self, demo: gr.Blocks,
             listed: gr.events.Dependency) -> list[gr.events.Dependency]:
        """Connect the handlers (inside the gr.Blocks context); the conversation opens after
        the page's document listing (`listed`), which sets the chat's placeholder. Returns
        the events that may pick another knowledge base (opening a conversation of one)."""
        h, w, private = self.h, self.w, {"api_visibility": "private"}
        shown = [w.session, w.chat.chatbot, w.chat.sources, w.chat.status, h.title, h.status,
                 h.export_btn, w.chat.note_row, w.side.kbs.picker]
        # the id at once (not queued), so a question asked before the page has finished
        # loading is already saved under it
        demo.load(self.identify, [h.browser], [h.browser], queue=False, **private)
        loaded = listed.then(self.on_load, [h.browser], [h.listing, *shown],
                             show_progress="hidden", **private)
        opened = h.listing.input(self.open, [h.listing, h.browser], shown, **private)
        h.new_btn.click(self.new, None, [*shown, h.listing], **private)
        h.rename_btn.click(self.rename, [h.title, w.session, h.browser],
                           [h.listing, h.title, h.status, h.export_btn], **private)
        h.title.submit(self.rename, [h.title, w.session, h.browser],
                       [h.listing, h.title, h.status, h.export_btn], **private)
        h.delete_btn.click(self.delete, [w.session, h.browser], [*shown, h.listing], **private)
        return [loaded, opened]
