"""Plumbing: stream chat completions from a real llama_cpp.server with the openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

pytestmark = pytest.mark.llamacpp

MESSAGES = [{"role": "user", "content": "Name three colours of the rainbow."}]


def _stream(base_url: str, model: str, **extra: Any) -> tuple[list[Any], str, str | None]:
    client = openai.OpenAI(base_url=base_url, api_key="unused", timeout=120, max_retries=0)
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                                 max_tokens=24, temperature=0, seed=1,
                                                 **extra))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = next((c.choices[0].finish_reason for c in reversed(chunks)
                   if c.choices and c.choices[0].finish_reason), None)
    return chunks, content, finish


def test_server_lists_its_model(llamacpp_server: str, llamacpp_model: str):
    client = openai.OpenAI(base_url=llamacpp_server, api_key="unused", max_retries=0)
    assert llamacpp_model in [m.id for m in client.models.list()]


def test_chat_completion_streams_deltas(llamacpp_server: str, llamacpp_model: str):
    chunks, content, finish = _stream(llamacpp_server, llamacpp_model)
    deltas = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1, f"expected several content deltas, got {len(deltas)}"
    assert content.strip()
    assert finish in {"stop", "length"}


def test_reasoning_effort_is_accepted(llamacpp_server: str, llamacpp_model: str):
    # llama_cpp.server ignores request fields it does not know; gpt-oss servers use this one.
    chunks, content, finish = _stream(llamacpp_server, llamacpp_model, reasoning_effort="low",
                                      stream_options={"include_usage": True})
    assert len(chunks) > 1 and content.strip()
    assert finish in {"stop", "length"}


def test_pipeline_streams_a_cited_answer_from_a_real_server(llamacpp_server: str,
                                                            llamacpp_model: str, tmp_path,
                                                            embedder):
    """Our ingest, retrieval, prompt, LLM client and events, end to end over real HTTP."""
    from rag.events import AnswerEvent, DoneEvent, QueryEvent, SourcesEvent
    from rag.ingest import Ingestor
    from rag.llm import LLMClient, LLMConfig, LLMUnreachable
    from rag.pipeline import AnswerPipeline
    from rag.retrieval import Retriever
    from tests.helpers import PDFS, UNREACHABLE_LLM, open_store

    store = open_store(tmp_path / "kb.db", embedder)
    try:
        Ingestor(store, embedder).ingest_paths([PDFS / "nist-sp800-145-cloud-definition-7p.pdf"])
        llm = LLMClient(LLMConfig(base_url=llamacpp_server, api_key="unused",
                                  model=llamacpp_model, max_output_tokens=32, max_retries=0))
        assert llamacpp_model in llm.list_models()
        pipeline = AnswerPipeline(Retriever(store, embedder), llm, top_k=2,
                                  context_tokens=2048, max_output_tokens=32)
        events = list(pipeline.ask("What is cloud computing?"))
    finally:
        store.close()
    assert isinstance(events[0], SourcesEvent) and not isinstance(events[0], QueryEvent)
    assert events[0].sources[0].hit.source == "nist-sp800-145-cloud-definition-7p.pdf"
    deltas = [e for e in events if isinstance(e, AnswerEvent)]
    assert len(deltas) > 1 and "".join(e.text for e in deltas).strip()
    assert isinstance(events[-1], DoneEvent), events[-1]
    assert events[-1].timings["first_token"] <= events[-1].timings["total"]

    closed = LLMClient(LLMConfig(base_url=UNREACHABLE_LLM, api_key="x", model="m",
                                 max_retries=0))
    with pytest.raises(LLMUnreachable):
        closed.list_models()
