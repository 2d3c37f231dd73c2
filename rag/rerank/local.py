"""A cross-encoder on this machine: ONNX Runtime where the model allows it, else PyTorch.

Both runtimes read the pair as the model was trained to, `[CLS] query [SEP] passage [SEP]`, cut
to the model's input limit (at most 512 tokens) with the `longest_first` strategy: tokens are
taken off the longer of the two, which is the passage unless the query is longer. A passage cut
this way is scored on its first few hundred tokens; its full text still goes to the prompt.
Chunks are about 200 tokens (CHUNK_TOKENS), so with a short query nothing is cut.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from rag.rerank import RerankError

MAX_LENGTH = 512  # the input limit of BERT-family cross-encoders


def resolve_model_dir(model: str) -> Path:
    """A local folder for a cross-encoder: the folder itself, the hub cache, else a download."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise RerankError(f"No reranker model folder at {path}: set RERANKER to a "
                          "cross-encoder's folder or hub name, or RERANKER=none.")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        try:
            return Path(snapshot_download(model, local_files_only=True))
        except LocalEntryNotFoundError:
            return Path(snapshot_download(model))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise RerankError(
            f"Reranker model '{model}' is not on this machine and could not be downloaded "
            f"({type(exc).__name__}). Download it where the hub is reachable and set RERANKER "
            "to its folder, or RERANKER=none to turn reranking off."
        ) from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from the model folder; {} when the file is absent."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RerankError(f"Cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def input_limit(model_dir: Path, cap: int = MAX_LENGTH) -> int:
    """Tokens per pair the model reads: `cap`, lowered to the model's own limits."""
    limits = [cap]
    config = read_json(model_dir / "config.json")
    tokenizer = read_json(model_dir / "tokenizer_config.json")
    st_config = read_json(model_dir / "sentence_bert_config.json")
    for value in (config.get("max_position_embeddings"), tokenizer.get("model_max_length"),
                  st_config.get("max_seq_length")):
        if isinstance(value, int) and value > 0:
            limits.append(value)
    return min(limits)


def _resolve_runtime(runtime: str, model_dir: Path) -> str:
    """`auto` is ONNX Runtime where the model allows it, else PyTorch."""
    if runtime != "auto":
        return runtime
    from rag.rerank.onnx import unsupported_reason

    return "torch" if unsupported_reason(model_dir) else "onnx"


class LocalReranker:
    """A cross-encoder (sequence classification with one logit) run on the CPU."""

    def __init__(self, model: str, *, runtime: str = "auto", batch_size: int = 16,
                 max_length: int = MAX_LENGTH, cache_dir: Path | None = None) -> None:
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError("runtime must be auto, torch or onnx")
        self.model_dir = resolve_model_dir(model)
        self.name = model
        self.batch_size = batch_size
        self.max_length = input_limit(self.model_dir, max_length)
        self.runtime = _resolve_runtime(runtime, self.model_dir)
        self.cache_dir = cache_dir

    @cached_property
    def _model(self) -> Any:
        """The ONNX or PyTorch cross-encoder, loaded on first use."""
        if self.runtime == "onnx":
            from rag.rerank.onnx import OnnxCrossEncoder

            return OnnxCrossEncoder(self.model_dir, max_length=self.max_length,
                                    cache_dir=self.cache_dir)
        return _load_cross_encoder(self.model_dir, self.max_length)

    def warm_up(self) -> None:
        """Load (and on the first run export) the model now rather than on the first query."""
        self.score("warm up", ["warm up"])

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """The model's relevance score of each (query, text) pair, in input order."""
        if not texts:
            return []
        pairs = [(query, text) for text in texts]
        scores = self._model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                     convert_to_numpy=True)
        return [float(s) for s in scores]


def _load_cross_encoder(model_dir: Path, max_length: int) -> Any:
    """sentence-transformers' CrossEncoder on PyTorch, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import CrossEncoder
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise RerankError(f"The local reranker needs sentence-transformers and torch ({exc}): "
                          "pip install sentence-transformers") from exc
    transformers_logging.disable_progress_bar()
    try:
        return CrossEncoder(str(model_dir), device="cpu", local_files_only=True,
                            max_length=max_length)
    except (OSError, ValueError, KeyError) as exc:
        raise RerankError(f"Could not load the reranker model from {model_dir}: {exc}. "
                          "RERANKER must name a cross-encoder (sequence classification).") from exc
