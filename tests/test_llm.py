"""LLMClient against a loopback server speaking gpt-oss's wire formats.

The harmony / <think> parser alone is tested in test_harmony.py.
"""

from __future__ import annotations

import ast
import email.utils
import importlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai.types.chat.chat_completion_chunk import (
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)

from rag.choices import Effort
from rag.errors import ConfigError, LLMError
from rag.llm import (
    PRESETS,
    ContentDelta,
    ContextTooLongError,
    LLMAuthError,
    LLMClient,
    LLMConfig,
    LLMTimeout,
    LLMUnreachable,
    ModelNotFound,
    RateLimited,
    ReasoningDelta,
    Retrying,
    ToolCallingUnsupported,
    ToolCallsReady,
    Usage,
    guess_provider,
    provider_streams_tool_calls,
)
from rag.llm.retry import retry_wait
from rag.llm.toolcalls import ToolCallAccumulator
from rag.settings import Settings
from tests.helpers import free_port
from tests.llm_server import (
    ECHO_REASONING,
    SSE,
    FakeGptOss,
    JSONReply,
    completion,
    content_stream,
    context_too_long,
    echo_quote,
    http_error,
    model_not_found,
    rate_limited,
    raw_stream,
    reasoning_answer,
    tool_call_stream,
)

MODEL = "gpt-oss-20b"
ASK = [{"role": "user", "content": "What colour is the sky?"}]
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search_knowledge_base", "description": "Search the documents.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGptOss]:
    with FakeGptOss() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clean(server: FakeGptOss) -> None:
    server.reset()


_CLIENTS: dict[tuple, LLMClient] = {}


def client(server: FakeGptOss, **config: object) -> LLMClient:
    """A client of the loopback server (cached: building the SDK client costs ~70 ms)."""
    values: dict = {"base_url": server.base_url, "api_key": "sk-test", "model": MODEL}
    values.update(config)
    key = tuple(sorted(values.items()))
    if key not in _CLIENTS:
        _CLIENTS[key] = LLMClient(LLMConfig(**values))
    return _CLIENTS[key]


def run(items: list) -> tuple[str, str, list]:
    """(reasoning, answer, other items) of a finished stream."""
    reasoning = "".join(i.text for i in items if isinstance(i, ReasoningDelta))
    answer = "".join(i.text for i in items if isinstance(i, ContentDelta))
    rest = [i for i in items if not isinstance(i, ReasoningDelta | ContentDelta)]
    return reasoning, answer, rest


# --- reasoning formats -----------------------------------------------------------------------

@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_field_is_separated_from_the_answer(server: FakeGptOss, field: str) -> None:
    server.script(reasoning_answer(["The user ", "asks about", " the sky."],
                                   ["The sky ", "is blue [1]."], field=field))
    items = list(client(server).stream_chat(ASK))
    reasoning, answer, rest = run(items)
    assert reasoning == "The user asks about the sky."
    assert answer == "The sky is blue [1]."
    assert rest == [Usage(42, 17, 59)]
    # reasoning comes first, as streamed
    assert isinstance(items[0], ReasoningDelta)


def test_both_reasoning_fields_in_one_delta_are_not_doubled(server: FakeGptOss) -> None:
    server.script(SSE([{"reasoning": "Think.", "reasoning_content": "Think."},
                       {"content": "Done."}]))
    reasoning, answer, _ = run(list(client(server).stream_chat(ASK)))
    assert (reasoning, answer) == ("Think.", "Done.")


HARMONY = ("<|channel|>analysis<|message|>Need sky.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>Blue [1].<|return|>")


@pytest.mark.parametrize("cut", range(1, len(HARMONY)))
def test_harmony_markup_split_at_any_point(server: FakeGptOss, cut: int) -> None:
    server.script(content_stream([HARMONY[:cut], HARMONY[cut:]]))
    reasoning, answer, _ = run(list(client(server).stream_chat(ASK)))
    assert reasoning == "Need sky."
    assert answer == "Blue [1]."


def test_harmony_one_character_per_chunk(server: FakeGptOss) -> None:
    server.script(content_stream(list(HARMONY)))
    items = list(client(server).stream_chat(ASK))
    reasoning, answer, _ = run(items)
    assert (reasoning, answer) == ("Need sky.", "Blue [1].")
    for item in items:
        assert "<|" not in getattr(item, "text", "") and "|>" not in getattr(item, "text", "")


