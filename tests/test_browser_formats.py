"""Office files, a scanned image and a locked PDF dropped into the Upload tab of the web app in a
real Chromium: each readable one is stored (the image by OCR, which the document list says),
the locked one fails alone with its reason, and the chat's sources show slides and sheet rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import BROWSER_ARGS, CHROMIUM, OFFICE, RunningApp
from tests.llm_server import FakeGptOss, reasoning_answer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

FILES = [OFFICE / name for name in ("simple.docx", "fake-power-point-table.pptx",
                                    "stanley-cups.xlsx", "DA-1p.png", "password.pdf")]


@pytest.fixture
def app(web_app: tuple[RunningApp, FakeGptOss]) -> tuple[RunningApp, FakeGptOss]:
    return web_app


@contextmanager
def _uploading(url: str, files: list[Path]) -> Iterator[Page]:
    """Chromium on the app's Upload tab (where an empty knowledge base opens), desktop-sized,
    with `files` dropped into it; the browser closes afterwards."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            expect(page.get_by_role("tab", name="Upload")).to_have_attribute(
                "aria-selected", "true", timeout=30_000)
            page.locator("input[type=file]").first.set_input_files([str(f) for f in files])
            yield page
        finally:
            browser.close()


def test_office_files_and_a_scan_upload_and_answer_with_their_locations(
        app: tuple[RunningApp, FakeGptOss], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    running, llm = app
    with _uploading(running.url, FILES) as page:
        results = page.locator("#rag-results")
        expect(results).to_contain_text("password-protected", timeout=240_000)
        for name in ("simple.docx", "fake-power-point-table.pptx", "stanley-cups.xlsx",
                     "DA-1p.png"):  # a row reads: name, result, pages, chunks, details
            expect(results).to_contain_text(re.compile(re.escape(name) + r"\s*✓ added"))
        expect(results).to_contain_text(re.compile(r"password\.pdf\s*✗ failed"))
        docs = page.locator("#rag-docs")  # name, kind, pages, chunks, added, notes
        expect(docs).to_contain_text(
            re.compile(r"DA-1p\.png\s*image\s*1\s*\d+\s*[\d-]+ [\d:]+\s*OCR"))
        expect(docs).to_contain_text(re.compile(r"fake-power-point-table\.pptx\s*pptx"))
        expect(docs).not_to_contain_text("password.pdf")
        page.screenshot(path=str(tmp_path / "upload-formats.png"))

        page.get_by_role("tab", name="Chat").click()
        llm.script(reasoning_answer(["Looking at the sources."],
                                    ["The table lists the colours [1]."]))
        box = page.get_by_placeholder("Ask a question about your documents…")
        box.fill("Which team from Toronto won Stanley Cups, and what colours are in the "
                 "slide's table?")
        box.press("Enter")
        expect(page.locator("#rag-chat-status")).to_contain_text("answered in",
                                                                 timeout=120_000)
        panel = page.locator("#rag-sources-panel")
        expect(panel).to_contain_text(re.compile(r"rows \d+-\d+"))
        expect(panel).to_contain_text(re.compile(r"slide \d"))
        # the cited source first; the others folded under "Also retrieved (n)"
        expect(panel.locator(".rag-source").first).to_have_class(re.compile("rag-cited"))
        fold = panel.locator("details.rag-also")
        summary = fold.locator(":scope > summary")
        expect(summary).to_have_text(re.compile(r"Also retrieved \(\d\)"))
        expect(fold.locator(".rag-source").first).not_to_be_visible()
        summary.click()
        expect(fold.locator(".rag-source").first).to_be_visible()
        page.screenshot(path=str(tmp_path / "chat-formats.png"), full_page=True)


def test_stop_ends_an_upload_after_the_current_file(app: tuple[RunningApp, FakeGptOss],
                                                     tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from tests.helpers import MILVUS_DOCS

    running, _ = app
    files = sorted(MILVUS_DOCS.rglob("*.md"))[:40]
    with _uploading(running.url, files) as page:
        results = page.locator("#rag-results")
        expect(results).to_contain_text(re.compile(r"\((\d+)/40\)"), timeout=120_000)
        page.locator("#rag-stop-upload").click()
        expect(results).to_contain_text("not reached", timeout=120_000)
        page.screenshot(path=str(tmp_path / "stopped.png"))
    done = running.services.documents()
    names = {f.name for f in files}
    assert 0 < len(done) < 40  # some stored, the rest not reached
    for doc in done:  # each stored whole
        assert doc.source in names and running.kb.store.count_chunks(doc.source) == doc.chunks
