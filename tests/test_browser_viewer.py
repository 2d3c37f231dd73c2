"""The passage viewer in a real Chromium: a click on a citation opens the cited PDF page with
the passage boxed where its text sits, pages turn, zoom, the original downloads; a Markdown
source opens as its section with the passage marked; unsupported sentences are underlined."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pypdfium2 as pdfium
import pytest

from rag.events import Source
from tests.helpers import BROWSER_ARGS, CHROMIUM, CLOUD_PDF, MILVUS_DOCS, RunningApp
from tests.llm_server import FakeGptOss, reasoning_answer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

MARKDOWN = MILVUS_DOCS / "about" / "overview.md"
PDF_QUESTION = "What are the essential characteristics of cloud computing?"
MD_QUESTION = "What is Milvus and what does it do?"


def _sources(running: RunningApp, question: str) -> list[Source]:
    """The sources the app's pipeline finds for a question (the same search it runs)."""
    hits = running.kb.retriever.search(question, running.kb.settings.top_k)
    return [Source(n, h) for n, h in enumerate(hits, start=1)]


def _expected_point(hit_text: str, page_number: int) -> tuple[float, float, str]:
    """Where a distinctive phrase of the passage sits on its page, as fractions of the page
    (top-left origin), found by PDFium's own text search: independent of the viewer's
    matching. Returns (x, y, phrase)."""
    pdf = pdfium.PdfDocument(str(CLOUD_PDF))
    try:
        page = pdf[page_number - 1]
        width, height = page.get_size()
        text = page.get_textpage()
        for line in hit_text.splitlines():
            words = line.split()
            if len(words) < 6:
                continue
            phrase = " ".join(words[1:5])
            searcher = text.search(phrase, match_case=False)
            found = searcher.get_next()
            if found:
                left, bottom, right, top = text.get_charbox(found[0] + 1)
                return ((left + right) / 2 / width, 1 - (bottom + top) / 2 / height, phrase)
        raise AssertionError("no searchable phrase in the passage")
    finally:
        pdf.close()


def _boxes(page: Page) -> list[dict[str, float]]:
    return page.locator("#rag-viewer .rag-hl").evaluate_all("""els => els.map(el => ({
        left: parseFloat(el.style.left) / 100, top: parseFloat(el.style.top) / 100,
        width: parseFloat(el.style.width) / 100, height: parseFloat(el.style.height) / 100}))""")


def _ask(page: Page, llm: FakeGptOss, question: str, answer: str) -> None:
    from playwright.sync_api import expect

    llm.script(reasoning_answer(["Looking at the sources."], [answer]))
    box = page.get_by_placeholder("Ask a question about your documents…")
    box.fill(question)
    box.press("Enter")
    expect(page.locator("#rag-chat-status")).to_contain_text("answered in", timeout=120_000)


