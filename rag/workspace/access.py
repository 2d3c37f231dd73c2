"""Who may do what: logins, and each account's role in a knowledge base.

Logins are on when RAG_AUTH names an admin or the database holds accounts. Without logins the
app is one person's (it listens on loopback, or its operator said so): everyone is an admin.
The RAG_AUTH account is an admin of every knowledge base and is not stored.
"""

from __future__ import annotations

import hmac
import secrets

from rag.choices import Role
from rag.errors import AccessDenied, ConfigError
from rag.workspace.accounts import Accounts
from rag.workspace.tables import ALL_KBS

SERVICE_NAME = "rag-internal-service"  # the app's own loopback client (Gradio's MCP server)
ACTIONS = {Role.VIEWER: "asking and searching", Role.EDITOR: "adding and deleting documents",
           Role.ADMIN: "managing accounts and knowledge bases"}


class Access:
    """Checks logins and roles against the accounts and the RAG_AUTH admin."""

    def __init__(self, accounts: Accounts, admin: tuple[str, str] | None = None) -> None:
        self.accounts = accounts
        self.admin = admin
        self.logins = admin is not None or accounts.exist()
        # The login of the app's own loopback client, known only to this process: Gradio's
        # MCP server calls the tools through it, after rag.ui.mcp_login checked the caller.
        self.service = (SERVICE_NAME, secrets.token_urlsafe(32))

    def login(self, name: str, password: str) -> bool:
        """Whether the name and password are an account's (Gradio's auth callable)."""
        if name == self.service[0]:
            return hmac.compare_digest(password.encode(), self.service[1].encode())
        if self.admin is not None and name == self.admin[0]:
            return hmac.compare_digest(password.encode(), self.admin[1].encode())
        return self.accounts.verify(name, password)

    def role(self, name: str | None, kb: str) -> Role | None:
        """The role of a signed-in name (None: no login) in a knowledge base, if any."""
        if not self.logins:
            return Role.ADMIN
        if not name:
            return None
        if name == self.service[0] or (self.admin is not None and name == self.admin[0]):
            return Role.ADMIN
        try:
            return self.accounts.get(name).role_in(kb)
        except ConfigError:
            return None  # the account was removed while signed in

    def is_admin(self, name: str | None) -> bool:
        """Whether the name may manage accounts and knowledge bases (an admin of every one)."""
        return self.role(name, ALL_KBS) is Role.ADMIN

    def require(self, name: str | None, kb: str, needed: Role) -> None:
        """Raise AccessDenied unless the name's role in the knowledge base allows `needed`."""
        role = self.role(name, kb)
        if role is not None and role.allows(needed):
            return
        if not name:
            raise AccessDenied(f"Sign in first: {ACTIONS[needed]} needs a login.")
        held = f"a {role.value}" if role else "not a member"
        where = "every knowledge base" if kb == ALL_KBS else f"the knowledge base {kb!r}"
        raise AccessDenied(f"{name} is {held} of {where}; "
                           f"{ACTIONS[needed]} needs the {needed.value} role (an admin can "
                           f"grant it: rag users grant {name} {needed.value}).")

    def owner(self, name: str | None, browser: str | None) -> str:
        """Whose conversations these are: the account's, else the browser's."""
        if name:
            return f"user:{name}"
        if browser:
            return f"browser:{browser}"
        raise ConfigError("The page is still starting (it has no browser id yet): ask again "
                          "in a moment.")