def test_harmony_raw_tool_call_with_tools_is_unsupported(server: FakeGptOss) -> None:
    server.script(content_stream([
        "<|channel|>analysis<|message|>Search.<|end|><|start|>assistant<|channel|>commentary "
        "to=functions.search_knowledge_base <|constrain|>json<|message|>", '{"query":"sky"}',
        "<|call|>"]))
    with pytest.raises(ToolCallingUnsupported, match="raw harmony"):
        list(client(server).stream_chat(ASK, tools=[SEARCH_TOOL]))


THINK = "<think>Sky?</think>\n\nBlue."


@pytest.mark.parametrize("cut", range(1, len(THINK)))
def test_think_tags_are_reasoning(server: FakeGptOss, cut: int) -> None:
    server.script(content_stream([THINK[:cut], THINK[cut:]]))
    reasoning, answer, _ = run(list(client(server).stream_chat(ASK)))
    assert (reasoning, answer) == ("Sky?", "Blue.")


# --- tool calls ------------------------------------------------------------------------------

@pytest.mark.parametrize(("names", "repeat_name", "repeat_id"), [
    (["search_knowledge_base"], False, False),
    (["search_knowledge_base"], True, True),  # name and id in every chunk (vLLM, LM Studio)
    (["search_", "knowledge", "_base"], False, False),  # the name itself split
])
def test_streamed_tool_call_is_assembled(server: FakeGptOss, names: list[str],
                                         repeat_name: bool, repeat_id: bool) -> None:
    server.script(tool_call_stream(names, ['{"que', 'ry": "blue', ' sky", ', '"k": 3}'],
                                   repeat_name=repeat_name, repeat_id=repeat_id,
                                   reasoning="Search first."))
    items = list(client(server).stream_chat(ASK, tools=[SEARCH_TOOL]))
    reasoning, answer, rest = run(items)
    assert reasoning == "Search first."
    assert answer == ""
    ready = [i for i in rest if isinstance(i, ToolCallsReady)]
    assert len(ready) == 1
    (call,) = ready[0].calls
    assert (call.id, call.name, call.arguments) == (
        "call_abc123", "search_knowledge_base", {"query": "blue sky", "k": 3})
    assert server.requests[-1]["tools"] == [SEARCH_TOOL]


def test_two_parallel_tool_calls(server: FakeGptOss) -> None:
    first = tool_call_stream(["search_knowledge_base"], ['{"query":', '"a"}'], call_id="c1")
    second = tool_call_stream(["search_knowledge_base"], ['{"query":', '"b"}'], call_id="c2",
                              index=1)
    server.script(SSE(first.deltas + second.deltas, finish_reason="tool_calls"))
    _, _, rest = run(list(client(server).stream_chat(ASK, tools=[SEARCH_TOOL])))
    (ready,) = [i for i in rest if isinstance(i, ToolCallsReady)]
    assert [(c.id, c.arguments["query"]) for c in ready.calls] == [("c1", "a"), ("c2", "b")]


def test_tool_call_pending_at_stream_end_without_tool_calls_finish(server: FakeGptOss) -> None:
    stream = tool_call_stream(["search_knowledge_base"], ['{"query": "x"}'])
    stream.finish_reason = "stop"
    server.script(stream)
    _, _, rest = run(list(client(server).stream_chat(ASK, tools=[SEARCH_TOOL])))
    assert [type(i) for i in rest] == [ToolCallsReady, Usage]
    assert rest[0].calls[0].arguments == {"query": "x"}


def test_broken_tool_call_arguments_are_unsupported(server: FakeGptOss) -> None:
    server.script(tool_call_stream(["search_knowledge_base"], ['{"query": "sky', ' blue']))
    with pytest.raises(ToolCallingUnsupported, match="broken arguments"):
        list(client(server).stream_chat(ASK, tools=[SEARCH_TOOL]))


def test_ollama_tool_calls_are_refused_up_front(server: FakeGptOss) -> None:
    llm = client(server, provider="ollama")
    with pytest.raises(ToolCallingUnsupported, match="ollama"):
        list(llm.stream_chat(ASK, tools=[SEARCH_TOOL]))
    assert server.requests == []
    assert not provider_streams_tool_calls("ollama")
    assert provider_streams_tool_calls("vllm")
    assert provider_streams_tool_calls("openai-compatible")


