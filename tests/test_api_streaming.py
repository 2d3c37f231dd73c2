"""What `/ask` sends over the wire while a long answer streams, read as raw bytes on both of
Gradio's paths: the REST path (`/call/ask`, whole values per update) and the queue protocol
(gradio_client and the browser, diffs)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from rag.embedding import LocalEmbedder
from rag.ui.api import UPDATE_SECONDS
from tests.helpers import CLOUD_PDF, RunningApp
from tests.llm_server import FakeGptOss, reasoning_answer

INPUTS = ["What is cloud computing?", "medium", 4, "hybrid", False, [], ""]
PARTS = [f"word{i} " * 10 for i in range(2000)]  # 2,000 deltas, a 169 KB answer
ANSWER_BYTES = sum(len(p) for p in PARTS)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory,
        embedder: LocalEmbedder) -> Iterator[tuple[RunningApp, FakeGptOss]]:
    with FakeGptOss() as llm:
        running = RunningApp(tmp_path_factory.mktemp("stream") / "kb.db", llm.base_url,
                             embedder)
        running.kb.ingestor.ingest_paths([CLOUD_PDF])
        try:
            yield running, llm
        finally:
            running.close()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_the_rest_path_sends_a_bounded_number_of_whole_updates(app) -> None:
    running, llm = app
    llm.script(reasoning_answer(["Thinking."], PARTS))
    event = _post(running.url + "gradio_api/call/ask", {"data": INPUTS})["event_id"]
    started = time.monotonic()
    updates, sent, last = 0, 0, ""
    with urllib.request.urlopen(running.url + f"gradio_api/call/ask/{event}",
                                timeout=120) as response:
        for line in response:
            sent += len(line)
            if line.startswith(b"data: ["):
                updates += 1
                last = json.loads(line[6:])[0]
    seconds = time.monotonic() - started
    assert last == "".join(PARTS)  # the whole answer arrives
    # at most one update per UPDATE_SECONDS (plus the first and the final one), not one per
    # delta: 2,000 deltas sent 338 MB before updates were spaced
    assert updates <= seconds / UPDATE_SECONDS + 3, (updates, seconds)
    assert sent <= (updates + 1) * 3 * ANSWER_BYTES


def test_the_queue_protocol_sends_diffs(app) -> None:
    running, llm = app
    llm.script(reasoning_answer(["Thinking."], PARTS))
    with urllib.request.urlopen(running.url + "config", timeout=30) as response:
        config = json.loads(response.read())
    fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "ask")
    _post(running.url + "gradio_api/queue/join",
          {"data": INPUTS, "fn_index": fn, "session_hash": "streamtest", "event_data": None,
           "trigger_id": None})
    sent = 0
    with urllib.request.urlopen(running.url + "gradio_api/queue/data?session_hash=streamtest",
                                timeout=120) as response:
        for line in response:
            sent += len(line)
            if b"process_completed" in line:
                break
    assert sent < 10 * ANSWER_BYTES  # diffs: a few times the answer, whatever its updates
