"""The knowledge-base picker in the sidebar and, for admins, create, rename and delete.

Each person sees the knowledge bases they hold a role in; picking one starts a new chat on it
and lists its documents in the Upload tab.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from rag.choices import Role
from rag.errors import RagError
from rag.ui.layout import Widgets
from rag.ui.render import WARN, safe_markdown
from rag.ui.services import Services

Updates = dict[Any, Any]


def signed_in(user: str | None, role: Role | None) -> str:
    """'Signed in as anna (admin) · Log out', or nothing without logins."""
    if not user:
        return ""
    held = f" ({'admin' if role is Role.ADMIN else role.value})" if role else ""
    return f"Signed in as **{safe_markdown(user)}**{held} · [Log out](logout)"


class KBPanel:
    """The handlers of the knowledge-base picker and tools."""

    def __init__(self, services: Services, widgets: Widgets) -> None:
        self.services = services
        self.t = widgets.side.kbs

    def _user(self, request: gr.Request) -> str | None:
        return getattr(request, "username", None) or None

    def picker(self, request: gr.Request, value: str | None = None) -> gr.Dropdown:
        """The knowledge bases this person may use, with `value` (else the first) picked."""
        user = self._user(request)
        names = [kb.name for kb in self.services.kbs.list()
                 if self.services.access.role(user, kb.name) is not None]
        picked = value if value in names else (names[0] if names else None)
        return gr.Dropdown(choices=names, value=picked)

    def on_load(self, request: gr.Request) -> Updates:
        """A new page: the picker, and the tools for an admin."""
        user = self._user(request)
        try:
            admin = self.services.access.is_admin(user)
            role = self.services.access.role(user, self.services.kb_name)
            return {self.t.picker: self.picker(request), self.t.tools: gr.Accordion(
                visible=admin), self.t.signed_in: signed_in(user, role)}
        except RagError as exc:
            return {self.t.status: f"{WARN} {exc}"}

    def create(self, name: str, request: gr.Request) -> Updates:
        """Create a knowledge base and pick it."""
        try:
            self._admin(request)
            info = self.services.kbs.create(name or "")
        except RagError as exc:
            return {self.t.status: f"{WARN} {exc}"}
        return {self.t.picker: self.picker(request, info.name), self.t.name: "",
                self.t.status: f"Created “{safe_markdown(info.name)}”: add documents in the "
                               "Upload tab."}

    def rename(self, name: str, current: str | None, request: gr.Request) -> Updates:
        """Rename the picked knowledge base."""
        try:
            self._admin(request)
            info = self.services.kbs.rename(self.services.kb_label(current), name or "")
        except RagError as exc:
            return {self.t.status: f"{WARN} {exc}"}
        return {self.t.picker: self.picker(request, info.name), self.t.name: "",
                self.t.status: f"Renamed to “{safe_markdown(info.name)}”."}

    def ask_delete(self, current: str | None) -> Updates:
        """Show the confirmation for deleting the picked knowledge base."""
        try:
            name = self.services.kb_label(current)
            count = len(self.services.documents(name))
        except RagError as exc:
            return {self.t.status: f"{WARN} {exc}"}
        return {self.t.confirm_row: gr.Row(visible=True),
                self.t.status: f"Delete “{safe_markdown(name)}” with its {count} documents "
                               "and its conversations?"}

    def delete(self, current: str | None, request: gr.Request) -> Updates:
        """Delete the picked knowledge base; the default one is picked instead."""
        hide = {self.t.confirm_row: gr.Row(visible=False)}
        try:
            self._admin(request)
            info = self.services.kbs.remove(self.services.kb_label(current))
        except RagError as exc:
            return {**hide, self.t.status: f"{WARN} {exc}"}
        return {**hide, self.t.picker: self.picker(request),
                self.t.status: f"Deleted “{safe_markdown(info.name)}”."}

    def cancel(self) -> Updates:
        """Hide the confirmation."""
        return {self.t.confirm_row: gr.Row(visible=False), self.t.status: "Nothing deleted."}

    def _admin(self, request: gr.Request) -> None:
        self.services.require(self._user(request), Role.ADMIN)

    def wire(self, demo: gr.Blocks) -> tuple[gr.events.Dependency, list[gr.events.Dependency],
                                             gr.events.Dependency]:
        """Connect the handlers; returns the page load's event, the events after which another
        knowledge base is picked (the chat starts anew, the document list follows), and the
        rename's (the header follows)."""
        t, private = self.t, {"api_visibility": "private"}
        loaded = demo.load(self.on_load, None, [t.picker, t.tools, t.status, t.signed_in],
                           show_progress="hidden", **private)
        changed = [
            t.picker.input(lambda: {}, None, None, **private),
            t.create_btn.click(self.create, [t.name], [t.picker, t.name, t.status], **private),
            t.confirm_btn.click(self.delete, [t.picker], [t.confirm_row, t.picker, t.status],
                                **private),
        ]
        renamed = t.rename_btn.click(self.rename, [t.name, t.picker],
                                     [t.picker, t.name, t.status], **private)
        t.delete_btn.click(self.ask_delete, [t.picker], [t.confirm_row, t.status], **private)
        t.cancel_btn.click(self.cancel, None, [t.confirm_row, t.status], **private)
        return loaded, changed, renamed
