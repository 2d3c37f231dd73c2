"""Streaming chat with gpt-oss through any OpenAI-compatible server (Ollama, vLLM, ...)."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai

from rag.errors import ConfigError, LLMError

if TYPE_CHECKING:
    from rag.settings import Settings

EFFORTS = ("low", "medium", "high")
PROVIDERS = ("openai-compatible", "ollama", "vllm", "lmstudio", "llamacpp", "openrouter")
MAX_RETRY_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Preset:
    """A documented endpoint: where the server listens and what gpt-oss is called there."""

    base_url: str
    model: str
    api_key: str
    note: str


PRESETS: dict[str, Preset] = {
    "ollama": Preset("http://localhost:11434/v1", "gpt-oss:20b", "ollama",
                     "`ollama pull gpt-oss:20b`; streamed tool calls are unreliable, so "
                     "agentic search is off."),
    "vllm": Preset("http://localhost:8000/v1", "openai/gpt-oss-20b", "EMPTY",
                   "`vllm serve openai/gpt-oss-20b`; add --enable-auto-tool-choice "
                   "--tool-call-parser openai for agentic search."),
    "lmstudio": Preset("http://localhost:1234/v1", "openai/gpt-oss-20b", "lm-studio",
                       "Load openai/gpt-oss-20b and start the local server (Developer tab)."),
    "llamacpp": Preset("http://localhost:8080/v1", "gpt-oss-20b", "none",
                       "`llama-server -hf ggml-org/gpt-oss-20b-GGUF --jinja`."),
    "openrouter": Preset("https://openrouter.ai/api/v1", "openai/gpt-oss-120b", "",
                         "Hosted; set OPENAI_API_KEY to your OpenRouter key."),
}


def guess_provider(base_url: str) -> str:
    """The provider a base URL points at: openrouter, ollama, or openai-compatible."""
    if "openrouter.ai" in base_url:
        return "openrouter"
    if ":11434" in base_url:
        return "ollama"
    return "openai-compatible"


def provider_streams_tool_calls(provider: str) -> bool:
    """Whether the provider's streamed tool calls work with gpt-oss (not Ollama's)."""
    return provider != "ollama"


@dataclass
class LLMConfig:
    """Where the model is and how to sample from it; built by callers from Settings."""

    base_url: str
    api_key: str
    model: str
    provider: str = ""  # "" => guessed from base_url
    timeout: float = 120.0
    max_retries: int = 2
    max_output_tokens: int = 2048
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        self.provider = self.provider.strip().lower()
        if self.provider and self.provider not in PROVIDERS:
            raise ConfigError(f"LLM_PROVIDER must be empty or one of {', '.join(PROVIDERS)}, "
                              f"not {self.provider!r}")
        if not self.base_url:
            raise ConfigError("Set OPENAI_BASE_URL to your LLM server (e.g. "
                              f"{PRESETS['ollama'].base_url}).")
        if not self.model:
            raise ConfigError("Set LLM_MODEL to the model's name on the server.")

    @property
    def provider_name(self) -> str:
        """The provider, given or guessed from the base URL."""
        return self.provider or guess_provider(self.base_url)

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        """Build from a rag.settings.Settings."""
        return cls(base_url=settings.openai_base_url, api_key=settings.openai_api_key,
                   model=settings.llm_model, provider=settings.llm_provider,
                   timeout=settings.llm_timeout, max_retries=settings.llm_max_retries,
                   max_output_tokens=settings.llm_max_output_tokens)


class LLMUnreachable(LLMError):
    """Nothing answers at the base URL."""


class LLMTimeout(LLMError):
    """The server took longer than the timeout."""


class LLMAuthError(LLMError):
    """The server rejected the API key."""


class ModelNotFound(LLMError):
    """The server does not serve the configured model."""


class RateLimited(LLMError):
    """The server kept answering 429 after every retry."""


class ContextTooLongError(LLMError):
    """The prompt does not fit the model's context window."""


