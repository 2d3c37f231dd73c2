"""The choices a user makes, each defined once: retrieval modes, reasoning efforts, runtimes.

Settings, the CLI (Typer), the web app (Gradio) and the API build their choices and their
validation from these enums; `from_str` turns a user's value into a member or raises
`ConfigError` naming the choices.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from rag.errors import ConfigError


class Choice(StrEnum):
    """A StrEnum whose members compare equal to their values ("hybrid" == Mode.HYBRID)."""

    @classmethod
    def from_str(cls, value: str | Self, *, what: str | None = None) -> Self:
        """The member named by value (case and surrounding spaces ignored).

        Raises ConfigError "<what> must be one of a, b, c, not 'x'" otherwise; `what` defaults
        to the enum's own label.
        """
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            label = what or cls.label()
            raise ConfigError(f"{label} must be one of {cls.values_text()}, not {value!r}") \
                from None

    @classmethod
    def values(cls) -> list[str]:
        """The values, in definition order (for Typer and Gradio choices)."""
        return [member.value for member in cls]

    @classmethod
    def values_text(cls) -> str:
        """'a, b or c'."""
        values = cls.values()
        return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"

    @classmethod
    def label(cls) -> str:
        return cls.__name__.lower()


class Mode(Choice):
    """How the retriever searches: both indexes fused, the vectors only, or BM25 only."""

    HYBRID = "hybrid"
    DENSE = "dense"
    BM25 = "bm25"


class Effort(Choice):
    """gpt-oss's reasoning effort (the harmony `Reasoning:` level)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Runtime(Choice):
    """Where the local embedding model runs."""

    AUTO = "auto"
    TORCH = "torch"
    ONNX = "onnx"
    ONNX_INT8 = "onnx-int8"


class RerankRuntime(Choice):
    """Where the local cross-encoder runs."""

    AUTO = "auto"
    TORCH = "torch"
    ONNX = "onnx"


class Role(Choice):
    """What an account may do in a knowledge base; each role includes the ones before it."""

    VIEWER = "viewer"  # ask and search
    EDITOR = "editor"  # also add and delete documents
    ADMIN = "admin"  # also manage accounts and knowledge bases

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may."""
        order = list(Role)
        return order.index(self) >= order.index(needed)
