"""MCP behind the login: with RAG_AUTH set, nothing under /gradio_api/mcp answers without it.

Gradio mounts its MCP server (the streamable HTTP transport at /gradio_api/mcp/, the SSE stream
at /gradio_api/mcp/sse with its /messages/, the /schema listing) as a separate Starlette app
that its login does not cover: without this, the tool list, `initialize` and the SSE stream
answer anyone. `McpLogin` is an ASGI middleware on the whole app, passed to FastAPI through
`launch(app_kwargs=...)` (see `mcp_launch_options`), that refuses every MCP request without
the RAG_AUTH credentials as HTTP Basic (`Authorization: Basic base64(user:password)`, which MCP
clients can send as a header), with 401 and a `WWW-Authenticate` challenge (a browser asks for
the login). Gradio's session cookie is not accepted here: it is Gradio's internal token, and
MCP clients do not log in through the web form.

Gradio runs a queued tool call through a loopback `gradio_client.Client` of the app, made
without any login, so behind RAG_AUTH every tool call failed ("credentials were not
provided"). Once a request has passed the check, the loopback client is made logged in with
the same credentials before Gradio makes its own (it keeps one in `_client_instance`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from typing import Any

import anyio
from gradio_client import Client
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

_MCP_PATH = re.compile(r"(^|/)gradio_api/mcp(/|$)")
REFUSED = ("The MCP server needs the app's login (RAG_AUTH): send it as HTTP Basic, "
           "Authorization: Basic base64(user:password).")


def mcp_launch_options(auth: tuple[str, str] | None, mcp: bool) -> dict[str, Any]:
    """What `demo.launch` needs so that MCP is behind the login: nothing without a login or
    without MCP, else the middleware in `app_kwargs`."""
    if auth is None or not mcp:
        return {}
    return {"app_kwargs": {"middleware": [Middleware(McpLogin, credentials=auth)]}}


def is_mcp_path(path: str) -> bool:
    """Whether a request path is one of Gradio's MCP routes (under any root path)."""
    return bool(_MCP_PATH.search(path))


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` value; None if it is not one."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class McpLogin:
    """Refuses MCP requests that lack the login; primes Gradio's loopback client once."""

    def __init__(self, app: ASGIApp, credentials: tuple[str, str]) -> None:
        self.app = app
        self.credentials = credentials
        self._primed = False
        self._lock = anyio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not is_mcp_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = PlainTextResponse(REFUSED, status_code=401, headers={
                "WWW-Authenticate": 'Basic realm="gpt-oss-rag MCP", charset="UTF-8"'})
            await response(scope, receive, send)
            return
        await self._prime_loopback(scope)
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = basic_credentials(headers.get(b"authorization", b"").decode("latin-1"))
        if given is None:
            return False
        user, password = self.credentials
        # both compared, always, in constant time
        same_user = hmac.compare_digest(given[0].encode(), user.encode())
        same_password = hmac.compare_digest(given[1].encode(), password.encode())
        return same_user and same_password

    async def _prime_loopback(self, scope: Scope) -> None:
        """Give Gradio's MCP server a loopback client that is logged in (once)."""
        if self._primed:
            return
        async with self._lock:
            server = _mcp_server(scope)
            if self._primed or server is None or server.local_url is None:
                return
            if getattr(server, "_client_instance", None) is None:
                server._client_instance = await anyio.to_thread.run_sync(
                    self._loopback_client, server.local_url)
            self._primed = True

    def _loopback_client(self, url: str) -> Client:
        """The client Gradio's MCP server would make (GradioMCPServer._get_or_create_client),
        logged in."""
        return Client(url, auth=self.credentials, download_files=False, verbose=False,
                      analytics_enabled=False, ssl_verify=False, _skip_components=False,
                      headers={"x-gradio-user": "mcp"})


def _mcp_server(scope: Scope) -> Any:
    """Gradio's MCP server object of the app serving this request, if any."""
    app = scope.get("app")
    get_blocks = getattr(app, "get_blocks", None)
    if get_blocks is None:
        return None
    return getattr(get_blocks(), "mcp_server_obj", None)