def delta(index: int | None, call_id: str | None = None, name: str | None = None,
          arguments: str | None = None) -> ChoiceDeltaToolCall:
    """A tool-call delta as the SDK builds it from a chunk (unvalidated: index may be None)."""
    function = ChoiceDeltaToolCallFunction.model_construct(name=name, arguments=arguments)
    return ChoiceDeltaToolCall.model_construct(index=index, id=call_id, function=function)


def test_tool_calls_without_an_index_are_whole_calls() -> None:
    tools = ToolCallAccumulator()
    tools.add(delta(None, "a", "search_knowledge_base", '{"query": "x"}'))
    tools.add(delta(None, "b", "search_knowledge_base", '{"query": "y"}'))
    tools.add(delta(None, "a", None, None))  # a repeated id goes to its own call
    calls = tools.finish()
    assert [(c.id, c.arguments) for c in calls] == [("a", {"query": "x"}), ("b", {"query": "y"})]
    assert tools.finish() == []  # finish empties the accumulator


def test_tool_calls_numbered_0_with_new_ids_are_separate() -> None:
    tools = ToolCallAccumulator()
    for call_id, query in (("a", "x"), ("b", "y")):
        tools.add(delta(0, call_id, "search_knowledge_base"))
        tools.add(delta(0, None, None, f'{{"query": "{query}"}}'))
    assert [(c.id, c.arguments) for c in tools.finish()] == [
        ("a", {"query": "x"}), ("b", {"query": "y"})]


def test_tool_call_defaults_and_broken_calls() -> None:
    tools = ToolCallAccumulator()
    tools.add(delta(0, None, "list_documents", ""))
    (call,) = tools.finish()
    assert (call.id, call.name, call.arguments) == ("call_0", "list_documents", {})
    tools.add(delta(0, "c", None, '{"query": "x"}'))
    with pytest.raises(ToolCallingUnsupported, match="without a name"):
        tools.finish()
    tools = ToolCallAccumulator()
    tools.add(delta(0, "c", "search_knowledge_base", "[1, 2]"))
    with pytest.raises(ToolCallingUnsupported, match="not a JSON object: '\\[1, 2\\]'"):
        tools.finish()


# --- request shape ---------------------------------------------------------------------------

@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_effort_is_sent_as_reasoning_effort(server: FakeGptOss, effort: str) -> None:
    list(client(server).stream_chat(ASK, effort=effort))
    body = server.requests[-1]
    assert body["reasoning_effort"] == effort
    assert "reasoning" not in body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (1.0, 1.0, 2048)
    assert body["model"] == MODEL and body["messages"] == ASK
    assert server.headers[-1]["authorization"] == "Bearer sk-test"


def test_openrouter_effort_goes_in_the_reasoning_object(server: FakeGptOss) -> None:
    list(client(server, provider="openrouter").stream_chat(ASK, effort="high"))
    body = server.requests[-1]
    assert body["reasoning"] == {"effort": "high"}
    assert "reasoning_effort" not in body


def test_invalid_effort_is_a_config_error(server: FakeGptOss) -> None:
    with pytest.raises(ConfigError, match="effort"):
        list(client(server).stream_chat(ASK, effort="extreme"))


def test_effort_enum_and_case_are_accepted(server: FakeGptOss) -> None:
    list(client(server).stream_chat(ASK, effort=Effort.HIGH))
    assert server.requests[-1]["reasoning_effort"] == "high"
    list(client(server).stream_chat(ASK, effort=" Low "))
    assert server.requests[-1]["reasoning_effort"] == "low"


