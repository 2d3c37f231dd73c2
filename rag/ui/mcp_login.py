"""MCP behind the login: with logins on, nothing under /gradio_api/mcp answers without one.

Gradio mounts its MCP server (the streamable HTTP transport at /gradio_api/mcp/, the SSE stream
at /gradio_api/mcp/sse with its /messages/, the /schema listing) as a separate Starlette app
that its login does not cover: without this, the tool list, `initialize` and the SSE stream
answer anyone. `McpLogin` is an ASGI middleware on the whole app, passed to FastAPI through
`launch(app_kwargs=...)` (see `mcp_launch_options`), that refuses every MCP request without
an account's login (RAG_AUTH's admin or one made by `rag users add`) as HTTP Basic
(`Authorization: Basic base64(user:password)`, which MCP clients can send as a header), with 401
and a `WWW-Authenticate` challenge (a browser asks for the login). Gradio's session cookie is
not accepted here: it is Gradio's internal token, and MCP clients do not log in through the web
form. A tool call (JSON-RPC `tools/call`) is also checked against the caller's role in the
knowledge base it names (its `kb` argument): `ingest` needs the editor role, the others the
viewer role; a refused call is answered as a failed tool call saying which role it needs (over
the SSE transport: HTTP 403 with that reason).

Gradio runs a queued tool call through a loopback `gradio_client.Client` of the app, made
without any login, so behind a login every tool call failed ("credentials were not
provided"). Once a request has passed the check, the loopback client is made logged in with
the app's own service login (rag.workspace.access), known only to this process, before Gradio
makes its own (it keeps one in `_client_instance`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any

import anyio
from gradio_client import Client
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.choices import Role
from rag.errors import RagError
from rag.workspace import Access, KnowledgeBases

log = logging.getLogger(__name__)

_MCP_PATH = re.compile(r"(^|/)gradio_api/mcp(/|$)")
REFUSED = ("The MCP server needs a login of this app: send it as HTTP Basic, "
           "Authorization: Basic base64(user:password).")
EDITOR_TOOLS = frozenset({"ingest"})  # tools that change the knowledge base


def mcp_launch_options(access: Access, kbs: KnowledgeBases, mcp: bool) -> dict[str, Any]:
    """What `demo.launch` needs so that MCP is behind the login: nothing without logins or
    without MCP, else the middleware in `app_kwargs`."""
    if not access.logins or not mcp:
        return {}
    return {"app_kwargs": {"middleware": [Middleware(McpLogin, access=access, kbs=kbs)]}}


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

    def __init__(self, app: ASGIApp, access: Access, kbs: KnowledgeBases) -> None:
        self.app = app
        self.access = access
        self.kbs = kbs
        self.credentials = access.service
        self._primed = False
        self._lock = anyio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not is_mcp_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        user = self._user(scope)
        if user is None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = PlainTextResponse(REFUSED, status_code=401, headers={
                "WWW-Authenticate": 'Basic realm="gpt-oss-rag MCP", charset="UTF-8"'})
            await response(scope, receive, send)
            return
        if scope["type"] == "http" and scope.get("method") == "POST":
            body = await _read_body(receive)
            refusal = self._refusal(user, body, sse=scope["path"].rstrip("/").endswith(
                "/messages"))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self._prime_loopback(scope)
        await self.app(scope, receive, send)

    def _user(self, scope: Scope) -> str | None:
        """The signed-in account of the request's Basic login, or None."""
        headers = dict(scope.get("headers") or [])
        given = basic_credentials(headers.get(b"authorization", b"").decode("latin-1"))
        if given is None or not self.access.login(*given):
            return None
        return given[0]

    def _refusal(self, user: str, body: bytes, sse: bool) -> PlainTextResponse | None:
        """The answer to a tool call the user's role does not allow, else None. Over the SSE
        transport the answer to a message goes out on the event stream, which this does not
        reach: there the refusal is an HTTP 403 with the reason."""
        try:
            calls = json.loads(body) if body else []
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # not JSON-RPC: Gradio's MCP server answers it
        for call in calls if isinstance(calls, list) else [calls]:
            if not isinstance(call, dict) or call.get("method") != "tools/call":
                continue
            params = call.get("params") or {}
            tool = str(params.get("name", ""))
            needed = Role.EDITOR if tool in EDITOR_TOOLS else Role.VIEWER
            kb = str((params.get("arguments") or {}).get("kb") or "") or None
            try:
                self.access.require(user, self.kbs.get(kb).name, needed)
            except RagError as exc:  # refused, or no such knowledge base
                # a tool's own failure (isError), which MCP clients hand to the model
                if sse:
                    return PlainTextResponse(str(exc), status_code=403)
                refused = {"jsonrpc": "2.0", "id": call.get("id"), "result": {
                    "content": [{"type": "text", "text": str(exc)}], "isError": True}}
                return PlainTextResponse(json.dumps(refused), media_type="application/json")
        return None

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


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, original: Receive) -> Receive:
    """A receive channel that hands the body read for the check on to the app, then waits
    on the client's own channel (for its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


def _mcp_server(scope: Scope) -> Any:
    """Gradio's MCP server object of the app serving this request, if any."""
    app = scope.get("app")
    get_blocks = getattr(app, "get_blocks", None)
    if get_blocks is None:
        return None
    return getattr(get_blocks(), "mcp_server_obj", None)