class ToolCallingUnsupported(LLMError):
    """The server's streamed tool calls are broken; answer without tools."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call with its JSON arguments parsed."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's chain of thought."""

    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """A piece of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallsReady:
    """The model finished a turn by calling these tools."""

    calls: list[ToolCall]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts the server reported for the request."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Retrying:
    """The request failed transiently and is about to be retried."""

    message: str


StreamItem = ReasoningDelta | ContentDelta | ToolCallsReady | Usage | Retrying


# --- raw harmony / <think> markup inside content ------------------------------------------

_HARMONY_TAGS = ("<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|return|>",
                 "<|call|>", "<|constrain|>")
_ENDS = ("<|end|>", "<|return|>", "<|call|>")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


class HarmonyParser:
    """Incrementally splits content into reasoning and answer text.

    Handles raw harmony markup (`<|channel|>analysis<|message|>...<|end|>`) and `<think>`
    blocks, split across chunks anywhere; only a possible partial tag is ever held back.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._state = "text"  # text | header | body | between | think
        self._header = ""
        self._channel = "final"
        self._recipient = ""
        self._answered = False  # non-whitespace answer text was emitted
        self._lstrip = False  # drop leading whitespace of the next answer text
        self._tool_body = ""
        self._out: list[tuple[str, str]] = []
        self.tool_call_text: list[tuple[str, str]] = []  # (recipient, body) of raw tool calls

    def feed(self, text: str) -> list[ReasoningDelta | ContentDelta]:
        """Parse more content; returns the deltas that are certain so far."""
        self._buf += text
        while self._buf:
            tags = self._tags()
            index, tag = _earliest(self._buf, tags)
            if tag is None:
                keep = _partial_suffix(self._buf, tags)
                ready, self._buf = self._buf[: len(self._buf) - keep], self._buf[
                    len(self._buf) - keep:]
                self._text(ready)
                break
            if tag == _THINK_OPEN and self._buf[:index].strip():
                # answer text comes first: this <think> is literal text, not markup
                self._text(self._buf[:index])
                self._buf = self._buf[index:]
                continue
            self._text(self._buf[:index])
            self._buf = self._buf[index + len(tag):]
            self._tag(tag)
        return self._drain()

    def close(self) -> list[ReasoningDelta | ContentDelta]:
        """The stream ended: flush a held-back partial tag as text."""
        rest, self._buf = self._buf, ""
        self._text(rest)
        if self._state == "body" and self._recipient:
            self._end_message()
        return self._drain()

    def _tags(self) -> tuple[str, ...]:
        if self._state == "think":
            return (_THINK_CLOSE,)
        if self._state == "text" and not self._answered:
            return (*_HARMONY_TAGS, _THINK_OPEN)
        return _HARMONY_TAGS

    def _text(self, text: str) -> None:
        if not text:
            return
        state = self._state
        if state == "header":
            self._header += text
        elif state == "think":
            self._emit("reasoning", text)
        elif state == "between":
            if text.strip():  # stray text outside any message: keep it as answer
                self._state, self._channel, self._recipient = "body", "final", ""
                self._lstrip = True
                self._answer(text)
        elif state == "body":
            if self._recipient:
                self._tool_body += text
            elif self._channel == "final":
                self._answer(text)
            else:  # analysis, commentary preambles: chain of thought
                self._emit("reasoning", text)
        else:
            self._answer(text)

    def _answer(self, text: str) -> None:
        if self._lstrip:
            text = text.lstrip()
            if not text:
                return
            self._lstrip = False
        if text.strip():
            self._answered = True
        self._emit("content", text)

    def _tag(self, tag: str) -> None:
        if tag == _THINK_OPEN:
            self._state = "think"
        elif tag == _THINK_CLOSE:
            self._state, self._lstrip = "text", True
        elif tag == "<|start|>":
            self._end_message()
            self._state, self._header = "header", ""
        elif tag == "<|channel|>":
            if self._state != "header":
                self._end_message()
                self._state, self._header = "header", ""
            self._header += "<|channel|>"
        elif tag == "<|message|>":
            if self._state == "header":
                self._open_message(self._header)
            elif self._state in ("text", "between"):
                self._open_message("")
        elif tag == "<|constrain|>":
            if self._state == "header":
                self._header += " "
        elif tag in _ENDS:
            self._end_message()
            self._state = "between"

    def _open_message(self, header: str) -> None:
        channel = re.search(r"<\|channel\|>\s*([\w-]+)", header)
        recipient = re.search(r"\bto=([\w.\-]+)", header)
        self._channel = channel.group(1) if channel else "final"
        self._recipient = recipient.group(1) if recipient else ""
        self._tool_body = ""
        self._state = "body"
        if self._channel == "final":
            self._lstrip = not self._answered

    def _end_message(self) -> None:
        if self._state == "body" and self._recipient:
            self.tool_call_text.append((self._recipient, self._tool_body))
            self._recipient = ""

    def _emit(self, kind: str, text: str) -> None:
        if self._out and self._out[-1][0] == kind:
            self._out[-1] = (kind, self._out[-1][1] + text)
        else:
            self._out.append((kind, text))

    def _drain(self) -> list[ReasoningDelta | ContentDelta]:
        out: list[ReasoningDelta | ContentDelta] = [
            ReasoningDelta(text) if kind == "reasoning" else ContentDelta(text)
            for kind, text in self._out if text]
        self._out = []
        return out