def test_provider_guess_presets_and_settings() -> None:
    assert guess_provider("https://openrouter.ai/api/v1") == "openrouter"
    assert guess_provider("http://localhost:11434/v1") == "ollama"
    assert guess_provider("http://localhost:8000/v1") == "openai-compatible"
    assert LLMConfig("http://gpu:11434/v1", "x", "m").provider_name == "ollama"
    assert LLMConfig("http://gpu:11434/v1", "x", "m", provider="vLLM").provider_name == "vllm"
    with pytest.raises(ConfigError, match="LLM_PROVIDER"):
        LLMConfig("http://x/v1", "x", "m", provider="nonsense")
    assert {n: (p.base_url, p.model) for n, p in PRESETS.items()} == {
        "ollama": ("http://localhost:11434/v1", "gpt-oss:20b"),
        "vllm": ("http://localhost:8000/v1", "openai/gpt-oss-20b"),
        "lmstudio": ("http://localhost:1234/v1", "openai/gpt-oss-20b"),
        "llamacpp": ("http://localhost:8080/v1", "gpt-oss-20b"),
        "openrouter": ("https://openrouter.ai/api/v1", "openai/gpt-oss-120b"),
    }
    assert PRESETS["ollama"].api_key == "ollama"
    config = LLMConfig.from_settings(Settings(llm_max_output_tokens=512, llm_timeout=5.0))
    assert (config.base_url, config.model, config.provider_name) == (
        "http://localhost:11434/v1", "gpt-oss:20b", "ollama")
    assert (config.max_output_tokens, config.timeout) == (512, 5.0)


# --- complete / check ------------------------------------------------------------------------

def test_complete_returns_the_answer_without_reasoning(server: FakeGptOss) -> None:
    server.script(completion("  blue sky colour\n", reasoning="The user wants..."))
    assert client(server).complete(ASK) == "blue sky colour"
    body = server.requests[-1]
    assert body["reasoning_effort"] == "low" and not body.get("stream")


def test_complete_strips_raw_harmony(server: FakeGptOss) -> None:
    server.script(completion(HARMONY))
    assert client(server).complete(ASK) == "Blue [1]."


def test_complete_with_only_reasoning_is_an_error(server: FakeGptOss) -> None:
    server.script(completion("<|channel|>analysis<|message|>Still thinking",
                             finish_reason="length"))
    with pytest.raises(LLMError, match="LLM_MAX_OUTPUT_TOKENS"):
        client(server).complete(ASK)


def test_check_lists_models(server: FakeGptOss) -> None:
    assert "gpt-oss-20b is available" in client(server).check()
    with pytest.raises(ModelNotFound, match="Set LLM_MODEL to one of: gpt-oss-20b"):
        client(server, model="llama3").check()


# --- errors ----------------------------------------------------------------------------------

def test_401_asks_for_the_api_key(server: FakeGptOss) -> None:
    server.script(http_error(401, "Incorrect API key provided", code="invalid_api_key"))
    with pytest.raises(LLMAuthError, match=r"rejected the API key \(401\)\. Set OPENAI_API_KEY"):
        list(client(server).stream_chat(ASK))
    assert server.chat_requests == 1


def test_404_model_lists_the_available_models(server: FakeGptOss) -> None:
    server.script(model_not_found("gpt-oss:120b"))
    llm = client(server, model="gpt-oss:120b")
    with pytest.raises(ModelNotFound) as caught:
        list(llm.stream_chat(ASK))
    message = str(caught.value)
    assert f"Model 'gpt-oss:120b' is not available on {server.base_url}" in message
    assert "Set LLM_MODEL to one of: gpt-oss-20b, openai/gpt-oss-20b, gpt-oss:20b" in message
    assert server.paths[-1] == "GET /v1/models"


def test_404_without_a_model_list_says_so(server: FakeGptOss) -> None:
    server.script(http_error(404, "model 'x' not found, try pulling it first"))
    saved, server.models = server.models, None
    try:
        with pytest.raises(ModelNotFound, match="model list could not be read"):
            list(client(server, model="x").stream_chat(ASK))
    finally:
        server.models = saved


def test_wrong_base_path_is_not_blamed_on_the_model(server: FakeGptOss) -> None:
    llm = LLMClient(LLMConfig(server.base_url.removesuffix("/v1"), "k", MODEL))
    with pytest.raises(LLMError, match="ends in /v1"):
        list(llm.stream_chat(ASK))


def test_429_honours_retry_after_then_succeeds(server: FakeGptOss) -> None:
    server.script(rate_limited("1"), rate_limited(None, retry_after_ms="50"))
    started = time.monotonic()
    items = list(client(server, max_retries=2).stream_chat(ASK))
    elapsed = time.monotonic() - started
    retries = [i for i in items if isinstance(i, Retrying)]
    assert len(retries) == 2
    assert "429" in retries[0].message and "retrying in 1 s" in retries[0].message
    assert "retrying in 0.05 s" in retries[1].message
    assert 1.0 <= elapsed < 10
    assert server.chat_requests == 3
    assert run(items)[1] == "I found no numbered sources to cite."  # the echo default


