"""A sentence-transformers BERT model run with ONNX Runtime, without torch once exported.

The export (and the int8 quantisation) lives in rag.onnx_export; this module tokenizes with the
model's fast tokenizer, runs the exported graph, and pools like sentence-transformers (mean over
real tokens, then L2 normalisation). `encode_tokens` also hands back the token vectors and their
character offsets, for sentence vectors (rag.sentences).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import EmbeddingError
from rag.onnx_export import (  # noqa: F401  (re-exported: rag.rerank.onnx, the tests)
    DEFAULT_CACHE,
    EXPORT_FORMAT,
    OPSET,
    _model_name,
    _ort_errors,
    _read_json,
    _weights_file,
    export_onnx,
    quantize_onnx,
    trace_to_onnx,
    unsupported_reason,
)

TokenOutput = tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]


class OnnxEncoder:
    """Encodes texts like SentenceTransformer.encode, with ONNX Runtime on the CPU."""

    def __init__(self, model_dir: Path, *, quantized: bool = False,
                 cache_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.quantized = quantized
        weights = _weights_file(self.model_dir)
        reason = unsupported_reason(self.model_dir)
        if reason:
            raise EmbeddingError(f"The model in {self.model_dir} cannot run on ONNX Runtime: "
                                 f"{reason}. Set EMBEDDING_RUNTIME=torch.")
        stat = weights.stat()
        key = hashlib.sha256(
            f"{stat.st_size}\0{stat.st_mtime_ns}\0{EXPORT_FORMAT}\0{OPSET}".encode()
        ).hexdigest()[:16]
        base = (cache_dir or DEFAULT_CACHE).expanduser()
        self.cache_folder = base / f"{_model_name(self.model_dir)}-{key}"
        config = _read_json(self.model_dir / "config.json")
        self.dimension = int(config["hidden_size"])
        self.pad_id = int(config.get("pad_token_id", 0) or 0)
        st_config = self.model_dir / "sentence_bert_config.json"
        self.max_seq_length = int(_read_json(st_config).get("max_seq_length", 256)
                                  if st_config.exists() else 256)

    @property
    def model_path(self) -> Path:
        """Where the ONNX file this encoder runs lives (it may not exist yet)."""
        return self.cache_folder / ("model_int8.onnx" if self.quantized else "model.onnx")

    def prepare(self) -> Path:
        """Export (and quantise) the model unless the cache already holds it; returns its path."""
        fp32 = self.cache_folder / "model.onnx"
        if not fp32.exists():
            export_onnx(self.model_dir, fp32)
        if self.quantized and not self.model_path.exists():
            quantize_onnx(fp32, self.model_path)
        return self.model_path

    @cached_property
    def _session(self) -> Any:
        """The ONNX Runtime session, made on first use."""
        import onnxruntime as ort

        path = self.prepare()
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads would spin between batches, taking the CPU from Milvus Lite and
        # the parsers that run in this same process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(path), sess_options=options,
                                        providers=["CPUExecutionProvider"])
        except _ort_errors() as exc:
            raise EmbeddingError(f"ONNX Runtime cannot load {path} ({exc}). Delete the file "
                                 "to export it again.") from exc

    @cached_property
    def _input_names(self) -> set[str]:
        """The inputs the exported graph takes."""
        return {i.name for i in self._session.get_inputs()}

    @cached_property
    def _tokenizer(self) -> Any:
        """The model's fast tokenizer, truncating like sentence-transformers and not padding."""
        from tokenizers import Tokenizer

        path = self.model_dir / "tokenizer.json"
        if not path.is_file():
            raise EmbeddingError(f"No tokenizer.json in {self.model_dir}: the ONNX runtime needs "
                                 "a fast tokenizer file.")
        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        tokenizer.no_padding()
        return tokenizer

    def encode(self, texts: Sequence[str], batch_size: int = 32,
               normalize_embeddings: bool = True, convert_to_numpy: bool = True,
               show_progress_bar: bool = False) -> np.ndarray:
        """One float32 row per text, in input order (the progress bar argument is ignored)."""
        if not convert_to_numpy:
            raise ValueError("OnnxEncoder only returns numpy arrays (convert_to_numpy=True)")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        # Longest first, so each batch pads to lengths close to its own.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self._encode_batch([encodings[i].ids for i in rows])
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def encode_tokens(self, texts: Sequence[str], batch_size: int = 32) -> list[TokenOutput]:
        """Per text: its normalised vector, its token vectors and their character offsets."""
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        out: list[TokenOutput | None] = [None] * len(encodings)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            hidden, mask = self._hidden([encodings[i].ids for i in rows])
            pooled = _mean(hidden, mask)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            for j, i in enumerate(rows):
                length = len(encodings[i].ids)
                out[i] = (pooled[j], hidden[j, :length], list(encodings[i].offsets))
        return [o for o in out if o is not None]

    def _encode_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        """Mean-pooled token embeddings of one batch, padded to its longest text."""
        return _mean(*self._hidden(token_ids))

    def _hidden(self, token_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """The last hidden states of one batch (padded to its longest text) and the mask."""
        length = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(token_ids), length), dtype=np.int64)
        for row, ids in enumerate(token_ids):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(input_ids)}
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        try:
            hidden = self._session.run(None, feeds)[0]
        except _ort_errors() as exc:
            raise EmbeddingError(f"ONNX Runtime failed to embed a batch: {exc}") from exc
        return hidden, mask


def _mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the unmasked token vectors, per row."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    return summed / np.maximum(weights.sum(axis=1), 1e-9)
