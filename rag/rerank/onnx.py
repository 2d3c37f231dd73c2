"""A BERT cross-encoder run with ONNX Runtime: export once, then score pairs without torch.

Like rag.onnx_encoder for the embedding model: the first use exports the sequence-classification
model (its one logit out) with the TorchScript exporter of `torch.onnx.export` and keeps the file
in the same cache folder; later processes need only onnxruntime and tokenizers. Scores match
sentence-transformers' CrossEncoder.predict: the same fast tokenizer on (query, passage) pairs,
truncated `longest_first` at the same length, then the model's activation (identity or sigmoid).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.onnx_encoder import DEFAULT_CACHE, OPSET, _model_name, _ort_errors, trace_to_onnx
from rag.rerank import RerankError
from rag.rerank.local import read_json

# Part of the cache key: change it when the exported graph changes.
EXPORT_FORMAT = "bert-sequence-classification-logits-v1"
_IDENTITY = ("torch.nn.Identity", "torch.nn.modules.linear.Identity")
_SIGMOID = ("torch.nn.Sigmoid", "torch.nn.modules.activation.Sigmoid")

logger = logging.getLogger(__name__)


def activation(model_dir: Path) -> str | None:
    """'identity' or 'sigmoid', where CrossEncoder finds it, or None for any other function.

    CrossEncoder reads config_sentence_transformers.json, then config.json's
    `sentence_transformers` block, then the older `sbert_ce_default_activation_function`, and
    applies a sigmoid to one-logit models that name none.
    """
    config = read_json(model_dir / "config.json")
    named = (read_json(model_dir / "config_sentence_transformers.json").get("activation_fn")
             or (config.get("sentence_transformers") or {}).get("activation_fn")
             or config.get("sbert_ce_default_activation_function"))
    if named is None or named in _SIGMOID:
        return "sigmoid"
    return "identity" if named in _IDENTITY else None


def unsupported_reason(model_dir: Path) -> str | None:
    """Why this model cannot run on ONNX Runtime here, or None."""
    model_dir = Path(model_dir)
    config = read_json(model_dir / "config.json")
    if not config:
        return f"no config.json in {model_dir}"
    if config.get("model_type") != "bert":
        return f"its architecture is '{config.get('model_type')}', and only BERT is exported"
    if "BertForSequenceClassification" not in (config.get("architectures") or []):
        return "it is not a BertForSequenceClassification model"
    if len(config.get("id2label") or {"0": ""}) != 1:
        return "it has more than one output label"
    if not (model_dir / "tokenizer.json").is_file():
        return "it has no fast tokenizer file (tokenizer.json)"
    if activation(model_dir) is None:
        return "its activation function is neither identity nor sigmoid"
    st_config = read_json(model_dir / "config_sentence_transformers.json")
    if st_config.get("prompts") or st_config.get("default_prompt_name"):
        return "it uses prompts"
    modules_file = model_dir / "modules.json"
    if modules_file.is_file():
        modules = _read_list(modules_file)
        if len(modules) != 1 or modules[0].get("path", "") != "":
            return "its sentence-transformers modules go beyond one transformer"
    return None


def _read_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RerankError(f"Cannot read {path}: {exc}") from exc
    return data if isinstance(data, list) else []


def _weights_file(model_dir: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).is_file():
            return model_dir / name
    raise RerankError(f"No model.safetensors or pytorch_model.bin in {model_dir}: it is not a "
                      "cross-encoder model folder.")


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the cross-encoder (logits out) to `target`, atomically; needs torch."""
    try:
        import torch
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise RerankError(f"Exporting the reranker to ONNX needs torch and transformers ({exc}). "
                          "Install them once, or set RERANKER_RUNTIME=torch.") from exc
    transformers_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir),
                                                                   local_files_only=True)
    except (OSError, ValueError) as exc:
        raise RerankError(f"Cannot load the reranker in {model_dir} for export: {exc}") from exc
    model.eval()
    # A padded pair sample, so the trace keeps the attention-mask and segment paths.
    ids = torch.tensor([[101, 7592, 102, 2088, 102], [101, 7592, 102, 2088, 0]], dtype=torch.long)
    types = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 1, 0]], dtype=torch.long)
    logger.info("Exporting the reranker %s to ONNX at %s (once)", model_dir, target)
    try:
        trace_to_onnx(model, "logits", (ids, (ids != 0).long(), types), target, {0: "batch"})
    except (RuntimeError, OSError, ValueError) as exc:
        raise RerankError(f"Exporting the reranker {model_dir} to ONNX failed: {exc}. "
                          "Set RERANKER_RUNTIME=torch.") from exc


