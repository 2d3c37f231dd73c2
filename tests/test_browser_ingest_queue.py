"""Two people upload at once in a real Chromium: the one-file upload is stored while the
60-file one is still running, and a chat answers from it meanwhile; then the big one finishes
whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import BROWSER_ARGS, CHROMIUM, MILVUS_DOCS, RunningApp
from tests.llm_server import FakeGptOss, reasoning_answer

pytestmark = pytest.mark.browser


def test_a_small_upload_and_a_chat_go_on_beside_a_big_upload(
        web_app: tuple[RunningApp, FakeGptOss], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    running, llm = web_app
    big = sorted(MILVUS_DOCS.rglob("*.md"))[:60]
    note = tmp_path / "team-note.md"
    note.write_text("# Staging\n\nThe staging cluster restarts every Sunday at 03:00 UTC, so "
                    "long jobs should be started after that.\n", encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            pages = []
            for _ in range(2):  # two browser contexts: two people, two sessions
                page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                page.goto(running.url)
                expect(page.get_by_role("tab", name="Upload")).to_have_attribute(
                    "aria-selected", "true", timeout=30_000)
                pages.append(page)
            first, second = pages
            first.locator("input[type=file]").first.set_input_files([str(f) for f in big])
            first_results = first.locator("#rag-results")
            expect(first_results).to_contain_text(re.compile(r"\((\d+)/60\)"),
                                                  timeout=120_000)
            second.locator("input[type=file]").first.set_input_files([str(note)])
            expect(second.locator("#rag-results")).to_contain_text("added", timeout=120_000)
            stored = {d.source for d in running.services.documents()}
            assert "team-note.md" in stored
            assert len(stored) < 30, "the big upload was nearly done: nothing was shown"
            expect(first_results).not_to_contain_text("added")  # still running
            first.screenshot(path=str(tmp_path / "big-upload-running.png"))

            second.get_by_role("tab", name="Chat").click()
            llm.script(reasoning_answer(["The note says when."],
                                        ["The staging cluster restarts every Sunday at "
                                         "03:00 UTC [1]."]))
            box = second.get_by_placeholder("Ask a question about your documents…")
            box.fill("When is staging restarted?")
            box.press("Enter")
            expect(second.locator("#rag-chat-status")).to_contain_text("answered in",
                                                                       timeout=120_000)
            expect(second.locator(".rag-source").first).to_contain_text("team-note.md")
            assert len(running.services.documents()) < 61  # answered during the big upload
            second.screenshot(path=str(tmp_path / "chat-during-upload.png"))

            expect(first_results).to_contain_text("added", timeout=600_000)
        finally:
            browser.close()
    docs = running.services.documents()
    assert len(docs) == 61
    for doc in docs:
        assert running.kb.store.count_chunks(doc.source) == doc.chunks > 0
