"""Streaming chat with gpt-oss through any OpenAI-compatible server (Ollama, vLLM, ...).

One job per module: `presets` (endpoints, provider, LLMConfig), `events` (what a stream
yields), `harmony` (raw harmony / <think> markup split into reasoning and answer), `toolcalls`
(streamed tool-call assembly), `turn` (one streamed turn's chunks into events), `retry`
(waits and notices), `errors` (our error classes), `translate` (openai exceptions into them)
and `client` (LLMClient). Only `client` and `translate` import openai.
"""

from rag.llm.client import LLMClient
from rag.llm.errors import (
    ContextTooLongError,
    LLMAuthError,
    LLMTimeout,
    LLMUnreachable,
    ModelNotFound,
    RateLimited,
    ToolCallingUnsupported,
)
from rag.llm.events import (
    ContentDelta,
    ReasoningDelta,
    Retrying,
    StreamItem,
    ToolCall,
    ToolCallsReady,
    Usage,
)
from rag.llm.harmony import HarmonyParser, split_reasoning
from rag.llm.presets import (
    PRESETS,
    PROVIDERS,
    LLMConfig,
    Preset,
    guess_provider,
    provider_streams_tool_calls,
)
from rag.llm.retry import MAX_RETRY_WAIT

__all__ = [
    "MAX_RETRY_WAIT",
    "PRESETS",
    "PROVIDERS",
    "ContentDelta",
    "ContextTooLongError",
    "HarmonyParser",
    "LLMAuthError",
    "LLMClient",
    "LLMConfig",
    "LLMTimeout",
    "LLMUnreachable",
    "ModelNotFound",
    "Preset",
    "RateLimited",
    "ReasoningDelta",
    "Retrying",
    "StreamItem",
    "ToolCall",
    "ToolCallingUnsupported",
    "ToolCallsReady",
    "Usage",
    "guess_provider",
    "provider_streams_tool_calls",
    "split_reasoning",
]
