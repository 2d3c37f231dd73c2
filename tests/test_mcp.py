"""The app's MCP server (RAG_MCP) through a real MCP client (the `mcp` package), against the real
app: Milvus Lite, MiniLM, a loopback LLM. Issue 12, item 7: the `ingest` tool failed for every
input ("dictionary update sequence element #0 has length 1"), and with RAG_AUTH set the schema,
`initialize` and the SSE stream answered without the login."""

from __future__ import annotations

import ast
import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import handle_file
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from rag.embedding import LocalEmbedder
from rag.errors import LoaderError
from rag.ui.mcp_login import basic_credentials, is_mcp_path
from rag.ui.uploads import resolve
from tests.helpers import RunningApp
from tests.llm_server import FakeGptOss

NOTE = "# Okapi care\n\nThe okapi eats leaves, fruit and fungi in the Ituri rainforest.\n"
LOGIN = ("alice", "s3cret:word")


def data_url(name: str, text: str) -> str:
    """A Markdown file as the ingest tool takes it over MCP."""
    return (f"data:text/markdown;name={name};base64,"
            + base64.b64encode(text.encode()).decode())


def basic(user: str, password: str) -> dict[str, str]:
    """The Authorization header of an HTTP Basic login."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def mcp_session(app: RunningApp, headers: dict[str, str] | None = None,
                      transport: str = "http") -> AsyncIterator[ClientSession]:
    """An initialized MCP session with the app, over streamable HTTP or SSE."""
    if transport == "sse":
        streams = sse_client(app.url + "gradio_api/mcp/sse", headers=headers, timeout=30)
        async with streams as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session
        return
    async with httpx.AsyncClient(headers=headers, timeout=120) as http, \
            streamable_http_client(app.url + "gradio_api/mcp/", http_client=http) as (
                read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """A tool's result, parsed (Gradio sends a list or dict as its Python text)."""
    result = await session.call_tool(tool, arguments)
    assert not result.isError, result.content
    return ast.literal_eval(result.content[0].text)


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeGptOss]:
    with FakeGptOss() as server:
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, llm: FakeGptOss,
        embedder: LocalEmbedder) -> Iterator[RunningApp]:
    running = RunningApp(tmp_path_factory.mktemp("mcp") / "kb.db", llm.base_url, embedder,
                         rag_mcp=True)
    yield running
    running.close()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, llm: FakeGptOss,
           embedder: LocalEmbedder) -> Iterator[RunningApp]:
    """The app behind RAG_AUTH, MCP on."""
    running = RunningApp(tmp_path_factory.mktemp("mcp-auth") / "kb.db", llm.base_url,
                         embedder, rag_mcp=True, rag_auth=":".join(LOGIN))
    yield running
    running.close()


