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
