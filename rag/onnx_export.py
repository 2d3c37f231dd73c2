"""Exporting a sentence-transformers BERT model to ONNX (and quantising it), once per model.

The runtime side is rag.onnx_encoder. The first use exports the model's weights to ONNX with
`torch.onnx.export` and keeps the file in a cache folder; later processes only need onnxruntime
and tokenizers. The export itself needs torch and transformers (both dependencies of
sentence-transformers). It uses the TorchScript exporter (`dynamo=False`): the newer dynamo
exporter needs the `onnxscript` package, which is not a dependency.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

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


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    data: Any = _read_json(path)
    return data if isinstance(data, list) else []
