"""A faulty LLM server seen from the web app: every failure inside a stream ends the answer
with a message a user can act on, on the `/ask` API (gradio_client) and in the browser chat
(a real Chromium). Issue 12, item 5: `data: {not json` gave `done: false, error: null` on
`/ask` and a bare "Error" in the browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gradio_client import handle_file

from rag.embedding import LocalEmbedder
from tests.helpers import BROWSER_ARGS, CHROMIUM, FAQ, RunningApp, chromium_or_skip
from tests.llm_server import SSE, FakeGptOss, raw_stream

DOCUMENT = FAQ / "product_faq.md"
QUESTION = "What is Milvus?"
BEFORE = "Milvus is "  # the answer text the server sends before it fails


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeGptOss]:
    with FakeGptOss() as server:
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, llm: FakeGptOss,
        embedder: LocalEmbedder) -> Iterator[RunningApp]:
    """The app over one Markdown file, answering from the loopback server."""
    running = RunningApp(tmp_path_factory.mktemp("errors") / "kb.db", llm.base_url, embedder)
    [result] = running.client().predict([handle_file(str(DOCUMENT))], api_name="/ingest")
    assert result["status"] == "added", result
    yield running
    running.close()


FAULTS = {
    "malformed line": (raw_stream(["{not json"], before=[BEFORE]),
                       "sent a malformed stream line (not JSON: "),
    "not utf-8": (raw_stream([b'{"choices": [{"delta": {"content": "\xff"}}]}'],
                             before=[BEFORE]),
                  "sent a malformed stream line (not UTF-8 text: byte 0xff"),
    "unexpected shape": (raw_stream(['{"choices": [{"delta": {"content": 5}}]}'],
                                    before=[BEFORE]),
                         "unexpected shape (choices[0].delta.content: expected text, got 5)"),
    "error mid-stream": (SSE([{"content": BEFORE}], error={"message": "CUDA out of memory"}),
                         "stopped in the middle of the answer: CUDA out of memory"),
    "cut connection": (SSE([{"content": BEFORE}], drop="chunked"),
                       "stopped in the middle of the answer: the connection was cut"),
    "ends early": (SSE([{"content": BEFORE}], drop="eof"),
                   "the stream ended before the model finished"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_ask_api_ends_a_failed_stream_with_its_error(app: RunningApp, llm: FakeGptOss,
                                                     fault: str) -> None:
    scenario, expected = FAULTS[fault]
    llm.reset()
    llm.script(scenario)
    job = app.client().submit(QUESTION, "low", 3, "hybrid", False, api_name="/ask")
    streamed = list(job)
    answer, details = job.result()
    assert answer.strip() == BEFORE.strip()  # what came before the failure stays
    assert details["done"] is True
    assert details["error"] is not None and expected in details["error"], details["error"]
    assert details["sources"] and details["sources"][0]["source"] == DOCUMENT.name
    assert not any(d["error"] for _, d in streamed[:-1] if not d["done"])  # only at the end
    assert llm.chat_requests == 1



@pytest.mark.browser
def test_browser_chat_shows_the_malformed_stream_message(app: RunningApp,
                                                         llm: FakeGptOss) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium_or_skip()
    llm.reset()
    llm.script(raw_stream(["{not json"], before=[BEFORE]))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(app.url)
            page.get_by_role("tab", name="Chat").click()
            box = page.get_by_placeholder("Ask a question about your documents…")
            box.fill(QUESTION)
            box.press("Enter")
            chat = page.locator(".rag-chat")
            expect(chat).to_contain_text(f"The LLM server at {llm.base_url} sent a malformed "
                                         "stream line", timeout=120_000)
            expect(chat).to_contain_text("{not json")
            expect(chat).to_contain_text("OPENAI_BASE_URL points at an OpenAI-compatible")
            expect(chat).to_contain_text(BEFORE.strip())  # the partial answer stays
            # the error is the reply, not a bare Gradio "Error" toast, and nothing is pending
            assert page.locator(".toast-body").count() == 0
            expect(chat).not_to_contain_text("Searching…")
            assert llm.chat_requests == 1
        finally:
            browser.close()
