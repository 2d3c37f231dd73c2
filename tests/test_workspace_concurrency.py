"""Five sessions chat through the running app (its /chat route, as the browser does) while an
ingest runs, and rate every reply: no saved message and no feedback row is lost."""

from __future__ import annotations

import threading
from pathlib import Path

from rag.embedding import LocalEmbedder
from tests.helpers import FAQ, RunningApp
from tests.llm_server import FakeGptOss

SESSIONS, QUESTIONS = 5, 3


def test_five_chats_during_an_ingest_lose_nothing(tmp_path: Path,
                                                  embedder: LocalEmbedder) -> None:
    from gradio_client import handle_file

    with FakeGptOss() as llm:
        running = RunningApp(tmp_path / "kb.db", llm.base_url, embedder)
        try:
            running.kb.ingestor.ingest_paths([sorted(FAQ.glob("*.md"))[0]])
            files = [handle_file(str(p)) for p in sorted(FAQ.glob("*.md"))[1:]]
            errors: list[BaseException] = []
            ingested: list[dict] = []

            def ingest() -> None:
                try:
                    ingested.extend(running.client().predict(files, "", api_name="/ingest"))
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion
                    errors.append(exc)

            def chat(n: int) -> None:
                try:
                    client = running.client()
                    for q in range(QUESTIONS):
                        result = client.predict(f"Question {q} of session {n}: what is Milvus?",
                                                "low", 3, "hybrid", [], False, f"browser-{n}",
                                                "", api_name="/chat")
                        assert result[2].startswith("✓ answered in"), result[2]
                        running.workspace.feedback.record(
                            owner=f"browser:browser-{n}", kb="knowledge_base", rating=1,
                            note="", answer={"question": f"q{q}", "text": "a", "sources": []},
                            settings={})
                except BaseException as exc:  # noqa: BLE001 - reported by the assertion
                    errors.append(exc)

            threads = [threading.Thread(target=ingest)]
            threads += [threading.Thread(target=chat, args=(n,)) for n in range(SESSIONS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(600)
            assert not any(t.is_alive() for t in threads)
            assert errors == []
            assert [r["status"] for r in ingested] == ["added"] * len(files)
            saved = running.workspace.conversations
            for n in range(SESSIONS):
                [conversation] = saved.list(f"browser:browser-{n}")
                replies = saved.replies(f"browser:browser-{n}", conversation.id)
                assert [r.question for r in replies] == [
                    f"Question {q} of session {n}: what is Milvus?" for q in range(QUESTIONS)]
                assert all(r.answer["text"] for r in replies)
            assert len(running.workspace.feedback.list()) == SESSIONS * QUESTIONS
        finally:
            running.close()
