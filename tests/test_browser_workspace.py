"""Saved conversations in a real Chromium: a chat survives a reload and a restart of the app,
another browser does not see it, a thumbs-down with a note is stored, the chat exports as
Markdown; and with accounts, each person sees only their own conversations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.choices import Role
from rag.embedding import LocalEmbedder
from rag.workspace import Workspace
from tests.helpers import BROWSER_ARGS, CHROMIUM, RunningApp, chromium_or_skip, free_port
from tests.llm_server import FakeGptOss, reasoning_answer

pytestmark = pytest.mark.browser

NOTE = ("# Ports\n\nMilvus listens on port 19530 for gRPC clients. The web UI and metrics "
        "are served on port 9091.\n")
QUESTION = "Which port do gRPC clients connect to?"


def _start(tmp_path: Path, llm: FakeGptOss, embedder: LocalEmbedder, port: int,
           **overrides: str) -> RunningApp:
    running = RunningApp(tmp_path / "kb.db", llm.base_url, embedder, port=port, **overrides)
    doc = tmp_path / "ports.md"
    doc.write_text(NOTE, encoding="utf-8")
    running.kb.ingestor.ingest_paths([doc])
    return running


def _ask(page, llm: FakeGptOss, question: str, answer: str) -> None:
    from playwright.sync_api import expect

    # the page has started: its browser id is kept (made on the first visit)
    page.wait_for_function("localStorage.getItem('gpt-oss-rag-browser')", timeout=30_000)

    llm.script(reasoning_answer(["The source names the port."], [answer]))
    box = page.get_by_placeholder("Ask a question about your documents…")
    box.fill(question)
    box.press("Enter")
    expect(page.locator("#rag-chat-status")).to_contain_text("answered in", timeout=120_000)


def test_a_chat_survives_reload_and_restart_and_takes_feedback(
        tmp_path: Path, embedder: LocalEmbedder) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium_or_skip()
    port = free_port()
    with FakeGptOss() as llm, sync_playwright() as p:
        running = _start(tmp_path, llm, embedder, port)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900},
                                          accept_downloads=True)
            page = context.new_page()
            page.goto(running.url)
            _ask(page, llm, QUESTION, "gRPC clients connect on port 19530 [1].")
            listing = page.locator("#rag-conversations")
            expect(listing).to_contain_text(QUESTION)

            # a thumbs-down, with the passage that should have been found
            page.locator(".rag-chat").get_by_label("Dislike").last.click()
            expect(page.locator("#rag-note-row")).to_be_visible()
            page.get_by_placeholder(re.compile("What should it have found")).fill(
                "served on port 9091")
            page.get_by_role("button", name="Send note").click()
            expect(page.locator("#rag-chat-status")).to_contain_text("note is saved")
            rows = running.workspace.feedback.list()
            assert [(r.rating, r.note, r.question) for r in rows] == [
                (-1, "served on port 9091", QUESTION)]
            assert rows[0].sources and rows[0].sources[0]["source"] == "ports.md"

            page.reload()  # the chat is still there, opened
            chat = page.locator(".rag-chat")
            expect(chat).to_contain_text("connect on port 19530", timeout=30_000)
            expect(listing).to_contain_text(QUESTION)

            page.locator("#rag-conversation-tools").get_by_text(
                "Rename, export, delete").click()
            with page.expect_download() as download:
                page.locator("#rag-export").click()
            exported = Path(download.value.path()).read_text(encoding="utf-8")
            assert f"## 1. {QUESTION}" in exported and "**Cited sources**" in exported
            assert "[1] ports.md" in exported

            # regenerate: the last reply is asked again and replaced, in the chat and saved
            llm.script(reasoning_answer(["Again."], ["Port 19530, for gRPC [1]."]))
            page.locator("#rag-regenerate").click()
            expect(page.locator(".rag-chat")).to_contain_text("Port 19530, for gRPC",
                                                              timeout=60_000)
            expect(page.locator(".rag-chat")).not_to_contain_text("connect on port 19530")
            [conv] = running.workspace.conversations.list(owner := _owner(running))
            replies = running.workspace.conversations.replies(owner, conv.id)
            assert [r.answer["text"] for r in replies] == ["Port 19530, for gRPC [1]."]

            running.close()  # a restart on the same port and databases
            running = RunningApp(tmp_path / "kb.db", llm.base_url, embedder, port=port)
            page = context.new_page()
            page.goto(running.url)
            expect(page.locator(".rag-chat")).to_contain_text("Port 19530, for gRPC",
                                                              timeout=30_000)
            page.screenshot(path=str(tmp_path / "restored.png"))

            other = browser.new_context().new_page()  # another person's browser
            other.goto(running.url)
            expect(other.locator("#rag-chat-status")).to_be_attached(timeout=30_000)
            expect(other.locator("#rag-new-chat")).to_be_visible()
            other.wait_for_timeout(1500)
            expect(other.locator("#rag-conversations")).not_to_contain_text(QUESTION)

            # a new chat, then deleting it leaves the first one alone
            page.locator("#rag-new-chat").click()
            _ask(page, llm, "What serves the metrics?", "Port 9091 [1].")
            expect(listing := page.locator("#rag-conversations")).to_contain_text(
                "What serves the metrics?")
            page.locator("#rag-conversation-tools").get_by_text(
                "Rename, export, delete").click()
            page.locator("#rag-delete-chat").click()
            expect(page.locator("#rag-history-status")).to_contain_text("Deleted")
            expect(listing).not_to_contain_text("What serves the metrics?")
            expect(listing).to_contain_text(QUESTION)
        finally:
            browser.close()
            running.close()


def _owner(running: RunningApp) -> str:
    """The one browser that has saved conversations."""
    from sqlalchemy import text

    with running.workspace.db.engine.connect() as connection:
        [owner] = connection.execute(text("SELECT DISTINCT owner FROM conversations")).scalars()
    return owner


def _login(page, url: str, name: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#rag-new-chat")).to_be_visible(timeout=30_000)


def test_each_account_sees_only_its_own_conversations(tmp_path: Path,
                                                      embedder: LocalEmbedder) -> None:
    from gradio_client import Client
    from playwright.sync_api import expect, sync_playwright

    chromium_or_skip()
    accounts = Workspace(f"sqlite:///{tmp_path / 'app.db'}")
    accounts.accounts.add("anna", "anna's password", Role.EDITOR)
    accounts.accounts.add("vera", "vera's password", Role.VIEWER)
    accounts.close()
    with FakeGptOss() as llm, sync_playwright() as p:
        running = _start(tmp_path, llm, embedder, free_port())
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            anna = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            _login(anna, running.url, "anna", "anna's password")
            _ask(anna, llm, QUESTION, "Port 19530 [1].")
            expect(anna.locator("#rag-conversations")).to_contain_text(QUESTION)

            vera = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            _login(vera, running.url, "vera", "vera's password")
            vera.wait_for_timeout(1500)
            expect(vera.locator("#rag-conversations")).not_to_contain_text(QUESTION)
            expect(vera.locator(".rag-chat")).not_to_contain_text("19530")
            # a viewer cannot add documents in the Upload tab
            vera.get_by_role("tab", name="Upload").click()
            note = tmp_path / "viewer.md"
            note.write_text("# Viewer\n\nShould not be stored.\n", encoding="utf-8")
            vera.locator("input[type=file]").first.set_input_files([str(note)])
            expect(vera.locator("body")).to_contain_text("needs the editor role",
                                                         timeout=60_000)
            vera.screenshot(path=str(tmp_path / "viewer-refused.png"))
        finally:
            browser.close()
        try:
            assert {d.source for d in running.services.documents()} == {"ports.md"}
            viewer = Client(running.url, auth=("vera", "vera's password"), verbose=False)
            with pytest.raises(Exception, match="needs the editor role"):
                viewer.predict(["viewer.md"], api_name="/ingest")
            hits = viewer.predict("gRPC port", api_name="/search")
            assert hits and hits[0]["source"] == "ports.md"
            with pytest.raises(Exception):  # noqa: B017 - no login: Gradio refuses the client
                Client(running.url, verbose=False)
        finally:
            running.close()


def test_an_admin_manages_knowledge_bases_and_accounts(tmp_path: Path,
                                                       embedder: LocalEmbedder) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium_or_skip()
    with FakeGptOss() as llm, sync_playwright() as p:
        running = _start(tmp_path, llm, embedder, free_port(), rag_auth="root:root password")
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            _login(page, running.url, "root", "root password")
            expect(page.locator("#rag-signed-in")).to_contain_text("Signed in as root (admin)")
            # an account, from the Accounts tab
            page.get_by_role("tab", name="Accounts").click()
            page.locator("#rag-account-name textarea, #rag-account-name input").fill("anna")
            page.locator("#rag-account-password input").fill("anna's password")
            page.get_by_label("editor").check()
            page.get_by_role("button", name="Add account").click()
            expect(page.locator("#rag-accounts")).to_contain_text("editor in every knowledge")
            assert running.workspace.accounts.verify("anna", "anna's password")

            # a second knowledge base, filled from the Upload tab and asked in the chat
            page.locator("#rag-kb-tools").get_by_text("Manage knowledge bases").click()
            page.locator("#rag-kb-name input, #rag-kb-name textarea").fill("Team notes")
            page.locator("#rag-kb-tools").get_by_role("button", name="Create").click()
            expect(page.locator("#rag-kb-status")).to_contain_text("Created")
            expect(page.locator("#rag-kb input")).to_have_value("Team notes")
            page.get_by_role("tab", name="Upload").click()
            note = tmp_path / "zebra.md"
            note.write_text("# Zebras\n\nZebras sleep standing up.\n", encoding="utf-8")
            page.locator("input[type=file]").first.set_input_files([str(note)])
            docs = page.locator("#rag-docs")
            expect(docs).to_contain_text("zebra.md", timeout=60_000)
            expect(docs).not_to_contain_text("ports.md")
            expect(page.locator(".rag-stats")).to_contain_text("Team notes: 1 document")
            page.get_by_role("tab", name="Chat").click()
            _ask(page, llm, "How do zebras sleep?", "Standing up [1].")
            expect(page.locator("#rag-sources-panel")).to_contain_text("zebra.md")
            [saved] = running.workspace.conversations.list("user:root")
            assert saved.kb == "Team notes"

            # back to the default knowledge base: its documents, a new chat
            page.locator("#rag-kb input").click()
            page.get_by_role("option", name="knowledge_base").click()
            expect(page.locator(".rag-stats")).to_contain_text("knowledge_base: 1 document")
            expect(page.locator(".rag-chat")).not_to_contain_text("Standing up")
            # reopening the saved chat picks its knowledge base again
            page.locator("#rag-conversations").get_by_text("How do zebras sleep?").click()
            expect(page.locator("#rag-kb input")).to_have_value("Team notes")
            expect(page.locator(".rag-stats")).to_contain_text("Team notes: 1 document")
            page.screenshot(path=str(tmp_path / "admin.png"))

            other = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            _login(other, running.url, "anna", "anna's password")
            expect(other.locator("#rag-signed-in")).to_contain_text("anna (editor)")
            expect(other.get_by_role("tab", name="Accounts")).to_have_count(0)
            expect(other.locator("#rag-kb-tools")).to_be_hidden()
        finally:
            browser.close()
            running.close()
