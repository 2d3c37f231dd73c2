"""The errors an LLM server's failures become; each message says what to fix.

Plain classes (no openai here): `translate.py` maps the SDK's exceptions onto them.
"""

from __future__ import annotations

from rag.errors import LLMError

STOPPED_MID_ANSWER = "The LLM server stopped in the middle of the answer"


class LLMUnreachable(LLMError):
    """Nothing answers at the base URL."""


class LLMTimeout(LLMError):
    """The server took longer than the timeout."""


class LLMAuthError(LLMError):
    """The server rejected the API key."""


class ModelNotFound(LLMError):
    """The server does not serve the configured model."""

    @classmethod
    def among(cls, model: str, base_url: str, names: list[str]) -> ModelNotFound:
        """The model is missing from the server's list `names`: name up to 20 of them."""
        listed = ", ".join(names[:20]) if names else "(the server lists no models)"
        return cls(f"Model '{model}' is not available on {base_url}. "
                   f"Set LLM_MODEL to one of: {listed}")


class RateLimited(LLMError):
    """The server kept answering 429 after every retry."""


class ContextTooLongError(LLMError):
    """The prompt does not fit the model's context window."""


class ToolCallingUnsupported(LLMError):
    """The server's streamed tool calls are broken; answer without tools."""
