"""The openai SDK's exceptions, and replies it could not read, turned into our LLM errors,
with a message a user can act on."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import openai
import pydantic

from rag.errors import LLMError
from rag.llm.errors import (
    STOPPED_MID_ANSWER,
    ContextTooLongError,
    LLMAuthError,
    LLMTimeout,
    LLMUnreachable,
    ModelNotFound,
    RateLimited,
)
from rag.llm.presets import LLMConfig
from rag.redact import redact

_CONTEXT_MARKERS = ("context length", "context_length", "maximum context", "too long",
                    "context window")
_MODEL_MISSING = re.compile(r"model.*(not found|does not exist|not exist|no such|unknown)"
                            r"|(unknown|invalid) model", re.IGNORECASE | re.DOTALL)

ModelLister = Callable[[], list[str]]


def translate(exc: openai.APIError, config: LLMConfig, *, retries: int = 0,
              models: ModelLister | None = None) -> LLMError:
    """The error for a request that failed before any answer arrived.

    `retries`: how many were spent. `models` lists the server's model ids (it may raise
    openai.APIError) to tell a missing model from a wrong base URL on a 404; None when the
    failed request was the model list itself.
    """
    url = redact(config.base_url)
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeout(f"The LLM server at {url} did not answer within "
                          f"{config.timeout:g} s. Is it overloaded? Raise LLM_TIMEOUT.")
    if isinstance(exc, openai.APIConnectionError):
        return LLMUnreachable(f"Cannot reach the LLM server at {url}. Is it running? "
                              "Set OPENAI_BASE_URL.")
    if not isinstance(exc, openai.APIStatusError):
        return LLMError(f"The LLM server at {url} failed: {error_text(exc)}")
    return _status_error(exc, config, retries, models)


def _status_error(exc: openai.APIStatusError, config: LLMConfig, retries: int,
                  models: ModelLister | None) -> LLMError:
    url, text, status = redact(config.base_url), error_text(exc), exc.status_code
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
        return _not_found(text, config, models)
    if status >= 500:
        return LLMError(f"The LLM server at {url} failed ({status}) after {retries} "
                        f"retries: {text}")
    return LLMError(f"The LLM server at {url} refused the request ({status}): {text}")


def _not_found(text: str, config: LLMConfig, models: ModelLister | None) -> LLMError:
    url, model = redact(config.base_url), config.model
    if models is None:
        return LLMError(f"The LLM server at {url} has no /models endpoint (404: {text}). "
                        "Check OPENAI_BASE_URL: it usually ends in /v1.")
    try:
        names = models()
    except openai.APIError:
        return ModelNotFound(
            f"Model '{model}' is not available on {url} ({text}), and its model list could "
            "not be read. Set LLM_MODEL, and check OPENAI_BASE_URL (it usually ends in /v1).")
    if model in names:
        return LLMError(f"The LLM server at {url} answered 404 ({text}) although it lists "
                        "the model. Check OPENAI_BASE_URL: it usually ends in /v1.")
    return ModelNotFound.among(model, url, names)


def translate_mid_stream(exc: openai.APIError, config: LLMConfig) -> LLMError:
    """The error for a stream that broke after it started."""
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeout(f"{STOPPED_MID_ANSWER}: nothing arrived for {config.timeout:g} s "
                          "(LLM_TIMEOUT).")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"{STOPPED_MID_ANSWER}: the connection was cut before the answer was "
                        "complete.")
    return LLMError(f"{STOPPED_MID_ANSWER}: {error_text(exc)}")


Unreadable = json.JSONDecodeError | UnicodeDecodeError | pydantic.ValidationError

# pydantic's error types, said the way a server's log would be read
_EXPECTED = {"string_type": "text", "int_type": "a whole number",
             "int_parsing": "a whole number", "int_from_float": "a whole number",
             "list_type": "a list", "model_type": "an object",
             "model_attributes_type": "an object", "dict_type": "an object"}


def translate_unreadable(exc: Unreadable, config: LLMConfig, *, streaming: bool) -> LLMError:
    """The error for a reply the server sent but nobody can read: a stream line (or a whole
    reply) that is not JSON or not UTF-8, or JSON of a shape other than OpenAI's."""
    what = "stream line" if streaming else "reply"
    if isinstance(exc, json.JSONDecodeError):
        problem = (f"a malformed {what} (not JSON: {exc.msg} at character {exc.pos + 1}: "
                   f"{_snippet(exc.doc)})")
    elif isinstance(exc, UnicodeDecodeError):
        problem = (f"a malformed {what} (not UTF-8 text: byte {exc.object[exc.start]:#04x} "
                   f"at position {exc.start + 1})")
    else:
        whole = "stream chunk" if streaming else "reply"
        problem = f"a {whole} of an unexpected shape ({shape_problem(exc, whole)})"
    stop = " The answer stops here." if streaming else ""
    return LLMError(f"The LLM server at {redact(config.base_url)} sent {problem}.{stop} Check that "
                    "OPENAI_BASE_URL points at an OpenAI-compatible server and that no proxy "
                    "in between rewrites its replies; the server's log may say more.")


def shape_problem(exc: pydantic.ValidationError, whole: str = "reply") -> str:
    """The first field that is not what it should be: 'choices[0].delta.content: expected
    text, got 5' (`whole` names the value itself when that is the problem)."""
    error = exc.errors(include_url=False)[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                    for part in error["loc"]).lstrip(".") or f"the {whole}"
    expected = _EXPECTED.get(error["type"])
    said = f"expected {expected}" if expected else error["msg"]
    return f"{where}: {said}, got {_snippet(error.get('input'))}"


def _snippet(value: object, limit: int = 80) -> str:
    """A value as the server sent it, cut to `limit` characters (the cut is marked)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text)} characters)"
    return repr(text) if isinstance(value, str) else text


def error_text(exc: openai.APIError) -> str:
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