def test_citation_opens_the_passage_in_its_page(web_app: tuple[RunningApp, FakeGptOss],
                                                tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    running, llm = web_app
    running.kb.ingestor.ingest_paths([CLOUD_PDF, MARKDOWN])
    sources = _sources(running, PDF_QUESTION)
    first = sources[0].hit
    assert first.source == CLOUD_PDF.name and first.page
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000},
                                    accept_downloads=True)
            page.goto(running.url)
            page.get_by_role("tab", name="Chat").click()
            _ask(page, llm, PDF_QUESTION,
                 "The definition lists the essential characteristics of cloud computing [1]. "
                 "It was first written on a typewriter in Paris.")
            chat = page.locator(".rag-chat")
            # the uncited sentence is underlined, its reason in the tooltip
            weak = chat.locator(".rag-unsupported")
            expect(weak).to_have_count(1)
            expect(weak).to_contain_text("typewriter in Paris")
            assert "cites none" in (weak.get_attribute("title") or "")

            chat.locator('a[href="#src-1"]').first.click()
            viewer = page.locator("#rag-viewer")
            expect(viewer.locator("img")).to_be_visible(timeout=30_000)
            expect(page.locator("#rag-viewer-title")).to_contain_text(CLOUD_PDF.name)
            shown = int(viewer.locator(".rag-page").get_attribute("data-page") or 0)
            assert first.page <= shown <= (first.page_end or first.page)
            boxes = _boxes(page)
            assert boxes, "the passage has no highlight box"
            x, y, phrase = _expected_point(first.text, shown)
            assert any(b["left"] <= x <= b["left"] + b["width"]
                       and b["top"] - 0.005 <= y <= b["top"] + b["height"] + 0.005
                       for b in boxes), (phrase, x, y, boxes)
            # the boxes lie on the image
            image = viewer.locator("img").bounding_box()
            first_box = viewer.locator(".rag-hl").first.bounding_box()
            assert image and first_box
            assert image["x"] <= first_box["x"] <= image["x"] + image["width"]
            assert image["y"] <= first_box["y"] <= image["y"] + image["height"]
            page.screenshot(path=str(tmp_path / "viewer-pdf.png"))

            # zoom in: a larger image, the boxes in the same place relative to it
            width = image["width"]
            page.locator("#rag-viewer-zoom-in").click()
            expect(viewer.locator("img")).not_to_have_attribute(
                "width", str(int(width)), timeout=30_000)
            assert _boxes(page) == pytest.approx(boxes, abs=0.002)
            # the next page, then back
            page.locator("#rag-viewer-next").click()
            expect(viewer.locator(".rag-page")).to_have_attribute("data-page", str(shown + 1),
                                                                  timeout=30_000)
            page.locator("#rag-viewer-prev").click()
            expect(viewer.locator(".rag-page")).to_have_attribute("data-page", str(shown),
                                                                  timeout=30_000)
            # the original file, byte for byte
            with page.expect_download() as download:
                page.locator("#rag-viewer-download").click()
            saved = tmp_path / "downloaded.pdf"
            download.value.save_as(saved)
            assert download.value.suggested_filename == CLOUD_PDF.name
            assert saved.read_bytes() == CLOUD_PDF.read_bytes()

            _markdown_passage(page, running, llm, tmp_path)
        finally:
            browser.close()


def _markdown_passage(page: Page, running: RunningApp, llm: FakeGptOss, tmp_path: Path) -> None:
    """A Markdown source opens as its section's text with the cited passage marked."""
    from playwright.sync_api import expect

    sources = _sources(running, MD_QUESTION)
    n = next(s.n for s in sources if s.hit.source == MARKDOWN.name)
    hit = sources[n - 1].hit
    page.get_by_role("button", name="Clear chat").click()  # a new question, not a follow-up
    _ask(page, llm, MD_QUESTION, f"Milvus is a vector database built for scale [{n}].")
    page.locator(".rag-chat").locator(f'a[href="#src-{n}"]').last.click()
    title = page.locator("#rag-viewer-title")
    expect(title).to_contain_text(MARKDOWN.name, timeout=30_000)
    marked = page.locator("#rag-viewer-body mark.rag-passage")
    expect(marked).to_be_visible()
    shown = re.sub(r"\s+", " ", marked.inner_text()).strip()
    assert shown == re.sub(r"\s+", " ", hit.text).strip()
    expect(page.locator("#rag-viewer img")).to_have_count(0)
    expect(page.locator("#rag-viewer-prev")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "viewer-markdown.png"))
    # a source card's "View in document" opens its passage too
    card = page.locator(f"#rag-sources-panel #src-{n}")
    page.locator("#rag-viewer-close").click()
    expect(page.locator("#rag-viewer:visible")).to_have_count(0, timeout=30_000)
    card.locator("button.rag-view").click()
    expect(marked).to_be_visible(timeout=30_000)


def test_api_markdown_links_open_the_passage(web_app: tuple[RunningApp, FakeGptOss]) -> None:
    from playwright.sync_api import expect, sync_playwright

    running, llm = web_app
    running.kb.ingestor.ingest_paths([CLOUD_PDF])
    llm.script(reasoning_answer(["Hm."], ["Five essential characteristics are listed [1]."]))
    _, details = running.client().predict(PDF_QUESTION, api_name="/ask")
    assert details["done"] and details["claims"]
    link = re.search(r"\[1\]\(<([^>]+)>\)", details["markdown"])
    assert link, details["markdown"]
    chunk = details["sources"][0]["chunk_id"]
    assert f"view={chunk}" in link.group(1)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(link.group(1))
            expect(page.locator("#rag-viewer img")).to_be_visible(timeout=60_000)
            expect(page.locator("#rag-viewer-title")).to_contain_text(CLOUD_PDF.name)
            assert _boxes(page)
        finally:
            browser.close()
