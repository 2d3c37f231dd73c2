"""The web app in a real Chromium: upload in the Upload tab, ask in the Chat tab, at desktop
(1400 px), laptop (1024 px) and phone (420 px) widths; screenshots for the README."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import (
    BROWSER_ARGS,
    CHROMIUM,
    CLOUD_PDF,
    MILVUS_DOCS,
    ROOT,
    RunningApp,
)
from tests.llm_server import SSE, FakeGptOss, reasoning_answer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

ASSETS = ROOT / "assets"
# The README's screenshots are refreshed only on request (RAG_SCREENSHOTS=1), so a test run
# leaves the checkout clean.
REFRESH_SCREENSHOTS = os.environ.get("RAG_SCREENSHOTS") == "1"
MARKDOWN = MILVUS_DOCS / "about" / "overview.md"
PDF = CLOUD_PDF
PDF_NAME = PDF.name
QUESTION = "What are the essential characteristics of cloud computing?"
REASONING = ["The user asks for the essential characteristics. ",
             "Source [1] lists them; the definition itself is in the sources too."]
ANSWER = ["The NIST definition names five essential characteristics of cloud computing [1]: ",
          "**on-demand self-service**, **broad network access**, **resource pooling**, ",
          "**rapid elasticity** and **measured service** [1][2]. ",
          "Cloud computing itself is a model for convenient, on-demand network access to a ",
          "shared pool of configurable computing resources [2]."]
DESKTOP = {"width": 1400, "height": 900}
LAPTOP = {"width": 1024, "height": 800}
PHONE = {"width": 420, "height": 860}
# Words of an element's text that the browser broke over two lines ("(ol" / "lama)").
SPLIT_WORDS = """el => {
  const node = [...el.childNodes].find(n => n.nodeType === Node.TEXT_NODE);
  const split = [];
  for (const m of node.textContent.matchAll(/\\S+/g)) {
    const range = document.createRange();
    range.setStart(node, m.index);
    range.setEnd(node, m.index + m[0].length);
    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    if (tops.size > 1) split.push(m[0]);
  }
  return split;
}"""


def paced(deltas: Iterable[dict[str, Any]], seconds: float) -> Iterator[dict[str, Any]]:
    """The deltas at a model's pace: the loopback server sends each one as it is produced,
    so the reasoning takes real time and its Thinking block has a duration to show."""
    for delta in deltas:
        yield delta
        time.sleep(seconds)


def paced_answer() -> SSE:
    """The scripted reply (REASONING, then ANSWER) at a model's pace."""
    streamed = reasoning_answer(REASONING, ANSWER)
    streamed.deltas = paced(streamed.deltas, 0.2)  # type: ignore[assignment]
    return streamed



@pytest.fixture
def app(web_app: tuple[RunningApp, FakeGptOss]) -> tuple[RunningApp, FakeGptOss]:
    """A fresh app with an empty knowledge base and the loopback LLM."""
    return web_app


def test_upload_then_chat_in_chromium(app: tuple[RunningApp, FakeGptOss],
                                      tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    running, llm = app
    shots = ASSETS if REFRESH_SCREENSHOTS else tmp_path
    ASSETS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport=DESKTOP)
            page.goto(running.url)
            expect(page.get_by_text("gpt-oss-rag").first).to_be_visible(timeout=30_000)
            # an empty knowledge base opens on the Upload tab
            upload_tab = page.get_by_role("tab", name="Upload")
            expect(upload_tab).to_have_attribute("aria-selected", "true", timeout=30_000)
            expect(page.locator("#rag-llm-status")).to_contain_text("Reachable", timeout=30_000)
            _check_desktop_frame(page)

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
            _check_radio_keeps_its_dot(page)
            llm.script(paced_answer())
            box = page.get_by_placeholder("Ask a question about your documents…")
            box.fill(QUESTION)
            box.press("Enter")
            status = page.locator("#rag-chat-status")
            expect(status).to_contain_text("answered in", timeout=120_000)
            chat = page.locator(".rag-chat")
            expect(chat).to_contain_text("measured service")
            # the first reply's Thinking block says how long the model thought
            expect(chat.locator(".thought-group .title").first).to_contain_text(
                re.compile(r"Thinking\s*\(\d+(\.\d)?s\)"))
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
            _laptop_screenshot(page, shots / "screenshot-laptop.png")
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

            # delete a document: pick its row, press delete, confirm beside the button; the
            # result shows there, where the user is, and the lists follow
            page.get_by_role("tab", name="Upload").click()
            docs.get_by_text("overview.md").click()
            delete = page.get_by_role("button", name="Delete selected")
            confirm = page.locator("#rag-confirm")
            note = page.locator("#rag-delete-status")
            delete.click()
            expect(confirm).to_contain_text("Delete overview.md (", timeout=30_000)
            expect(confirm).to_contain_text("cannot be undone")
            confirm.get_by_role("button", name="Cancel").click()
            expect(note).to_contain_text("Nothing deleted", timeout=30_000)
            expect(confirm).to_be_hidden()
            expect(docs).to_contain_text("overview.md")
            delete.click()
            page.locator("#rag-confirm-delete").click()
            expect(note).to_contain_text("Deleted overview.md", timeout=30_000)
            expect(note).to_be_in_viewport()
            expect(confirm).to_be_hidden()
            expect(docs).not_to_contain_text("overview.md")
            expect(page.locator(".rag-stats")).to_contain_text("1 document ")
            assert [d.source for d in running.kb.store.list_documents()] == [PDF_NAME]

            llm.script(paced_answer())
            _phone_chat(browser.new_page(viewport=PHONE), running.url,
                        shots / "screenshot-phone.png")
        finally:
            browser.close()