class OnnxCrossEncoder:
    """Scores (query, passage) pairs like CrossEncoder.predict, with ONNX Runtime on the CPU."""

    def __init__(self, model_dir: Path, *, max_length: int, cache_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        reason = unsupported_reason(self.model_dir)
        if reason:
            raise RerankError(f"The reranker in {self.model_dir} cannot run on ONNX Runtime: "
                              f"{reason}. Set RERANKER_RUNTIME=torch.")
        self.max_length = max_length
        self.sigmoid = activation(self.model_dir) == "sigmoid"
        self.pad_id = int(read_json(self.model_dir / "config.json").get("pad_token_id") or 0)
        stat = _weights_file(self.model_dir).stat()
        key = hashlib.sha256(
            f"{stat.st_size}\0{stat.st_mtime_ns}\0{EXPORT_FORMAT}\0{OPSET}".encode()
        ).hexdigest()[:16]
        base = (cache_dir or DEFAULT_CACHE).expanduser()
        self.model_path = base / f"{_model_name(self.model_dir)}-rerank-{key}" / "model.onnx"

    @cached_property
    def _session(self) -> Any:
        """The ONNX Runtime session; exports the model first when the cache lacks it."""
        import onnxruntime as ort

        if not self.model_path.exists():
            export_onnx(self.model_dir, self.model_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No spinning idle threads between batches (they would take the CPU from Milvus Lite).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(self.model_path), sess_options=options,
                                        providers=["CPUExecutionProvider"])
        except _ort_errors() as exc:
            raise RerankError(f"ONNX Runtime cannot load {self.model_path} ({exc}). Delete the "
                              "file to export it again.") from exc

    @cached_property
    def _tokenizer(self) -> Any:
        """The model's fast tokenizer, truncating pairs like CrossEncoder, not padding."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.max_length, strategy="longest_first")
        tokenizer.no_padding()
        return tokenizer

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 16,
                show_progress_bar: bool = False, convert_to_numpy: bool = True) -> np.ndarray:
        """One score per pair, in input order (the progress-bar argument is ignored)."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        encodings = self._tokenizer.encode_batch(list(pairs))
        # Longest first, so each batch pads to lengths close to its own.
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        out = np.empty(len(encodings), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self._score_batch([encodings[i] for i in rows])
        return 0.5 * (1.0 + np.tanh(out / 2.0)) if self.sigmoid else out  # sigmoid, no overflow

    def _score_batch(self, encodings: list[Any]) -> np.ndarray:
        """The logit of each pair of one batch, padded to its longest pair."""
        length = max(len(e.ids) for e in encodings)
        input_ids = np.full((len(encodings), length), self.pad_id, dtype=np.int64)
        types = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, e in enumerate(encodings):
            input_ids[row, :len(e.ids)] = e.ids
            types[row, :len(e.ids)] = e.type_ids
            mask[row, :len(e.ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
        try:
            logits = self._session.run(None, feeds)[0]
        except _ort_errors() as exc:
            raise RerankError(f"ONNX Runtime failed to score a batch: {exc}") from exc
        return np.asarray(logits, dtype=np.float32).reshape(len(encodings), -1)[:, 0]
