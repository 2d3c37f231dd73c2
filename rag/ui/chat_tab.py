"""The Chat tab's handlers: ask (saving each reply), stop, clear, regenerate, edit the last
question, show a reply's sources, and thumbs up or down with a note."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from rag.choices import Role
from rag.errors import RagError
from rag.pipeline import AskOptions
from rag.ui.cards import sources_html
from rag.ui.chat import ChatSession, chat_stream
from rag.ui.history import ChatHistory
from rag.ui.layout import Widgets
from rag.ui.render import WARN
from rag.ui.services import CHAT_CONCURRENCY, Services
from rag.workspace import answer_record

Updates = dict[object, object]


class Chat:
    """The Chat tab's handlers, bound to the page's components."""

    def __init__(self, services: Services, widgets: Widgets, history: ChatHistory) -> None:
        self.services = services
        self.w = widgets
        self.history = history

    def ask(self, text: str, session: ChatSession, effort: str, k: float, mode: str,
            doc_ids: list[str] | None, agent: bool, browser: str | None, kb: str | None,
            request: gr.Request) -> Iterator[Updates]:
        """Stream one answer into the chat, the sources panel and the status line; save it
        with its conversation when it ends (also when stopped)."""
        c = self.w.chat
        if not session.replies:  # a chat asks the knowledge base picked when it began
            session.kb = kb or None
        browser = self.history.identify(browser)  # asked before the page had its id
        try:
            self.services.require(getattr(request, "username", None), Role.VIEWER, session.kb)
            owner = self.history.owner(request, browser)
            self._replace_last(session, owner, text)
        except RagError as exc:
            yield {c.status: f"{WARN} {exc}"}
            return
        options = AskOptions(effort=effort, k=int(k), mode=mode,
                             doc_ids=list(doc_ids or []) or None, agent=bool(agent))
        asked = len(session.replies)
        saved: Updates | None = None
        shown: Updates = {}
        try:
            for update in chat_stream(self.services, text, session, options):
                shown: Updates = {c.chatbot: update.messages, c.status: update.status,
                                  self.w.session: session, c.question: "",
                                  c.note_row: gr.Row(visible=False),
                                  self.w.side.history.browser: browser}
                if update.panel is not None:
                    shown[c.sources] = update.panel
                yield shown
        finally:  # a stopped answer is saved too, as far as it came
            if len(session.replies) > asked:
                saved = self._save(session, owner)
        if saved:  # the last update again, whole, with the saved conversation listed
            yield {**shown, **saved}

    def _replace_last(self, session: ChatSession, owner: str, text: str) -> None:
        """Edit or regenerate: the last reply goes, in the chat and in its conversation."""
        if not session.editing or not (text or "").strip():
            return
        session.editing = False
        if session.drop_last() is not None and session.conversation is not None:
            self.services.workspace.conversations.replace_last(owner, session.conversation)

    def _save(self, session: ChatSession, owner: str) -> Updates:
        try:
            return self.history.save(session, session.replies[-1], owner)
        except RagError as exc:
            return {self.w.chat.status: f"{WARN} Not saved: {exc}"}

    def edit_last(self, session: ChatSession) -> Updates:
        """Put the last question back in the box; asking it again replaces the last reply."""
        c = self.w.chat
        if not session.replies:
            return {c.status: "Nothing to edit yet."}
        session.editing = True
        return {c.question: session.replies[-1].answer.question, self.w.session: session,
                c.status: "Edit the question and press Ask: the new answer replaces the last "
                          "one."}

    def select_reply(self, session: ChatSession, evt: gr.SelectData) -> str:
        """A click on a message shows the sources of the reply it belongs to."""
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        reply = session.reply_at(int(index))
        return sources_html(reply.answer if reply else None)

    def clear(self) -> Updates:
        """An empty chat (the saved conversation stays in the list)."""
        return self.history.new()

    def rate(self, session: ChatSession, browser: str | None, request: gr.Request,
             evt: gr.LikeData) -> Updates:
        """A thumbs up or down on a reply, stored with what was asked, found and answered; a
        thumbs-down asks for a note."""
        c = self.w.chat
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        reply = session.reply_at(int(index))
        liked = evt.liked is True or evt.liked == "Like"
        if reply is None or not reply.answer.done:
            return {c.status: "Rate a reply once it has ended."}
        log = self.services.workspace.feedback
        try:
            if reply.feedback is None:
                reply.feedback = log.record(
                    owner=self.history.owner(request, browser),
                    kb=self.services.kb_label(session.kb),
                    rating=1 if liked else -1, note="", answer=answer_record(reply.answer),
                    settings=reply.settings, conversation_id=session.conversation,
                    position=reply.position)
            else:
                log.set_rating(reply.feedback, 1 if liked else -1)
        except RagError as exc:
            return {c.status: f"{WARN} Feedback not saved: {exc}"}
        session.noted = reply.feedback
        thanks = "Thanks: noted as a good answer." if liked else (
            "Thanks. What should it have found? A phrase from the right passage makes this a "
            "test question.")
        return {c.status: thanks, c.note_row: gr.Row(visible=not liked), c.note: "",
                self.w.session: session}

    def send_note(self, note: str, session: ChatSession) -> Updates:
        """The note of the last thumbs-down."""
        c = self.w.chat
        if session.noted is None or not (note or "").strip():
            return {c.status: "Type a note first."}
        try:
            self.services.workspace.feedback.set_note(session.noted, note)
        except RagError as exc:
            return {c.status: f"{WARN} Note not saved: {exc}"}
        return {c.status: "Thanks: the note is saved with your feedback.",
                c.note_row: gr.Row(visible=False), c.note: ""}

    def wire(self) -> None:
        """Connect the handlers to the page's events (inside the gr.Blocks context)."""
        c, side, w, private = self.w.chat, self.w.side, self.w, {"api_visibility": "private"}
        h = side.history
        inputs = [c.question, w.session, side.effort, side.top_k, side.mode, side.doc_filter,
                  side.agent, h.browser, side.kbs.picker]
        outputs = [c.chatbot, c.sources, c.status, w.session, c.question, c.note_row,
                   h.listing, h.title, h.export_btn, h.browser]
        asked = gr.on([c.question.submit, c.ask_btn.click], self.ask, inputs, outputs,
                      api_name="chat", api_visibility="undocumented",
                      concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat",
                      show_progress="hidden")
        c.stop_btn.click(None, None, None, cancels=[asked], **private)
        c.chatbot.select(self.select_reply, [w.session], c.sources, **private)
        cleared = [w.session, c.chatbot, c.sources, c.status, h.listing, h.title, h.export_btn,
                   h.status, c.note_row]
        c.clear_btn.click(self.clear, None, cleared, **private)
        c.chatbot.clear(self.clear, None, cleared, **private)
        c.edit_btn.click(self.edit_last, [w.session], [c.question, w.session, c.status],
                         **private)
        c.retry_btn.click(self.edit_last, [w.session], [c.question, w.session, c.status],
                          **private).then(self.ask, inputs, outputs, api_name="regenerate",
                                          concurrency_limit=CHAT_CONCURRENCY,
                                          concurrency_id="chat", show_progress="hidden",
                                          **private)
        c.chatbot.like(self.rate, [w.session, h.browser], [c.status, c.note_row, c.note,
                                                           w.session], **private)
        c.note_btn.click(self.send_note, [c.note, w.session], [c.status, c.note_row, c.note],
                         **private)