def _earliest(buf: str, tags: tuple[str, ...]) -> tuple[int, str | None]:
    best, found = len(buf), None
    for tag in tags:
        index = buf.find(tag)
        if index != -1 and index < best:
            best, found = index, tag
    return best, found


def _partial_suffix(buf: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of buf that could be the start of a tag."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(buf)), longest, -1):
            if buf.endswith(tag[:size]):
                longest = size
                break
    return longest


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, answer) of a complete content string that may hold harmony markup."""
    parser = HarmonyParser()
    items = parser.feed(text) + parser.close()
    reasoning = "".join(i.text for i in items if isinstance(i, ReasoningDelta))
    answer = "".join(i.text for i in items if isinstance(i, ContentDelta))
    return reasoning, answer


# --- streamed tool calls --------------------------------------------------------------------

@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _ToolCallAccumulator:
    """Assembles tool-call deltas by index; tolerates repeated ids and names."""

    def __init__(self) -> None:
        self.calls: list[_PendingCall] = []
        self._slot: dict[int, int] = {}

    def add(self, delta: Any) -> None:
        index = getattr(delta, "index", None)
        call_id = getattr(delta, "id", None) or ""
        function = getattr(delta, "function", None)
        name = (getattr(function, "name", None) or "") if function is not None else ""
        arguments = (getattr(function, "arguments", None) or "") if function is not None else ""
        pending = self._pending(index, call_id)
        if call_id and not pending.id:
            pending.id = call_id
        if name and name != pending.name:  # a name repeated in every chunk is not doubled
            pending.name += name  # a split name is concatenated
        if arguments:
            pending.arguments.append(arguments)

    def _pending(self, index: int | None, call_id: str) -> _PendingCall:
        if index is None:  # servers that omit the index send whole calls
            if call_id:
                for pending in self.calls:
                    if pending.id == call_id:
                        return pending
            if not self.calls or call_id:
                self.calls.append(_PendingCall())
            return self.calls[-1]
        slot = self._slot.get(index)
        if slot is not None:
            pending = self.calls[slot]
            if not (call_id and pending.id and call_id != pending.id):
                return pending
        # a new index, or a new id reusing an index (some servers number every call 0)
        self.calls.append(_PendingCall())
        self._slot[index] = len(self.calls) - 1
        return self.calls[-1]

    def finish(self) -> list[ToolCall]:
        calls = []
        for n, pending in enumerate(self.calls):
            text = "".join(pending.arguments).strip()
            if not pending.name:
                raise ToolCallingUnsupported(
                    "The LLM server streamed a tool call without a name, so its tool calling "
                    "does not work with this model.")
            calls.append(ToolCall(pending.id or f"call_{n}", pending.name,
                                  _parse_arguments(pending.name, text)))
        self.calls = []
        self._slot = {}
        return calls


def _parse_arguments(name: str, text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolCallingUnsupported(
            f"The LLM server streamed broken arguments for tool '{name}' ({exc.msg}: "
            f"{text[:80]!r}), so its tool calling does not work with this model.") from exc
    if not isinstance(value, dict):
        raise ToolCallingUnsupported(
            f"The LLM server streamed arguments for tool '{name}' that are not a JSON object: "
            f"{text[:80]!r}.")
    return value


# --- the client ------------------------------------------------------------------------------

_CONTEXT_MARKERS = ("context length", "context_length", "maximum context", "too long",
                    "context window")
_MODEL_MISSING = re.compile(r"model.*(not found|does not exist|not exist|no such|unknown)"
                            r"|(unknown|invalid) model", re.IGNORECASE | re.DOTALL)


class LLMClient:
    """Streams gpt-oss chat completions, separating reasoning, answer and tool calls."""

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep
                 ) -> None:
        self.config = config
        self._sleep = sleep
        self._client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key or "none",
                                     timeout=config.timeout, max_retries=0)

    def stream_chat(self, messages: list[dict], *, effort: str = "medium",
                    tools: list[dict] | None = None) -> Iterator[StreamItem]:
        """Stream one chat turn: reasoning and answer deltas, tool calls, then usage."""
        if tools and not provider_streams_tool_calls(self.config.provider_name):
            raise ToolCallingUnsupported(
                f"{self.config.provider_name}'s streamed tool calls are unreliable with gpt-oss.")
        kwargs = self._request(messages, effort)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        if tools:
            kwargs["tools"] = tools
        stream = yield from self._create(kwargs)
        yield from self._read_stream(stream, tools_requested=bool(tools))

    def complete(self, messages: list[dict], *, effort: str = "low") -> str:
        """One non-streamed answer without its reasoning (e.g. a rewritten search query)."""
        kwargs = self._request(messages, effort)
        kwargs["stream"] = False
        creating = self._create(kwargs)
        while True:  # nobody streams the Retrying notices here: just let them pass
            try:
                next(creating)
            except StopIteration as done:
                response = done.value
                break
        if not response.choices:
            raise LLMError(f"The LLM server at {self.config.base_url} returned no choices.")
        message = response.choices[0].message
        _, answer = split_reasoning(message.content or "")
        if not answer.strip():
            raise LLMError(
                "The model returned reasoning but no answer; raise LLM_MAX_OUTPUT_TOKENS "
                f"(now {self.config.max_output_tokens}).")
        return answer.strip()

    def check(self) -> str:
        """List the server's models; a short status, or LLMError saying what to fix."""
        names = self.list_models()
        if self.config.model not in names:
            raise ModelNotFound(self._model_missing(names))
        return (f"{self.config.provider_name} at {self.config.base_url}: "
                f"model {self.config.model} is available.")

    def list_models(self) -> list[str]:
        """Model ids the server lists at /models."""
        try:
            return [m.id for m in self._client.models.list()]
        except openai.APIError as exc:
            raise self._map_error(exc, look_up_models=False) from exc

    # -- request --------------------------------------------------------------------------

    def _request(self, messages: list[dict], effort: str) -> dict[str, Any]:
        if effort not in EFFORTS:
            raise ConfigError(f"Reasoning effort must be one of {', '.join(EFFORTS)}, "
                              f"not {effort!r}")
        cfg = self.config
        kwargs: dict[str, Any] = dict(model=cfg.model, messages=messages,
                                      temperature=cfg.temperature, top_p=cfg.top_p,
                                      max_tokens=cfg.max_output_tokens)
        if cfg.provider_name == "openrouter":
            kwargs["extra_body"] = {"reasoning": {"effort": effort}}
        else:
            kwargs["reasoning_effort"] = effort
        return kwargs

    def _create(self, kwargs: dict[str, Any]) -> Iterator[Retrying]:
        """Send the request, retrying 429 and 5xx; yields Retrying, returns the response."""
        attempt = 0
        while True:
            try:
                return self._client.chat.completions.create(**kwargs)
            except (openai.RateLimitError, openai.InternalServerError) as exc:
                if attempt >= self.config.max_retries:
                    raise self._map_error(exc, retries=attempt) from exc
                attempt += 1
                wait = _retry_wait(exc.response.headers, attempt)
                what = ("is rate limiting requests (429)" if exc.status_code == 429
                        else f"failed ({exc.status_code})")
                yield Retrying(f"The LLM server {what}; retrying in {wait:g} s "
                               f"(retry {attempt} of {self.config.max_retries}).")
                self._sleep(wait)
            except openai.APIError as exc:
                raise self._map_error(exc) from exc

    # -- response -------------------------------------------------------------------------

    def _read_stream(self, stream: Any, *, tools_requested: bool) -> Iterator[StreamItem]:
        parser = HarmonyParser()
        tools = _ToolCallAccumulator()
        usage: Usage | None = None
        finish: str | None = None
        answered = False
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None) is not None:
                    usage = _usage(chunk.usage)
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(choice, "delta", None)
                    if delta is not None:
                        reasoning = _reasoning_text(delta)
                        if reasoning:
                            yield ReasoningDelta(reasoning)
                        for item in parser.feed(getattr(delta, "content", None) or ""):
                            answered = answered or isinstance(item, ContentDelta)
                            yield item
                        for call in getattr(delta, "tool_calls", None) or []:
                            tools.add(call)
                    if getattr(choice, "finish_reason", None):
                        finish = choice.finish_reason
                        if finish == "error":
                            raise LLMError("The LLM server stopped in the middle of the "
                                           "answer: it reported an error.")
                        if tools.calls:
                            yield ToolCallsReady(tools.finish())
        except openai.APITimeoutError as exc:
            raise LLMTimeout("The LLM server stopped in the middle of the answer: nothing "
                             f"arrived for {self.config.timeout:g} s (LLM_TIMEOUT).") from exc
        except openai.APIConnectionError as exc:
            raise LLMError("The LLM server stopped in the middle of the answer: the connection "
                           "was cut before the answer was complete.") from exc
        except openai.APIError as exc:
            raise LLMError("The LLM server stopped in the middle of the answer: "
                           f"{_error_text(exc)}") from exc
        finally:
            stream.close()
        for item in parser.close():
            answered = answered or isinstance(item, ContentDelta)
            yield item
        if parser.tool_call_text and tools_requested:
            raise ToolCallingUnsupported(
                "The LLM server returned the tool call as raw harmony text instead of a "
                "tool call, so its tool calling does not work with gpt-oss.")
        if finish is None:
            raise LLMError("The LLM server stopped in the middle of the answer: the stream "
                           "ended before the model finished.")
        if tools.calls:
            yield ToolCallsReady(tools.finish())
        elif finish == "length" and not answered:
            raise LLMError(
                f"The model used all {self.config.max_output_tokens} output tokens before "
                "answering: raise LLM_MAX_OUTPUT_TOKENS or lower the reasoning effort.")
        if usage is not None:
            yield usage

    # -- errors ---------------------------------------------------------------------------

    def _map_error(self, exc: openai.APIError, *, retries: int = 0,
                   look_up_models: bool = True) -> LLMError:
        url = self.config.base_url
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeout(f"The LLM server at {url} did not answer within "
                              f"{self.config.timeout:g} s. Is it overloaded? Raise LLM_TIMEOUT.")
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnreachable(f"Cannot reach the LLM server at {url}. Is it running? "
                                  "Set OPENAI_BASE_URL.")
        if not isinstance(exc, openai.APIStatusError):
            return LLMError(f"The LLM server at {url} failed: {_error_text(exc)}")
        text = _error_text(exc)
        status = exc.status_code
        if status in (401, 403):
            return LLMAuthError(f"The LLM server rejected the API key ({status}). "
                                f"Set OPENAI_API_KEY. ({text})")
        if status == 429:
            return RateLimited(f"The LLM server rate limited every attempt (429, {retries} "
                               f"retries): {text}. Wait a minute or use another endpoint.")
        lowered = text.lower()
        if status in (400, 413, 422) and any(m in lowered for m in _CONTEXT_MARKERS):
            return ContextTooLongError(
                f"The prompt does not fit the model's context window ({text}). Set "
                "LLM_CONTEXT_TOKENS to the server's context size, or lower TOP_K.")
        if status == 404 or exc.code == "model_not_found" or (
                status in (400, 422) and _MODEL_MISSING.search(text)):
            return self._not_found(text, look_up_models)
        if status >= 500:
            return LLMError(f"The LLM server at {url} failed ({status}) after {retries} "
                            f"retries: {text}")
        return LLMError(f"The LLM server at {url} refused the request ({status}): {text}")

    def _not_found(self, text: str, look_up_models: bool) -> LLMError:
        if not look_up_models:
            return LLMError(f"The LLM server at {self.config.base_url} has no /models "
                            f"endpoint (404: {text}). Check OPENAI_BASE_URL: it usually "
                            "ends in /v1.")
        try:
            names = [m.id for m in self._client.models.list()]
        except openai.APIError:
            return ModelNotFound(
                f"Model '{self.config.model}' is not available on {self.config.base_url} "
                f"({text}), and its model list could not be read. Set LLM_MODEL, and check "
                "OPENAI_BASE_URL (it usually ends in /v1).")
        if self.config.model in names:
            return LLMError(f"The LLM server at {self.config.base_url} answered 404 ({text}) "
                            "although it lists the model. Check OPENAI_BASE_URL: it usually "
                            "ends in /v1.")
        return ModelNotFound(self._model_missing(names))

    def _model_missing(self, names: list[str]) -> str:
        listed = ", ".join(names[:20]) if names else "(the server lists no models)"
        return (f"Model '{self.config.model}' is not available on {self.config.base_url}. "
                f"Set LLM_MODEL to one of: {listed}")


