"""The openai SDK's exceptions turned into our LLM errors, with a message a user can act on."""

from __future__ import annotations

import re
from collections.abc import Callable

import openai

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
    url = config.base_url
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
    url, text, status = config.base_url, error_text(exc), exc.status_code
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
    url, model = config.base_url, config.model
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
