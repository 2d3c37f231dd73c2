"""Roles on every route: with accounts in the database, a viewer may search and ask but not
add documents, over the API and over MCP; an editor may; a caller without a login is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rag.choices import Role
from rag.embedding import LocalEmbedder
from rag.workspace import Workspace
from tests.helpers import RunningApp
from tests.llm_server import FakeGptOss
from tests.test_mcp import NOTE, basic, call, data_url, mcp_session

VIEWER = ("vera", "vera's password")
EDITOR = ("ed", "ed's password")
MCP_NOTE = "# Calves\n\nAn okapi calf drinks its mother's milk for months.\n"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder):
    folder = tmp_path_factory.mktemp("access")
    workspace = Workspace(f"sqlite:///{folder / 'app.db'}")
    workspace.accounts.add(*VIEWER, Role.VIEWER)
    workspace.accounts.add(*EDITOR, Role.EDITOR)
    workspace.close()
    with FakeGptOss() as llm:
        running = RunningApp(folder / "kb.db", llm.base_url, embedder, rag_mcp=True)
        yield running
        running.close()


def test_api_roles(app: RunningApp, tmp_path: Path) -> None:
    from gradio_client import handle_file

    note = tmp_path / "okapi.md"
    note.write_text(NOTE, encoding="utf-8")
    viewer, editor = app.client(auth=VIEWER), app.client(auth=EDITOR)
    with pytest.raises(Exception, match=r"vera is a viewer .* needs the editor role"):
        viewer.predict([handle_file(str(note))], "", api_name="/ingest")
    [added] = editor.predict([handle_file(str(note))], "", api_name="/ingest")
    assert added["status"] in ("added", "skipped")
    hits = viewer.predict("What does the okapi eat?", 2, "hybrid", [], "", api_name="/search")
    assert hits[0]["source"] == "okapi.md"
    with pytest.raises(ValueError, match="Could not login"):
        app.client(auth=("vera", "wrong password"))
    with pytest.raises(ValueError):
        app.client()  # no login: Gradio refuses to connect


def test_mcp_checks_each_tool_call_against_the_callers_role(app: RunningApp) -> None:
    async def as_user(login: tuple[str, str]) -> tuple[object, object]:
        async with mcp_session(app, headers=basic(*login)) as session:
            added = await session.call_tool("ingest", {"files": [data_url("mcp.md", MCP_NOTE)]})
            hits = await call(session, "search", query="okapi", k=1)
            return added, hits

    async def without_login() -> int:
        import httpx

        async with httpx.AsyncClient(timeout=30) as http:
            reply = await http.post(app.url + "gradio_api/mcp/", json={
                "jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            return reply.status_code

    allowed, _ = asyncio.run(as_user(EDITOR))
    assert not allowed.isError, allowed.content
    assert "mcp.md" in {d.source for d in app.services.documents()}, allowed.content
    refused, viewer_hits = asyncio.run(as_user(VIEWER))
    assert refused.isError  # the viewer's ingest, refused with the reason
    assert "needs the editor role" in str(refused.content)
    assert viewer_hits and viewer_hits[0]["source"] in ("okapi.md", "mcp.md")
    assert asyncio.run(without_login()) == 401


def test_mcp_over_sse_refuses_a_viewers_tool_call_with_the_reason(app: RunningApp) -> None:
    import httpx

    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "ingest", "arguments": {"files": [data_url("x.md", NOTE)]}}}
    reply = httpx.post(app.url + "gradio_api/mcp/messages/?session_id=0", json=call,
                       headers=basic(*VIEWER), timeout=30)
    assert reply.status_code == 403 and "needs the editor role" in reply.text