def _reasoning_text(delta: Any) -> str:
    """Reasoning carried beside content: `reasoning` (vLLM, Ollama, OpenRouter, LM Studio)
    or `reasoning_content` (llama.cpp, older vLLM); servers that send both repeat the text."""
    extra = getattr(delta, "model_extra", None) or {}
    for name in ("reasoning", "reasoning_content"):
        value = getattr(delta, name, None)
        if value is None:
            value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _usage(raw: Any) -> Usage:
    prompt = int(getattr(raw, "prompt_tokens", 0) or 0)
    completion = int(getattr(raw, "completion_tokens", 0) or 0)
    total = int(getattr(raw, "total_tokens", 0) or 0) or prompt + completion
    return Usage(prompt, completion, total)


def _error_text(exc: openai.APIError) -> str:
    """The server's own error message, without the SDK's 'Error code: ...' wrapping."""
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
    if isinstance(body, str) and body:
        return body[:300]
    return exc.message


def _retry_wait(headers: Any, attempt: int) -> float:
    """Seconds to wait: retry-after-ms or retry-after when given, else backoff; at most 30."""
    wait: float | None = None
    raw_ms = headers.get("retry-after-ms")
    raw = headers.get("retry-after")
    if raw_ms is not None:
        try:
            wait = float(raw_ms) / 1000
        except ValueError:
            wait = None
    if wait is None and raw is not None:
        try:
            wait = float(raw)
        except ValueError:
            try:
                wait = email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
            except (TypeError, ValueError):
                wait = None
    if wait is None:
        wait = 0.5 * 2 ** (attempt - 1)
    return round(min(max(wait, 0.0), MAX_RETRY_WAIT), 3)