def test_ingest_a_markdown_file_then_search_it_over_mcp(app: RunningApp,
                                                         tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"  # a file on the server that nobody uploaded
    outside.write_text("# Secret\n\nThe vault code is 4711.\n")
    uploaded = httpx.post(app.url + "gradio_api/upload", timeout=30, files={
        "files": ("zebra-notes.md", b"# Zebras\n\nZebras sleep standing up.\n")}).json()[0]

    async def scenario() -> tuple[list, list, list, str]:
        async with mcp_session(app) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            added = await call(session, "ingest", files=[
                data_url("okapi.md", NOTE),
                f"{app.url}gradio_api/file={uploaded}",
                str(outside), "https://example.com/notes.md", "data:,no name"])
            hits = await call(session, "search", query="What does the okapi eat?", k=2)
            again = await call(session, "ingest", files=[data_url("okapi.md", NOTE)])
            return added, hits, again, tools["ingest"].description or ""

    added, hits, again, description = asyncio.run(scenario())
    assert "data:text/markdown;name=notes.md;base64," in description  # says what it takes
    assert [(r["source"], r["status"]) for r in added] == [
        ("okapi.md", "added"), ("zebra-notes.md", "added"),
        (str(outside), "failed"), ("https://example.com/notes.md", "failed"),
        ("data:,no name", "failed")]
    assert "not a file uploaded to this app" in added[2]["reason"]
    assert "not fetched" in added[3]["reason"]
    assert "needs the document's name" in added[4]["reason"]
    assert hits[0]["source"] == "okapi.md" and "fungi" in hits[0]["text"]
    assert again[0]["status"] == "skipped"
    names = {d.source for d in app.services.documents()}
    assert names == {"okapi.md", "zebra-notes.md"}  # the server's own file was not read


def test_mcp_over_sse(app: RunningApp) -> None:
    async def scenario() -> list:
        async with mcp_session(app, transport="sse") as session:
            assert {"ingest", "search", "ask"} <= {
                t.name for t in (await session.list_tools()).tools}
            return await call(session, "ingest", files=[data_url("sse-note.md", NOTE)])

    assert asyncio.run(scenario())[0]["status"] in ("added", "skipped")


def test_api_ingest_refuses_server_paths(app: RunningApp, tmp_path: Path) -> None:
    """A FileData without Gradio's `meta` tag is passed on unchecked by Gradio: the app must
    not read a server file it names (it used to ingest it)."""
    secret = tmp_path / "passwords.txt"
    secret.write_text("root: hunter2\n")
    client = app.client()
    [refused] = client.predict([{"path": str(secret), "orig_name": "passwords.txt"}],
                               api_name="/ingest")
    assert refused["status"] == "failed" and "not a file uploaded" in refused["reason"]
    [fine] = client.predict([handle_file(str(secret))], api_name="/ingest")  # uploaded: fine
    assert fine["source"] == "passwords.txt" and fine["status"] == "added"


def test_mcp_is_behind_the_login(locked: RunningApp) -> None:
    url = locked.url + "gradio_api/mcp"
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    wrong = basic(LOGIN[0], "guess")
    for headers in ({}, wrong, {"Authorization": "Bearer " + ":".join(LOGIN)}):
        assert httpx.post(url + "/", json=initialize, headers={**accept, **headers},
                          timeout=10).status_code == 401
        assert httpx.post(url + "/", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                          headers={**accept, **headers}, timeout=10).status_code == 401
        for path in ("/schema", "/sse", "/", "/messages/?session_id=0"):
            refused = httpx.get(url + path, headers=headers, timeout=10)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic ")
    with pytest.raises(ExceptionGroup) as caught:  # the SDK's task group wraps the refusal
        asyncio.run(_tools(locked, None))
    assert caught.group_contains(httpx.HTTPStatusError, match="401 Unauthorized")

    assert httpx.get(url + "/schema", headers=basic(*LOGIN), timeout=10).status_code == 200
    names, added, hits = asyncio.run(_tools(locked, basic(*LOGIN)))
    assert {"ingest", "search", "ask"} <= names
    assert added[0]["status"] == "added"  # tool calls run logged in behind the login
    assert hits and hits[0]["source"] == "locked.md"


async def _tools(app: RunningApp, headers: dict[str, str] | None) -> tuple[set, list, list]:
    async with mcp_session(app, headers) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        added = await call(session, "ingest", files=[data_url("locked.md", NOTE)])
        hits = await call(session, "search", query="okapi fungi", k=1)
        return names, added, hits


def test_basic_credentials_and_mcp_paths() -> None:
    assert basic_credentials(basic(*LOGIN)["Authorization"]) == LOGIN  # ":" in the password
    assert basic_credentials("basic " + base64.b64encode(b"a:").decode()) == ("a", "")
    for header in ("", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                   "Basic " + base64.b64encode(b"\xff:x").decode()):
        assert basic_credentials(header) is None, header
    for path in ("/gradio_api/mcp", "/gradio_api/mcp/", "/gradio_api/mcp/sse",
                 "/gradio_api/mcp/messages/", "/root/gradio_api/mcp/schema"):
        assert is_mcp_path(path), path
    for path in ("/", "/gradio_api/info", "/gradio_api/mcpx", "/gradio_api/upload"):
        assert not is_mcp_path(path), path


def test_data_urls(tmp_path: Path) -> None:
    plain = resolve("data:text/plain;name=r%C3%A9sum%C3%A9.txt,caf%C3%A9%20au%20lait", tmp_path)
    assert plain.name == "résumé.txt" and plain.path.read_text() == "café au lait"
    assert plain.path.suffix == ".txt"
    spaced = resolve("data:text/markdown;name=../../etc/x.md;base64,IyBO\nb3Rl cw==", tmp_path)
    assert spaced.name == "x.md" and spaced.path.read_bytes() == b"# Notes"
    assert spaced.path.is_relative_to(tmp_path)
    for url, reason in [("data:text/plain;base64,aGk=", "needs the document's name"),
                        ("data:text/plain;name=a.txt", "needs the document's name"),
                        ("data:text/plain;name=a.txt;base64,a$b=", "not valid base64")]:
        with pytest.raises(LoaderError, match=reason):
            resolve(url, tmp_path)
    with pytest.raises(LoaderError, match="not a file"):
        resolve(42, tmp_path)
