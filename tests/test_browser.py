"""The web app in a real Chromium: upload in the Upload tab, ask in the Chat tab, screenshots."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.embedding import LocalEmbedder
from tests.llm_server import FakeGptOss, reasoning_answer
from tests.test_ui_api import PDF, PDF_NAME, RunningApp

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ASSETS = Path(__file__).resolve().parents[1] / "assets"
# The README's screenshots are refreshed only on request (RAG_SCREENSHOTS=1), so a test run
# leaves the checkout clean.
REFRESH_SCREENSHOTS = os.environ.get("RAG_SCREENSHOTS") == "1"
MARKDOWN = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus-docs" / "about" / (
    "overview.md")
QUESTION = "What are the essential characteristics of cloud computing?"
REASONING = ["The user asks for the essential characteristics. ",
             "Source [1] lists them; the definition itself is in the sources too."]
ANSWER = ["The NIST definition names five essential characteristics of cloud computing [1]: ",
          "**on-demand self-service**, **broad network access**, **resource pooling**, ",
          "**rapid elasticity** and **measured service** [1][2]. ",
          "Cloud computing itself is a model for convenient, on-demand network access to a ",
          "shared pool of configurable computing resources [2]."]


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing; .ci/run must install Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")


@pytest.fixture
def app(tmp_path: Path, embedder: LocalEmbedder) -> Iterator[tuple[RunningApp, FakeGptOss]]:
    """A fresh app with an empty knowledge base and the loopback LLM."""
    _chromium_or_skip()
    with FakeGptOss() as llm:
        running = RunningApp(tmp_path / "kb.db", llm.base_url, embedder)
        try:
            yield running, llm
        finally:
            running.close()


def test_upload_then_chat_in_chromium(app: tuple[RunningApp, FakeGptOss],
                                      tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    running, llm = app
    shots = ASSETS if REFRESH_SCREENSHOTS else tmp_path
    ASSETS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(running.url)
            expect(page.get_by_text("gpt-oss-rag").first).to_be_visible(timeout=30_000)
            # an empty knowledge base opens on the Upload tab
            upload_tab = page.get_by_role("tab", name="Upload")
            expect(upload_tab).to_have_attribute("aria-selected", "true", timeout=30_000)
            expect(page.locator("#rag-llm-status")).to_contain_text("Reachable", timeout=30_000)

            page.locator("input[type=file]").first.set_input_files([str(PDF), str(MARKDOWN)])
            results = page.locator("#rag-results")
            expect(results).to_contain_text("added", timeout=180_000)
            expect(results).to_contain_text(PDF_NAME)
            expect(results).to_contain_text("overview.md")
            docs = page.locator("#rag-docs")
            expect(docs).to_contain_text(PDF_NAME, timeout=30_000)
            expect(page.locator(".rag-stats")).to_contain_text("2 documents")
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "screenshot-upload.png"))

            page.get_by_role("tab", name="Chat").click()
            llm.script(reasoning_answer(REASONING, ANSWER))
            box = page.get_by_placeholder("Ask a question about your documents…")
            box.fill(QUESTION)
            box.press("Enter")
            status = page.locator("#rag-chat-status")
            expect(status).to_contain_text("answered in", timeout=120_000)
            chat = page.locator(".rag-chat")
            expect(chat).to_contain_text("measured service")
            expect(chat).to_contain_text("Thinking")
            expect(chat.locator('a[href="#src-1"]').first).to_be_visible()
            panel = page.locator("#rag-sources-panel")
            expect(panel).to_contain_text(PDF_NAME)
            expect(panel).to_contain_text(re.compile(r"p\. \d"))
            expect(panel).to_contain_text("cosine")
            expect(panel).to_contain_text("BM25")
            expect(panel.locator(".rag-cited").first).to_be_visible()
            assert llm.requests and llm.requests[-1]["messages"][-1]["content"].endswith(
                QUESTION)
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "screenshot-chat.png"))
            # a citation opens its source card
            chat.locator('a[href="#src-1"]').first.click()
            expect(panel.locator("#src-1 details")).to_have_attribute("open", "")

            # a second question gets its own sources; selecting the first reply shows its own
            follow_up = "What does Milvus do?"
            box.fill(follow_up)
            box.press("Enter")
            expect(panel.locator(".rag-sources-head")).to_contain_text(follow_up,
                                                                       timeout=60_000)
            expect(status).to_contain_text("answered in", timeout=60_000)
            expect(panel).to_contain_text("overview.md")
            chat.locator(".message").first.click()
            expect(panel.locator(".rag-sources-head")).to_contain_text(QUESTION)

            # delete a document: pick its row, press delete; the lists follow
            page.get_by_role("tab", name="Upload").click()
            docs.get_by_text("overview.md").click()
            page.get_by_role("button", name="Delete selected").click()
            expect(page.get_by_text("Deleted overview.md")).to_be_visible(timeout=30_000)
            expect(docs).not_to_contain_text("overview.md")
            expect(page.locator(".rag-stats")).to_contain_text("1 document ")
            assert [d.source for d in running.kb.store.list_documents()] == [PDF_NAME]
        finally:
            browser.close()