def _check_desktop_frame(page: Page) -> None:
    """At 1400 px the settings sidebar is open beside the page, its endpoint breaks between
    words only, and its colour runs down the whole page."""
    from playwright.sync_api import expect

    expect(page.locator(".sidebar")).to_have_class(re.compile(r"\bopen\b"))
    endpoint = page.locator("#rag-llm-status code").nth(1)
    expect(endpoint).to_contain_text("(openai-compatible)")
    assert endpoint.evaluate(SPLIT_WORDS) == []
    strip = page.locator(".gradio-container").evaluate(
        "el => getComputedStyle(el).backgroundImage")
    assert "linear-gradient" in strip


def _check_radio_keeps_its_dot(page: Page) -> None:
    """The option just clicked stays filled while the pointer is still on it."""
    dense = page.locator("#rag-mode input[value=dense]")
    page.locator("#rag-mode label", has_text="Dense").click()
    page.get_by_placeholder("Ask a question about your documents…").focus()
    page.wait_for_timeout(300)  # Gradio's transitions
    hybrid = page.locator("#rag-mode input[value=hybrid]")
    filled = dense.evaluate("el => getComputedStyle(el).backgroundColor")
    empty = hybrid.evaluate("el => getComputedStyle(el).backgroundColor")
    assert dense.is_checked() and filled != empty
    page.locator("#rag-mode label", has_text="Hybrid").click()
    assert hybrid.is_checked()


def _laptop_screenshot(page: Page, path: Path) -> None:
    """At 1024 px, and at 800 px where the sidebar still sits beside the page, the title
    stays on one line."""
    for width in (800, LAPTOP["width"]):
        page.set_viewport_size({"width": width, "height": LAPTOP["height"]})
        page.wait_for_timeout(400)
        title = page.locator(".rag-header h1")
        lines = title.evaluate(
            "el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)")
        assert lines < 1.5, f"the title wraps at {width} px"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path))
    page.set_viewport_size(DESKTOP)


def _phone_chat(page: Page, url: str, path: Path) -> None:
    """At 420 px the sidebar starts closed: the question box is in view at once, an answer
    comes back, and the chevron opens the settings."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.locator("#rag-llm-status")).to_contain_text("Reachable", timeout=30_000)
    sidebar = page.locator(".sidebar")
    expect(sidebar).not_to_have_class(re.compile(r"\bopen\b"), timeout=10_000)
    box = page.get_by_placeholder("Ask a question about your documents…")
    expect(box).to_be_in_viewport()
    box.fill(QUESTION)
    box.press("Enter")
    expect(page.locator("#rag-chat-status")).to_contain_text("answered in", timeout=60_000)
    expect(page.locator(".rag-chat")).to_contain_text("measured service")
    expect(page.locator("#rag-sources-panel")).to_contain_text(PDF_NAME)
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    sidebar.locator(".toggle-button").click()
    expect(sidebar).to_have_class(re.compile(r"\bopen\b"))
    expect(page.locator("#rag-llm-status")).to_be_in_viewport()
    page.close()


def test_upload_of_files_with_hostile_names_in_chromium(app: tuple[RunningApp, FakeGptOss],
                                                        tmp_path: Path) -> None:
    """Accented, CJK, emoji, quote and backslash names: each stored, listed, searchable, and the
    knowledge base still opens for the next file (issue 12, item 1, through a real upload)."""
    from playwright.sync_api import expect, sync_playwright

    running, _ = app
    names = ["résumé.md", "文档.md", "notes 🚀.md", "it's \"quoted\" \\ back.md"]
    files = []
    for i, name in enumerate(names):
        folder = tmp_path / f"upload{i}"
        folder.mkdir()
        path = folder / name
        path.write_text(f"# Note {i}\n\nThe quokka number {i} lives on Rottnest Island.\n")
        files.append(str(path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport=DESKTOP)
            page.goto(running.url)
            upload_tab = page.get_by_role("tab", name="Upload")
            expect(upload_tab).to_have_attribute("aria-selected", "true", timeout=30_000)
            page.locator("input[type=file]").first.set_input_files(files)
            expect(page.locator(".rag-stats")).to_contain_text("4 documents", timeout=180_000)
            docs = page.locator("#rag-docs")
            for name in names:
                expect(docs).to_contain_text(name, timeout=30_000)
        finally:
            browser.close()
    found = running.client().predict("quokka Rottnest", 10, "bm25", api_name="/search")
    assert {hit["source"] for hit in found} == set(names)
