"""A sentence-transformers BERT model run with ONNX Runtime: export once, then encode without torch.

The first use exports the model's weights to ONNX with `torch.onnx.export` and keeps the file in a
cache folder; later processes only need onnxruntime and tokenizers. The export itself needs torch
and transformers (both dependencies of sentence-transformers). It uses the TorchScript exporter
(`dynamo=False`): the newer dynamo exporter needs the `onnxscript` package, which is not a
dependency. Embeddings match sentence-transformers: the same WordPiece tokenizer truncated at the
model's `max_seq_length`, mean pooling over real tokens, then L2 normalisation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import EmbeddingError

# Part of the cache key: change it when the exported graph or the quantisation recipe changes.
EXPORT_FORMAT = "bert-last-hidden-state-v1;int8-per-channel-keep-ffn-out"
OPSET = 17
DEFAULT_CACHE = Path("~/.cache/gpt-oss-rag/onnx")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

logger = logging.getLogger(__name__)


def _ort_errors() -> tuple[type[Exception], ...]:
    """The exception classes onnxruntime raises (they share no base class but Exception)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel",
             "NoSuchFile", "NotImplemented", "RuntimeException", "EPFail", "EngineError")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))


def _model_name(model_dir: Path) -> str:
    """A readable name for the cache folder (the package or hub name, not a generic folder)."""
    path = model_dir.resolve()
    name = path.name
    if path.parent.name == "snapshots":  # Hugging Face cache: models--org--name/snapshots/<sha>
        name = path.parent.parent.name.removeprefix("models--")
    elif name in ("model", "models") and path.parent.name:
        name = path.parent.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def _weights_file(model_dir: Path) -> Path:
    """The model's weight file, whose size and mtime key the cache."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).is_file():
            return model_dir / name
    raise EmbeddingError(f"No model.safetensors or pytorch_model.bin in {model_dir}: it is not "
                         "a sentence-transformers model folder.")


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file of the model folder, or a clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"Cannot read {path}: {exc}") from exc


def _atomic_target(final: Path) -> Path:
    """A fresh temporary path beside `final`, for write-then-rename."""
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(name)


def trace_to_onnx(model: Any, output: str, inputs: tuple[Any, Any, Any], target: Path,
                  output_axes: dict[int, str]) -> None:
    """Export `model(input_ids=, attention_mask=, token_type_ids=).<output>` to `target`,
    atomically. Raises what torch's exporter raises (RuntimeError, OSError, ValueError)."""
    import torch

    class _KeywordCall(torch.nn.Module):
        """Keyword-only call of the transformer, so the export sees exactly three inputs."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            """The chosen output of the model."""
            return getattr(self.model(input_ids=input_ids, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids), output)

    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS} | {output: output_axes}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _atomic_target(target)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The trace warns about Python branches on shapes (constant for an encoder) and the
            # old exporter about its own internals; none of it is for the user.
            warnings.simplefilter("ignore")
            torch.onnx.export(_KeywordCall(model), inputs, str(tmp), input_names=list(_INPUTS),
                              output_names=[output], dynamic_axes=axes, opset_version=OPSET,
                              dynamo=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the BERT encoder (token embeddings out) to `target`, atomically; needs torch."""
    try:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise EmbeddingError(
            f"Exporting the embedding model to ONNX needs torch and transformers ({exc}). "
            f"Install them once, or put an exported model.onnx at {target}."
        ) from exc
    transformers_logging.disable_progress_bar()  # no "Loading weights" bar
    try:
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"Cannot load the model in {model_dir} for export: {exc}") from exc
    model.eval()
    # A padded sample, so the traced graph keeps the attention-mask path.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    logger.info("Exporting %s to ONNX at %s (once)", model_dir, target)
    try:
        trace_to_onnx(model, "last_hidden_state", (ids, (ids != 0).long(), torch.zeros_like(ids)),
                      target, {0: "batch", 1: "sequence"})
    except (RuntimeError, OSError, ValueError) as exc:
        raise EmbeddingError(f"Exporting {model_dir} to ONNX failed: {exc}") from exc


def _ffn_output_matmuls(model_path: Path) -> list[str]:
    """Names of the feed-forward down-projections (`layer.N/output/dense`) of a BERT graph."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul"
            and "/output/dense/" in n.name and "/attention/" not in n.name]


def quantize_onnx(source: Path, target: Path) -> None:
    """Write an int8 (dynamic, per-channel) quantised copy of an ONNX model, atomically.

    The feed-forward down-projections stay float32: their inputs (after GELU) have outliers
    that int8 rounds badly. On all-MiniLM-L6-v2 quantising them too lowers the worst cosine with
    the float model from 0.985 to 0.977 for a small speed gain; per-tensor scales give 0.75.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_float = _ffn_output_matmuls(source)
    if not keep_float:
        logger.warning("No BERT feed-forward output layers found in %s: quantising every "
                       "MatMul, which costs accuracy.", source)
    tmp = _atomic_target(target)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime advises a pre-processing step we do not need
    try:
        quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=keep_float)
        os.replace(tmp, target)
    except (RuntimeError, OSError, ValueError) as exc:
        raise EmbeddingError(f"Quantising {source} to int8 failed: {exc}") from exc
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)


def unsupported_reason(model_dir: Path) -> str | None:
    """Why this model cannot run here (only BERT encoders with mean pooling can), or None."""
    model_dir = Path(model_dir)
    config = model_dir / "config.json"
    if not config.is_file():
        return f"no config.json in {model_dir}"
    model_type = _read_json(config).get("model_type")
    if model_type != "bert":
        return f"its architecture is '{model_type}', and only BERT encoders are exported"
    modules = model_dir / "modules.json"
    if not modules.is_file():
        return "it has no sentence-transformers modules.json (pooling unknown)"
    listed = _read_json_list(modules)
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in listed]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        return f"its sentence-transformers modules are {kinds}, not Transformer + Pooling"
    pool_config = _read_json(model_dir / listed[1].get("path", "1_Pooling") / "config.json")
    modes = sorted(k.removeprefix("pooling_mode_") for k, v in pool_config.items()
                   if k.startswith("pooling_mode_") and v is True)
    if modes != ["mean_tokens"]:
        return f"it pools by {', '.join(modes) or 'nothing'}, and only mean pooling is supported"
    return None


TokenOutput = tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    data: Any = _read_json(path)
    return data if isinstance(data, list) else []


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