def test_429_retries_are_bounded(server: FakeGptOss) -> None:
    server.script(*[rate_limited("0") for _ in range(5)])
    items: list = []
    with pytest.raises(RateLimited, match="rate limited"):
        for item in client(server, max_retries=2).stream_chat(ASK):
            items.append(item)
    assert server.chat_requests == 3
    assert len(items) == 2 and all(isinstance(i, Retrying) for i in items)


def test_retry_wait_is_capped(server: FakeGptOss) -> None:
    waits: list[float] = []
    server.script(rate_limited("3600"))
    llm = LLMClient(LLMConfig(server.base_url, "k", MODEL, max_retries=1), sleep=waits.append)
    items = list(llm.stream_chat(ASK))
    assert waits == [30.0]
    assert "retrying in 30 s" in items[0].message


@pytest.mark.parametrize(("headers", "attempt", "wait"), [
    ({"retry-after-ms": "50"}, 1, 0.05),
    ({"retry-after-ms": "soon", "retry-after": "3"}, 1, 3.0),  # a bad ms header is skipped
    ({"retry-after": "2.5"}, 1, 2.5),
    ({"retry-after": "soon"}, 1, 0.5),  # unparsable: exponential backoff
    ({}, 2, 1.0),
    ({}, 3, 2.0),
    ({}, 9, 30.0),  # backoff is capped too
    ({"retry-after": "-5"}, 1, 0.0),
])
def test_retry_wait(headers: dict[str, str], attempt: int, wait: float) -> None:
    assert retry_wait(headers, attempt) == wait


def test_retry_wait_reads_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= retry_wait({"retry-after": when}, 1) <= 10.0
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert retry_wait({"retry-after": past}, 1) == 0.0


def test_5xx_is_retried(server: FakeGptOss) -> None:
    server.script(http_error(503, "Service Unavailable", type="server_error",
                             headers={"Retry-After": "0"}))
    items = list(client(server).stream_chat(ASK))
    assert isinstance(items[0], Retrying) and "503" in items[0].message
    assert server.chat_requests == 2


def test_400_context_too_long(server: FakeGptOss) -> None:
    server.script(context_too_long())
    with pytest.raises(ContextTooLongError, match="maximum context length is 8192") as caught:
        list(client(server).stream_chat(ASK))
    assert "LLM_CONTEXT_TOKENS" in str(caught.value)
    assert server.chat_requests == 1


def test_other_400_is_reported_with_the_server_message(server: FakeGptOss) -> None:
    server.script(http_error(400, "temperature must be <= 2"))
    with pytest.raises(LLMError, match=r"refused the request \(400\): temperature must be"):
        list(client(server).stream_chat(ASK))


def test_error_event_mid_stream(server: FakeGptOss) -> None:
    server.script(SSE([{"reasoning": "Hm."}, {"content": "The sky"}],
                      error={"message": "CUDA out of memory", "type": "server_error"}))
    items: list = []
    with pytest.raises(LLMError, match="stopped in the middle of the answer: CUDA out"):
        for item in client(server).stream_chat(ASK):
            items.append(item)
    assert run(items)[:2] == ("Hm.", "The sky")
    assert server.chat_requests == 1  # no retry once deltas went out


@pytest.mark.parametrize("drop", ["chunked", "eof"])
def test_dropped_connection_mid_stream(server: FakeGptOss, drop: str) -> None:
    server.script(SSE([{"content": "The sky is"}], drop=drop))  # type: ignore[arg-type]
    items: list = []
    with pytest.raises(LLMError, match="stopped in the middle of the answer"):
        for item in client(server).stream_chat(ASK):
            items.append(item)
    assert run(items)[1] == "The sky is"
    assert server.chat_requests == 1


def test_length_finish_before_any_answer(server: FakeGptOss) -> None:
    server.script(reasoning_answer(["Long thought"], [], finish_reason="length"))
    with pytest.raises(LLMError, match="LLM_MAX_OUTPUT_TOKENS"):
        list(client(server).stream_chat(ASK))


