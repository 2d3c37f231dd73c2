"""Where gpt-oss is served: documented presets, provider guessing and the client's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.errors import ConfigError

if TYPE_CHECKING:
    from rag.settings import Settings

PROVIDERS = ("openai-compatible", "ollama", "vllm", "lmstudio", "llamacpp", "openrouter")


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
