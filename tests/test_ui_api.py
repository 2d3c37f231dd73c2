"""The web app's API through gradio_client: the real app, Milvus Lite, MiniLM, a loopback LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from rag.embedding import LocalEmbedder
from rag.errors import ConfigError
from rag.settings import Settings
from rag.ui import (
    ChatSession,
    Reply,
    auth_from,
    link_citations,
    sources_html,
)
from tests.helpers import CLOUD_PDF, ROOT, RunningApp, free_port
from tests.llm_server import ECHO_REASONING, FakeGptOss

PDF = CLOUD_PDF
PDF_NAME = PDF.name
QUESTION = "What are the essential characteristics of cloud computing?"


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeGptOss]:
    """The loopback gpt-oss server."""
    with FakeGptOss() as server:
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, llm: FakeGptOss,
        embedder: LocalEmbedder) -> Iterator[RunningApp]:
    """The app with the NIST PDF ingested through /ingest."""
    running = RunningApp(tmp_path_factory.mktemp("ui") / "kb.db", llm.base_url, embedder,
                         rag_mcp=True)
    yield running
    running.close()


@pytest.fixture(scope="module")
def ingested(app: RunningApp) -> list[dict[str, Any]]:
    """The /ingest result for the PDF."""
    return app.client().predict([handle_file(str(PDF))], api_name="/ingest")


@pytest.fixture(scope="module")
def no_llm_app(tmp_path_factory: pytest.TempPathFactory,
               embedder: LocalEmbedder) -> Iterator[RunningApp]:
    """The app with an LLM URL where nothing listens."""
    closed = f"http://127.0.0.1:{free_port()}/v1"
    running = RunningApp(tmp_path_factory.mktemp("ui-nollm") / "kb.db", closed, embedder)
    yield running
    running.close()


def test_api_lists_the_three_public_endpoints(app: RunningApp) -> None:
    endpoints = app.client().view_api(print_info=False, return_format="dict")
    assert {"/ingest", "/search", "/ask"} <= set(endpoints["named_endpoints"])
    assert "/chat" not in endpoints["named_endpoints"]  # the UI's own event stays undocumented
    ask = endpoints["named_endpoints"]["/ask"]
    returns = [r["python_type"]["type"] for r in ask["returns"]]
    assert returns[0] == "str" and returns[1].startswith("dict(question: str, query: str, ")
    assert "citations: list[int]" in returns[1]  # the API page shows the details, not "Any"
    params = {p["parameter_name"]: p for p in ask["parameters"]}
    assert params["effort"]["python_type"]["type"] == "Literal['low', 'medium', 'high']"
    assert params["mode"]["python_type"]["type"] == "Literal['hybrid', 'dense', 'bm25']"
    assert "Reachable" in app.services.check_llm()


def test_ingest_adds_the_pdf_under_its_original_name(app: RunningApp,
                                                      ingested: list[dict[str, Any]]) -> None:
    assert len(ingested) == 1
    result = ingested[0]
    assert result["source"] == PDF_NAME
    assert result["status"] == "added"
    assert result["pages"] == 7
    assert result["chunks"] > 0
    docs = app.kb.store.list_documents()
    assert [d.source for d in docs] == [PDF_NAME]
    assert app.kb.store.count_chunks(PDF_NAME) == result["chunks"]


def test_ingest_again_is_skipped_and_bad_types_fail(app: RunningApp, ingested: list,
                                                    tmp_path: Path) -> None:
    odd = tmp_path / "slides.pptx"
    odd.write_bytes(b"PK\x03\x04 not a document we read")
    results = app.client().predict([handle_file(str(PDF)), handle_file(str(odd))],
                                   api_name="/ingest")
    assert [(r["source"], r["status"]) for r in results] == [
        (PDF_NAME, "skipped"), ("slides.pptx", "failed")]
    assert results[0]["reason"] == "unchanged"
    assert "damaged file" in results[1]["reason"]  # a .pptx that is not one


def test_search_returns_hits_with_scores(app: RunningApp, ingested: list) -> None:
    hits = app.client().predict("essential characteristics of cloud computing", 3, "hybrid",
                                api_name="/search")
    assert 1 <= len(hits) <= 3
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    for hit in hits:
        assert hit["source"] == PDF_NAME
        assert 1 <= hit["page"] <= 7
        assert hit["text"]
        assert hit["score"] > 0
    assert any(h["dense_score"] is not None and 0 < h["dense_score"] <= 1 for h in hits)
    assert any(h["bm25_score"] is not None and h["bm25_score"] > 0 for h in hits)
    dense = app.client().predict("on-demand self-service", 2, "dense", api_name="/search")
    assert all(h["bm25_score"] is None and h["dense_score"] > 0 for h in dense)


def test_search_and_ask_reject_unknown_choices(app: RunningApp, ingested: list) -> None:
    with pytest.raises(Exception, match="mode must be one of"):
        app.client().predict("cloud", 3, "fuzzy", api_name="/search")
    with pytest.raises(Exception, match="effort must be one of low, medium or high, not 'max'"):
        app.client().predict(QUESTION, "max", api_name="/ask")


def test_ask_streams_the_answer_with_sources_and_citations(app: RunningApp, ingested: list,
                                                          llm: FakeGptOss) -> None:
    llm.reset()
    job = app.client().submit(QUESTION, "low", 3, "hybrid", False, api_name="/ask")
    streamed = [(answer, details) for answer, details in job]
    answer, details = job.result()
    answers = [a for a, _ in streamed]
    assert len({a for a in answers if a}) >= 1  # updates are spaced (UPDATE_SECONDS)
    assert all(answer.startswith(a) for a in answers)
    assert answer.startswith("According to [1]")
    assert details["done"] is True
    assert details["error"] is None
    assert details["reasoning"] == ECHO_REASONING
    assert details["citations"] == [1]
    assert details["unknown_citations"] == []
    sources = details["sources"]
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert 1 <= len(sources) <= 3
    assert all(s["source"] == PDF_NAME and s["page"] for s in sources)
    assert sources[0]["dense_score"] is not None
    # the model was asked with the sources in its prompt and the chosen effort
    request = llm.requests[-1]
    assert request["reasoning_effort"] == "low"
    assert sources[0]["text"][:40] in request["messages"][-1]["content"]
    # sources arrive before the answer is complete
    assert any(d["sources"] and not d["done"] for _, d in streamed)


def test_ask_with_agentic_search_reports_the_searches(app: RunningApp, ingested: list,
                                                      llm: FakeGptOss) -> None:
    llm.reset()
    answer, details = app.client().predict("What is a community cloud?", "medium", 2,
                                           "hybrid", True, api_name="/ask")
    first, *tools = details["searches"]
    assert first["name"] == "" and first["query"] == "What is a community cloud?"
    assert tools, details
    assert tools[0]["name"] == "search_knowledge_base"
    assert tools[0]["arguments"]["query"].startswith("What is a community cloud?")
    assert tools[0]["sources"]
    assert answer.startswith("According to [1]")
    assert details["done"] and details["error"] is None
    assert any(m.get("role") == "tool" for m in llm.requests[-1]["messages"])


def test_ask_without_a_reachable_llm_returns_sources_and_what_to_configure(
        no_llm_app: RunningApp) -> None:
    client = no_llm_app.client()
    _, empty = client.predict(QUESTION, api_name="/ask")
    assert empty["error"] and "upload documents" in empty["error"]
    assert client.predict([handle_file(str(PDF))], api_name="/ingest")[0]["status"] == "added"
    answer, details = client.predict(QUESTION, api_name="/ask")
    assert answer == ""
    assert details["done"] is True
    assert details["sources"] and details["sources"][0]["source"] == PDF_NAME
    assert "Cannot reach the LLM server" in details["error"]
    assert "OPENAI_BASE_URL" in details["error"]
    # search needs no LLM at all
    assert client.predict("service models", 2, "bm25", api_name="/search")
    status = no_llm_app.services.check_llm()
    assert "Not reachable" in status and "Cannot reach the LLM server" in status


def test_an_unconfigured_llm_still_gives_sources_and_says_what_to_set(
        tmp_path: Path, embedder: LocalEmbedder, llm: FakeGptOss) -> None:
    running = RunningApp(tmp_path / "kb.db", llm.base_url, embedder, llm_model="",
                         rag_auth="alice:s3cret:word")
    try:
        assert "Not configured" in running.services.check_llm()
        with pytest.raises(ValueError, match="credentials were not provided"):
            running.client()  # RAG_AUTH: no login, no API
        with pytest.raises(ValueError, match="Could not login"):
            running.client(auth=("alice", "guess"))
        client = running.client(auth=("alice", "s3cret:word"))
        assert client.predict([handle_file(str(PDF))], api_name="/ingest")[0]["status"] == "added"
        answer, details = client.predict(QUESTION, api_name="/ask")
        assert answer == "" and details["sources"]
        assert "LLM_MODEL" in details["error"]
    finally:
        running.close()


def _chat(client: Client, question: str, browser: str) -> list[dict[str, Any]]:
    """One question in the client's chat; `browser` is the id its browser would keep (the
    chat is saved under it)."""
    result = client.predict(question, "low", 3, "hybrid", [], False, browser, "",
                            api_name="/chat")
    chatbot, panel, status, textbox = result[:4]
    assert status.startswith("✓ answered in")
    assert textbox == ""
    assert PDF_NAME in panel and "cosine" in panel
    return chatbot


def _texts(chatbot: list[dict[str, Any]], role: str) -> list[str]:
    return [m["content"][0]["text"] if isinstance(m["content"], list) else m["content"]
            for m in chatbot if m["role"] == role and not (m.get("metadata") or {}).get("title")]


def test_two_clients_have_separate_chats(app: RunningApp, ingested: list,
                                         llm: FakeGptOss) -> None:
    alice, bob = app.client(), app.client()
    first = _chat(alice, "What is cloud computing?", "alice-browser")
    assert _texts(first, "user") == ["What is cloud computing?"]
    thinking = [m for m in first if (m.get("metadata") or {}).get("title") == "Thinking"]
    assert thinking and thinking[0]["metadata"]["status"] == "done"
    answer = _texts(first, "assistant")[-1]
    assert "[[1](#src-1)]" in answer  # citations link to the source cards
    llm.reset()
    bobs = _chat(bob, "What is a private cloud?", "bob-browser")
    assert _texts(bobs, "user") == ["What is a private cloud?"]
    # Bob's question went out alone: no rewrite, no history from Alice's chat
    assert len(llm.requests) == 1 and llm.requests[0]["stream"]
    assert [m["role"] for m in llm.requests[0]["messages"]] == ["system", "user"]
    second = _chat(alice, "And its deployment models?", "alice-browser")
    assert _texts(second, "user") == ["What is cloud computing?", "And its deployment models?"]
    assert any(not r.get("stream") for r in llm.requests)  # Alice's follow-up was rewritten
    saved = app.workspace.conversations
    assert [c.replies for c in saved.list("browser:alice-browser")] == [2]
    assert [c.title for c in saved.list("browser:bob-browser")] == ["What is a private cloud?"]


def test_sources_panel_puts_the_cited_sources_first_and_folds_the_others() -> None:
    from rag.answer import Answer
    from rag.events import AnswerEvent, DoneEvent, Source, SourcesEvent
    from rag.schema import Hit

    hits = [Hit(chunk_id=f"c{n}", doc_id=f"{n}.md", source=f"doc{n}.md", text=f"text {n}",
                position=0, page=None, page_end=None, heading="", score=1 / n, rank=n)
            for n in (1, 2, 3, 4)]
    answer = Answer("q?")
    answer.apply(SourcesEvent([Source(h.rank, h) for h in hits]))
    answer.apply(AnswerEvent("From [3] and [1]."))
    streaming = sources_html(answer)  # while the answer streams: all in rank order, unfolded
    assert "rag-also" not in streaming
    assert streaming.index("id='src-1'") < streaming.index("id='src-2'") < \
        streaming.index("id='src-3'")
    answer.apply(DoneEvent(citations=[1, 3], unknown_citations=[], timings={}))
    panel = sources_html(answer)
    fold = panel.index("<details class='rag-also'><summary>Also retrieved (2)</summary>")
    assert panel.index("id='src-1'") < panel.index("id='src-3'") < fold
    assert fold < panel.index("id='src-2'") < panel.index("id='src-4'")
    answer = Answer("q?")  # an answer citing nothing lists every source as retrieved
    answer.apply(SourcesEvent([Source(h.rank, h) for h in hits]))
    answer.apply(DoneEvent(citations=[], unknown_citations=[], timings={}))
    assert "rag-also" not in sources_html(answer)


def test_sources_panel_marks_citations_and_unknown_numbers() -> None:
    from rag.answer import Answer
    from rag.events import AnswerEvent, DoneEvent, Source, SourcesEvent
    from rag.schema import Hit

    hit = Hit(chunk_id="c1", doc_id="a.pdf", source="a.pdf", text="<b>bold</b> claim",
              position=0, page=2, page_end=3, heading="Intro", score=0.0325, dense_score=0.61,
              bm25_score=4.2, rank=1)
    answer = Answer("q?")
    assert "Searching…" in sources_html(answer)
    answer.apply(SourcesEvent([Source(1, hit)]))
    answer.apply(AnswerEvent("Yes [1], and [7]."))
    answer.apply(DoneEvent(citations=[1], unknown_citations=[7], timings={}))
    panel = sources_html(answer)
    assert "Sources <span class='rag-query'>for “q?”" in panel
    assert "id='src-1'" in panel and "rag-cited" in panel
    assert "pp. 2-3 · Intro" in panel
    assert "0.610" in panel and "4.20" in panel and "rank <b>1</b>" in panel
    assert "&lt;b&gt;bold&lt;/b&gt;" in panel  # chunk text is escaped
    assert "[7] does not match any source" in panel
    assert link_citations("Yes [1], no [7], both [1, 7].", {1}) == (
        "Yes [[1](#src-1)], no [7], both [[1](#src-1), 7].")
    session = ChatSession(replies=[Reply(Answer("a"), first=0, end=3),
                                   Reply(Answer("b"), first=3, end=5)])
    assert session.reply_at(4).answer.question == "b"
    assert session.reply_at(0).answer.question == "a"


def test_chat_messages_show_searches_thinking_drafts_and_errors() -> None:
    from rag.answer import Answer
    from rag.events import (
        AnswerEvent,
        ErrorEvent,
        QueryEvent,
        ReasoningEvent,
        Source,
        SourcesEvent,
        ToolCallEvent,
    )
    from rag.schema import Hit
    from rag.ui.render import chat_messages, status_text

    def hit(n: int) -> Hit:
        return Hit(chunk_id=f"c{n}", doc_id="a.md", source="a.md", text="t", position=n,
                   page=None, page_end=None, heading="H", score=0.1, dense_score=0.5,
                   bm25_score=1.0, rank=n)

    answer = Answer("And on Windows?")
    answer.apply(QueryEvent("How to install Milvus on Windows?", "And on Windows?"))
    [step] = chat_messages(answer)
    assert step["metadata"]["title"] == "Searched for: How to install Milvus on Windows?"
    assert step["content"] == "…"  # still searching
    answer.apply(SourcesEvent([Source(1, hit(1))]))
    answer.apply(ReasoningEvent("Look up"))
    search, thinking = chat_messages(answer)
    assert search["content"].startswith("1. **a.md** · H — cosine 0.500")
    assert thinking["metadata"] == {"title": "Thinking", "status": "pending"}
    answer.apply(AnswerEvent("Let me search [1]."))
    answer.apply(ToolCallEvent("search_knowledge_base", {"query": "windows"},
                               [Source(2, hit(2))]))
    answer.apply(AnswerEvent("Use Docker [2]."))
    answer.apply(ErrorEvent("The LLM server closed the connection."))
    messages = chat_messages(answer)
    assert messages[1]["metadata"]["status"] == "done"
    assert messages[1]["metadata"]["duration"] >= 0
    assert messages[2] == {"role": "assistant", "content": "Let me search [[1](#src-1)]."}
    assert messages[3]["metadata"]["title"] == "Searched: windows"
    assert messages[4]["content"] == "Use Docker [[2](#src-2)]."
    assert messages[5]["content"].startswith("⚠ The LLM server closed the connection.")
    assert "listed beside the chat" in messages[5]["content"]
    assert status_text(answer) == ""  # no notices, not complete


def test_mcp_tools_describe_their_arguments(app: RunningApp) -> None:
    with urllib.request.urlopen(app.url + "gradio_api/mcp/schema", timeout=10) as response:
        tools = {t["name"]: t for t in json.load(response)}
    assert {"ingest", "search", "ask"} <= set(tools)
    assert "chat" not in tools
    ask = tools["ask"]
    assert ask["description"].startswith("Answer a question from the knowledge base")
    props = ask["inputSchema"]["properties"]
    assert set(props) == {"question", "effort", "k", "mode", "agent", "documents", "kb"}
    assert props["effort"]["description"] == (
        'Reasoning effort of gpt-oss: "low", "medium" or "high".')
    assert "cosine" in tools["search"]["inputSchema"]["properties"]["mode"]["description"]


def test_rag_auth_must_be_user_and_password() -> None:
    assert auth_from("") is None
    assert auth_from("alice:pa:ss") == ("alice", "pa:ss")
    for bad in ("alice", ":pw", "alice:"):
        with pytest.raises(ConfigError, match="RAG_AUTH"):
            auth_from(bad)


def test_app_py_listens_where_gradio_server_name_and_port_say(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.2", "GRADIO_SERVER_PORT": str(port),
           "MILVUS_URI": str(tmp_path / "kb.db"), "RAG_MCP": "false",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    app_py = ROOT / "app.py"
    proc = subprocess.Popen([sys.executable, str(app_py)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.2:{port}/config", timeout=5) as r:
                    config = json.load(r)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "app.py did not start serving"
                time.sleep(1)
        assert config["title"].startswith("gpt-oss-rag")
        with pytest.raises(urllib.error.URLError):  # not on the default 127.0.0.1
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_demo_docs_fill_an_empty_knowledge_base_once(tmp_path: Path) -> None:
    from rag.ui import create_demo

    folder = tmp_path / "demo-docs"
    folder.mkdir()
    (folder / "welcome.md").write_text("# Welcome\n\nThis knowledge base answers questions "
                                       "about the demo documents.\n", encoding="utf-8")
    settings = Settings(milvus_uri=str(tmp_path / "kb.db"), rag_demo_docs=str(folder),
                        database_url=f"sqlite:///{tmp_path / 'app.db'}")
    for start in (1, 2):
        kb = create_demo(settings).rag_services.kb
        try:
            assert [d.source for d in kb.store.list_documents()] == ["welcome.md"]
        finally:
            kb.close()
        if start == 1:  # the next start finds a filled knowledge base and adds nothing
            (folder / "later.md").write_text("# Later\n\nNot loaded.\n", encoding="utf-8")


def test_credentials_in_server_urls_are_never_shown(llm: FakeGptOss, tmp_path: Path) -> None:
    from rag.embedding import OpenAIEmbedder
    from rag.errors import EmbeddingError
    from rag.kb import KnowledgeBase
    from rag.redact import redact
    from rag.rerank import RerankError
    from rag.rerank.http import HttpReranker
    from rag.ui.services import Services
    from rag.workspace import Workspace

    assert redact("at http://alice:s3cret@host:8000/v1?api_key=k3y&x=1 and https://t0k@h/") == (
        "at http://***@host:8000/v1?api_key=***&x=1 and https://***@h/")
    reachable = llm.base_url.replace("http://", "http://alice:s3cret@")
    closed = f"http://alice:s3cret@127.0.0.1:{free_port()}/v1"

    def sidebar(url: str, model: str = "gpt-oss-20b") -> str:
        settings = Settings(milvus_uri=str(tmp_path / "kb.db"), openai_base_url=url,
                            llm_model=model)
        workspace = Workspace(f"sqlite:///{tmp_path / 'app.db'}")
        return Services(KnowledgeBase(settings), workspace).check_llm()

    cards = [sidebar(reachable), sidebar(reachable, "no-such-model"), sidebar(closed)]
    for card, state in zip(cards, ["Reachable", "model missing", "Not reachable"], strict=True):
        assert state in card and "http://***@127.0.0.1:" in card
        assert "s3cret" not in card and "alice" not in card
    with pytest.raises(EmbeddingError) as embedding:
        OpenAIEmbedder("m", base_url=closed, api_key="k").embed(["x"])
    with pytest.raises(RerankError) as rerank:
        HttpReranker("m", base_url=closed).score("q", ["t"])
    for error in (str(embedding.value), str(rerank.value)):
        assert "http://***@127.0.0.1:" in error and "s3cret" not in error


def test_the_app_serves_beyond_loopback_only_with_a_login_or_an_explicit_word() -> None:
    from rag.ui.server import check_exposure, is_loopback

    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host) and check_exposure(host, Settings()) == ""
    for host in ("0.0.0.0", "::", "192.168.1.5", "rag.example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match=r"RAG_AUTH=user:password.*RAG_ALLOW_NO_AUTH=true"):
            check_exposure(host, Settings())
        assert check_exposure(host, Settings(rag_auth="alice:pw")) == ""
    assert "RAG_ALLOW_NO_AUTH=true" in check_exposure("0.0.0.0",
                                                      Settings(rag_allow_no_auth=True))
    assert "Space me/demo without a login" in check_exposure("0.0.0.0",
                                                             Settings(space_id="me/demo"))


def _start_app_py(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, "MILVUS_URI": str(tmp_path / "kb.db"), "RAG_MCP": "false",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", **env}
    for name in ("RAG_AUTH", "RAG_ALLOW_NO_AUTH", "SPACE_ID"):
        if name not in env:
            full.pop(name, None)
    return subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_app_py_refuses_all_interfaces_without_a_login_but_serves_a_space(
        tmp_path: Path) -> None:
    refused = _start_app_py(tmp_path, GRADIO_SERVER_NAME="0.0.0.0")
    output, _ = refused.communicate(timeout=240)
    assert refused.returncode == 1, output
    assert "error: The web app would listen on 0.0.0.0" in output
    assert "RAG_AUTH=user:password" in output and "Traceback" not in output
    port = free_port()
    space = _start_app_py(tmp_path, GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT=str(port),
                          SPACE_ID="me/demo")
    try:
        deadline = time.monotonic() + 240
        while True:
            assert space.poll() is None, space.stdout.read() if space.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as r:
                    assert json.load(r)["title"].startswith("gpt-oss-rag")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the Space did not start serving"
                time.sleep(1)
    finally:
        space.terminate()
        output, _ = space.communicate(timeout=60)
    assert "Serving the Hugging Face Space me/demo without a login" in output