def test_unreachable_server() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    llm = LLMClient(LLMConfig(url, "k", MODEL))
    message = f"Cannot reach the LLM server at {url}. Is it running? Set OPENAI_BASE_URL."
    with pytest.raises(LLMUnreachable) as caught:
        list(llm.stream_chat(ASK))
    assert str(caught.value) == message
    with pytest.raises(LLMUnreachable):
        llm.check()


def test_timeout(server: FakeGptOss) -> None:
    server.script(SSE([{"content": "late"}], delay=1.5))
    with pytest.raises(LLMTimeout, match="LLM_TIMEOUT"):
        list(client(server, timeout=0.3).stream_chat(ASK))


# --- what a faulty server sends inside a stream ----------------------------------------------

MALFORMED = "Check that OPENAI_BASE_URL points at an OpenAI-compatible server"


def stream_until_error(llm: LLMClient, **kwargs: object) -> tuple[list, LLMError]:
    """The items a stream yielded before it failed, and its error (it must fail)."""
    items: list = []
    with pytest.raises(LLMError) as caught:
        for item in llm.stream_chat(ASK, **kwargs):  # type: ignore[arg-type]
            items.append(item)
    return items, caught.value


def test_malformed_stream_line_is_an_llm_error(server: FakeGptOss) -> None:
    server.script(raw_stream(["{not json"], before=["The sky"]))
    items, error = stream_until_error(client(server))
    assert run(items)[1] == "The sky"  # what came before the bad line was streamed
    assert type(error) is LLMError  # our error, not json.JSONDecodeError
    message = str(error)
    assert message.startswith(f"The LLM server at {server.base_url} sent a malformed stream "
                              "line (not JSON: ")
    assert "'{not json'" in message and "The answer stops here." in message
    assert MALFORMED in message
    assert server.chat_requests == 1  # not retried: deltas went out


def test_a_long_malformed_line_is_quoted_short(server: FakeGptOss) -> None:
    server.script(raw_stream(["{" + "x" * 20000]))
    _, error = stream_until_error(client(server))
    assert "... (20001 characters)" in str(error) and len(str(error)) < 600


def test_a_stream_line_that_is_not_utf8(server: FakeGptOss) -> None:
    server.script(raw_stream([b'{"choices": [{"delta": {"content": "\xff\xfe"}}]}']))
    _, error = stream_until_error(client(server))
    assert "sent a malformed stream line (not UTF-8 text: byte 0xff" in str(error)


@pytest.mark.parametrize(("line", "problem"), [
    ("[1, 2]", "the stream chunk: expected an object, got [1, 2]"),
    ("null", "the stream chunk: expected an object, got None"),
    ('{"choices": "abc"}', "choices: expected a list, got 'abc'"),
    ('{"choices": [5]}', "choices[0]: expected an object, got 5"),
    ('{"choices": [{"delta": "x"}]}', "choices[0].delta: expected an object, got 'x'"),
    ('{"choices": [{"delta": {"content": 5}}]}', "choices[0].delta.content: expected text"),
    ('{"choices": [{"delta": {"reasoning": ["a"]}}]}', "choices[0].delta.reasoning: expected"),
    ('{"choices": [{"delta": {"tool_calls": [{"index": "a"}]}}]}',
     "choices[0].delta.tool_calls[0].index: expected a whole number, got 'a'"),
    ('{"choices": [{"delta": {"tool_calls": [{"function": {"name": 5}}]}}]}',
     "choices[0].delta.tool_calls[0].function.name: expected text, got 5"),
    ('{"choices": [{"finish_reason": 1}]}', "choices[0].finish_reason: expected text, got 1"),
    ('{"choices": [], "usage": {"prompt_tokens": "many"}}',
     "usage.prompt_tokens: expected a whole number, got 'many'"),
])
def test_a_chunk_of_unexpected_shape_is_an_llm_error(server: FakeGptOss, line: str,
                                                      problem: str) -> None:
    """Each of these used to crash deep in the parser or be skipped without a word."""
    server.script(raw_stream([line], before=["The sky"]))
    items, error = stream_until_error(client(server))
    assert run(items)[1] == "The sky"
    assert str(error).startswith(f"The LLM server at {server.base_url} sent a stream chunk of "
                                 f"an unexpected shape ({problem}")
    assert MALFORMED in str(error)


