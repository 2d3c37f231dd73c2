"""The Accounts tab, for admins: the accounts and their roles; add, grant, set a password, remove.

Shown only to an admin while logins are on (without logins there is no one to manage). Every
handler checks the admin role again: a hidden tab is not a permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from rag.choices import Role
from rag.errors import RagError
from rag.ui.render import WARN, safe_markdown
from rag.ui.services import Services
from rag.workspace import Account
from rag.workspace.tables import ALL_KBS

Updates = dict[Any, Any]
HEADERS = ["Account", "Roles", "Created (UTC)"]
ALL_LABEL = "every knowledge base"


@dataclass
class AccountsTab:
    """The Accounts tab's components."""

    tab: gr.Tab
    table: gr.Dataframe
    name: gr.Textbox
    password: gr.Textbox
    role: gr.Radio
    kb: gr.Dropdown
    add_btn: gr.Button
    grant_btn: gr.Button
    password_btn: gr.Button
    remove_btn: gr.Button
    status: gr.Markdown


def build_accounts_tab() -> AccountsTab:
    """Create the tab (inside a gr.Tabs context)."""
    with gr.Tab("Accounts", id="accounts", visible=False) as tab:
        table = gr.Dataframe(value=accounts_table([]), interactive=False, wrap=True,
                             elem_id="rag-accounts", show_label=False)
        with gr.Row(equal_height=True):
            name = gr.Textbox(label="Account", max_lines=1, elem_id="rag-account-name")
            password = gr.Textbox(label="Password (new accounts, or a new password)",
                                  type="password", max_lines=1, elem_id="rag-account-password")
        with gr.Row(equal_height=True):
            role = gr.Radio(Role.values(), value=Role.VIEWER.value, label="Role")
            kb = gr.Dropdown(choices=[ALL_LABEL], value=ALL_LABEL, label="In")
        with gr.Row():
            add_btn = gr.Button("Add account", variant="primary", size="sm")
            grant_btn = gr.Button("Set role", variant="secondary", size="sm")
            password_btn = gr.Button("Set password", variant="secondary", size="sm")
            remove_btn = gr.Button("Remove account", variant="stop", size="sm")
        status = gr.Markdown("", elem_classes="rag-status", elem_id="rag-accounts-status")
    return AccountsTab(tab, table, name, password, role, kb, add_btn, grant_btn, password_btn,
                       remove_btn, status)


def accounts_table(accounts: list[Account]) -> pd.DataFrame:
    """One row per account: its name, its roles, when it was made."""
    rows = [[a.name, ", ".join(f"{role.value} in {ALL_LABEL if kb == ALL_KBS else kb}"
                               for kb, role in sorted(a.roles.items())),
             f"{a.created_at:%Y-%m-%d %H:%M}" if a.created_at else ""] for a in accounts]
    return pd.DataFrame(rows or [["", "", ""]], columns=HEADERS)


class Accounts:
    """The handlers of the Accounts tab."""

    def __init__(self, services: Services, tab: AccountsTab) -> None:
        self.services = services
        self.accounts = services.workspace.accounts
        self.t = tab

    def _check(self, request: gr.Request) -> None:
        self.services.require(getattr(request, "username", None) or None, Role.ADMIN)

    def listing(self) -> Updates:
        """The table and the knowledge-base choices."""
        kbs = [ALL_LABEL, *(kb.name for kb in self.services.kbs.list())]
        return {self.t.table: accounts_table(self.accounts.list()),
                self.t.kb: gr.Dropdown(choices=kbs)}

    def on_load(self, request: gr.Request) -> Updates:
        """Show the tab to an admin while logins are on."""
        user = getattr(request, "username", None) or None
        shown = self.services.access.logins and self.services.access.is_admin(user)
        if not shown:
            return {self.t.tab: gr.Tab(visible=False)}
        return {self.t.tab: gr.Tab(visible=True), **self.listing()}

    def _run(self, request: gr.Request, action: Any, done: str) -> Updates:
        try:
            self._check(request)
            action()
        except RagError as exc:
            return {self.t.status: f"{WARN} {exc}"}
        return {**self.listing(), self.t.password: "", self.t.status: safe_markdown(done)}

    def add(self, name: str, password: str, role: str, kb: str,
            request: gr.Request) -> Updates:
        """Create an account with a role."""
        return self._run(request, lambda: self.accounts.add(name, password, Role.from_str(role),
                                                            _kb(kb)), f"Added {name.strip()}.")

    def grant(self, name: str, role: str, kb: str, request: gr.Request) -> Updates:
        """Give an account a role in a knowledge base (or in every one)."""
        return self._run(request, lambda: self.accounts.grant(name, Role.from_str(role), _kb(kb)),
                         f"{name.strip()} is now {role} in {kb}.")

    def set_password(self, name: str, password: str, request: gr.Request) -> Updates:
        """Replace an account's password."""
        return self._run(request, lambda: self.accounts.set_password(name, password),
                         f"New password set for {name.strip()}.")

    def remove(self, name: str, request: gr.Request) -> Updates:
        """Remove an account (not the one signed in)."""
        def action() -> None:
            if name.strip() == getattr(request, "username", None):
                raise RagError("You cannot remove the account you are signed in with.")
            self.accounts.remove(name)

        return self._run(request, action, f"Removed {name.strip()}.")

    def pick(self, evt: gr.SelectData) -> Any:
        """A click on a row puts its account name in the box."""
        row = evt.row_value or []
        return row[0] if row and row[0] else gr.skip()

    def wire(self, demo: gr.Blocks) -> None:
        """Connect the handlers (inside the gr.Blocks context)."""
        t, private = self.t, {"api_visibility": "private"}
        out = [t.table, t.kb, t.password, t.status]
        demo.load(self.on_load, None, [t.tab, t.table, t.kb], show_progress="hidden",
                  **private)
        t.add_btn.click(self.add, [t.name, t.password, t.role, t.kb], out, **private)
        t.grant_btn.click(self.grant, [t.name, t.role, t.kb], out, **private)
        t.password_btn.click(self.set_password, [t.name, t.password], out, **private)
        t.remove_btn.click(self.remove, [t.name], out, **private)
        t.table.select(self.pick, None, t.name, **private)


def _kb(label: str) -> str:
    return ALL_KBS if not label or label == ALL_LABEL else label
