"""The client: streams gpt-oss chat turns and one-shot completions over the openai SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

import openai
import pydantic

from rag.choices import Effort
from rag.errors import LLMError
from rag.llm.errors import ModelNotFound, ToolCallingUnsupported
from rag.llm.events import Retrying, StreamItem
from rag.llm.harmony import split_reasoning
from rag.llm.presets import LLMConfig, provider_streams_tool_calls
from rag.llm.retry import retry_notice, retry_wait
from rag.llm.translate import translate, translate_mid_stream, translate_unreadable
from rag.llm.turn import MAX_ANSWER_CHARS, TurnReader, answer_too_long, completion_text
from rag.redact import redact

T = TypeVar("T")
# What reading a server's reply raises besides the SDK's own errors: a line that is not JSON
# (json.JSONDecodeError) or not UTF-8 (UnicodeDecodeError), a reply of another shape (pydantic)
UNREADABLE = (json.JSONDecodeError, UnicodeDecodeError, pydantic.ValidationError)


class LLMClient:
    """Streams gpt-oss chat completions, separating reasoning, answer and tool calls."""

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep,
                 max_answer_chars: int = MAX_ANSWER_CHARS) -> None:
        """`max_answer_chars`: characters of answer and reasoning one reply may hold (a faulty
        server may ignore max_tokens); a longer one ends with LLMError (LLM_MAX_ANSWER_CHARS)."""
        self.config = config
        self._sleep = sleep
        self.max_answer_chars = max_answer_chars
        # max_retries=0: retries are ours, so a stream can announce each one (see retry.py)
        self._client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key or "none",
                                     timeout=config.timeout, max_retries=0)

    def stream_chat(self, messages: list[dict], *, effort: str | Effort = Effort.MEDIUM,
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

    def complete(self, messages: list[dict], *, effort: str | Effort = Effort.LOW) -> str:
        """One non-streamed answer without its reasoning (e.g. a rewritten search query)."""
        kwargs = self._request(messages, effort)
        kwargs["stream"] = False
        response = _result(self._create(kwargs))  # nobody streams the Retrying notices here
        try:
            text = completion_text(response)
        except UNREADABLE as exc:
            raise translate_unreadable(exc, self.config, streaming=False) from exc
        if text is None:
            raise LLMError(f"The LLM server at {redact(self.config.base_url)} returned no choices.")
        if len(text) > self.max_answer_chars:
            raise answer_too_long(self.max_answer_chars, self.config.max_output_tokens)
        _, answer = split_reasoning(text)
        if not answer.strip():
            raise LLMError(
                "The model returned reasoning but no answer; raise LLM_MAX_OUTPUT_TOKENS "
                f"(now {self.config.max_output_tokens}).")
        return answer.strip()

    def check(self) -> str:
        """List the server's models; a short status, or LLMError saying what to fix."""
        names = self.list_models()
        if self.config.model not in names:
            raise ModelNotFound.among(self.config.model, redact(self.config.base_url), names)
        return (f"{self.config.provider_name} at {redact(self.config.base_url)}: "
                f"model {self.config.model} is available.")

    def list_models(self) -> list[str]:
        """Model ids the server lists at /models."""
        try:
            return self._model_ids()
        except openai.APIError as exc:
            raise translate(exc, self.config) from exc

    def _model_ids(self) -> list[str]:
        return [m.id for m in self._client.models.list()]

    def _request(self, messages: list[dict], effort: str | Effort) -> dict[str, Any]:
        level = Effort.from_str(effort, what="Reasoning effort").value
        cfg = self.config
        kwargs: dict[str, Any] = dict(model=cfg.model, messages=messages,
                                      temperature=cfg.temperature, top_p=cfg.top_p,
                                      max_tokens=cfg.max_output_tokens)
        if cfg.provider_name == "openrouter":
            kwargs["extra_body"] = {"reasoning": {"effort": level}}
        else:
            kwargs["reasoning_effort"] = level
        return kwargs

    def _create(self, kwargs: dict[str, Any]) -> Generator[Retrying, None, Any]:
        """Send the request, retrying 429 and 5xx; yields Retrying, returns the response."""
        attempt = 0
        while True:
            try:
                return self._client.chat.completions.create(**kwargs)
            except (openai.RateLimitError, openai.InternalServerError) as exc:
                if attempt >= self.config.max_retries:
                    raise translate(exc, self.config, retries=attempt,
                                    models=self._model_ids) from exc
                attempt += 1
                wait = retry_wait(exc.response.headers, attempt)
                yield retry_notice(exc.status_code, wait, attempt, self.config.max_retries)
                self._sleep(wait)
            except openai.APIError as exc:
                raise translate(exc, self.config, models=self._model_ids) from exc
            except UNREADABLE as exc:  # a non-streamed reply is parsed inside create()
                raise translate_unreadable(exc, self.config, streaming=False) from exc

    def _read_stream(self, stream: Any, *, tools_requested: bool) -> Iterator[StreamItem]:
        reader = TurnReader(max_output_tokens=self.config.max_output_tokens,
                            tools_requested=tools_requested,
                            max_answer_chars=self.max_answer_chars)
        try:
            for chunk in stream:
                yield from reader.chunk(chunk)
        except openai.APIError as exc:
            raise translate_mid_stream(exc, self.config) from exc
        except UNREADABLE as exc:
            raise translate_unreadable(exc, self.config, streaming=True) from exc
        finally:
            stream.close()
        yield from reader.end()


def _result(steps: Generator[Any, None, T]) -> T:
    """Run a generator to its end, ignoring what it yields; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