def test_chunks_the_project_does_not_read_may_hold_anything(server: FakeGptOss) -> None:
    server.script(raw_stream(['{"choices": [], "system_fingerprint": 5, "x": [1]}',
                              '{"choices": [{"delta": {"role": 7, "refusal": null}}]}'],
                             before=["Blue."]))
    assert run(list(client(server).stream_chat(ASK)))[1] == "Blue."


def test_error_object_mid_stream_without_a_message(server: FakeGptOss) -> None:
    server.script(raw_stream(['{"error": "overloaded"}'], before=["The sky"]))
    _, error = stream_until_error(client(server))
    assert str(error) == "The LLM server stopped in the middle of the answer: overloaded"


def test_a_stalled_stream_times_out(server: FakeGptOss) -> None:
    server.script(SSE([{"content": "The sky"}], pause=1.5))
    items, error = stream_until_error(client(server, timeout=0.3))
    assert isinstance(error, LLMTimeout) and "nothing arrived for 0.3 s" in str(error)
    assert run(items)[1] == "The sky"


@pytest.mark.parametrize(("raw", "problem"), [
    ("{not json", "sent a malformed reply (not JSON: "),
    ("[1, 2]", "sent a reply of an unexpected shape (the reply: expected an object"),
    ('{"choices": [{"message": {"content": 5}}]}',
     "sent a reply of an unexpected shape (choices[0].message.content: expected text, got 5"),
])
def test_complete_with_a_malformed_reply(server: FakeGptOss, raw: str, problem: str) -> None:
    server.script(JSONReply({}, raw=raw))
    with pytest.raises(LLMError) as caught:
        client(server).complete(ASK)
    assert type(caught.value) is LLMError
    assert str(caught.value).startswith(f"The LLM server at {server.base_url} {problem}")
    assert "The answer stops here" not in str(caught.value)


# --- the echo RAG default used by later pipeline tests ---------------------------------------

def test_echo_default_cites_and_quotes_source_one(server: FakeGptOss) -> None:
    source = "[1] sky.md\nThe sky looks blue because air scatters short wavelengths of light."
    messages = [{"role": "system", "content": "Answer from the sources."},
                {"role": "user", "content": f"Why is the sky blue?\n\nSources:\n{source}"}]
    reasoning, answer, rest = run(list(client(server).stream_chat(messages)))
    assert reasoning == ECHO_REASONING
    assert answer == f'According to [1], "{echo_quote(source)}".'
    assert echo_quote(source) == "sky.md The sky looks blue because air scatters short wavelen"
    assert isinstance(rest[-1], Usage)


def test_echo_default_agent_round_trip(server: FakeGptOss) -> None:
    llm = client(server)
    question = {"role": "user", "content": "Why is the sky blue?"}
    _, _, rest = run(list(llm.stream_chat([question], tools=[SEARCH_TOOL])))
    (ready,) = [i for i in rest if isinstance(i, ToolCallsReady)]
    (call,) = ready.calls
    assert (call.name, call.arguments) == ("search_knowledge_base",
                                           {"query": "Why is the sky blue?", "k": 3})
    follow_up = [question,
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": call.id, "type": "function",
                      "function": {"name": call.name, "arguments": '{"query": "sky"}'}}]},
                 {"role": "tool", "tool_call_id": call.id,
                  "content": "[1] sky.md\nRayleigh scattering makes the sky blue."}]
    _, answer, rest = run(list(llm.stream_chat(follow_up, tools=[SEARCH_TOOL])))
    assert answer == 'According to [1], "sky.md Rayleigh scattering makes the sky blue.".'
    assert not any(isinstance(i, ToolCallsReady) for i in rest)


def test_echo_default_rewrite(server: FakeGptOss) -> None:
    history = "User: What is Milvus?\nAssistant: A vector DB [1].\nUser: How do I install it?"
    assert client(server).complete([{"role": "user", "content": history}]) == (
        "How do I install it?")


# --- the package -----------------------------------------------------------------------------

def test_only_the_client_and_translation_import_openai() -> None:
    package = Path(importlib.import_module("rag.llm").__file__).parent
    importers = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "openai" for n in names):
                importers.add(path.name)
    assert importers == {"client.py", "translate.py"}


def test_public_names_are_exported() -> None:
    import rag.llm

    for name in rag.llm.__all__:
        assert getattr(rag.llm, name) is not None, name
