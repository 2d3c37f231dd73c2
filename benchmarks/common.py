"""Shared helpers of the benchmarks: data paths, embedders, timing wrappers, machine facts."""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag.chunking import chunk_sections
from rag.embedding import LocalEmbedder
from rag.evaluation import BeirDataset
from rag.ingest import embedding_text
from rag.schema import Section
from rag.store import MilvusStore

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MILVUS_DOCS = SHARED / "milvus-docs"
PDFS = SHARED / "pdfs"
SCIFACT = SHARED / "beir" / "scifact"
CHUNK_TOKENS = 200  # the Settings defaults
CHUNK_OVERLAP = 40
BATCH_SIZE = 32

RUNTIMES = ("torch", "onnx", "onnx-int8")  # what the encoder benchmark compares

# Subprocesses inherit the start time, so their progress lines share one clock.
_STARTED = float(os.environ.setdefault("BENCH_STARTED", repr(time.time())))


def log(message: str) -> None:
    """Progress line with the time since the benchmarks started."""
    print(f"[{time.time() - _STARTED:7.1f}s] {message}", flush=True)


def make_embedder(runtime: str, batch_size: int = BATCH_SIZE) -> LocalEmbedder:
    """The bundled model on one runtime: torch, onnx (fp32) or onnx-int8."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}")
    return LocalEmbedder(batch_size=batch_size, runtime=runtime)


def open_store(folder: Path, embedder: LocalEmbedder, name: str = "kb") -> MilvusStore:
    """A fresh Milvus Lite database in a temporary folder."""
    return MilvusStore(str(folder / f"{name}.db"), embedding_model=embedder.name,
                       dimension=embedder.dimension)


def scifact() -> BeirDataset:
    """The SciFact test split."""
    return BeirDataset(SCIFACT, "test")


def scifact_chunk_texts(embedder: LocalEmbedder, count: int, seed: int = 0) -> list[str]:
    """Embedding texts of `count` SciFact chunks from randomly chosen documents."""
    docs = list(scifact().corpus())
    random.Random(seed).shuffle(docs)
    texts: list[str] = []
    for doc_id, title, text in docs:
        section = Section(text=text, heading=(title,) if title else ())
        for chunk in chunk_sections([section], doc_id=doc_id, version="v", source=doc_id,
                                    count_tokens=embedder.count_tokens,
                                    max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP):
            texts.append(embedding_text(chunk))
        if len(texts) >= count:
            return texts[:count]
    return texts


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), linear interpolation."""
    return float(np.percentile(np.asarray(values, dtype=float), p))


def median(values: Sequence[float]) -> float:
    """The median."""
    return float(statistics.median(values))


def rss_mb(field: str = "VmRSS") -> float:
    """Resident set size of this process now (VmRSS) or at its peak (VmHWM), in MB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, load and library versions."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="ascii") as fh:
        mem_kb = int(fh.readline().split()[1])
    import onnxruntime
    import pymilvus
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 ** 2, 1),
            "load_average": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "pymilvus": pymilvus.__version__, "platform": sys.platform}


class Stopwatch:
    """Accumulates seconds and calls per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """`func`, timed under `name`."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed

    def iterate(self, name: str, items: Iterator[Any]) -> Iterator[Any]:
        """`items`, with the time spent producing each one timed under `name`."""
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.seconds[name] += time.perf_counter() - started
                return
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1
            yield item


class TimedEmbedder:
    """Delegates to an embedder, timing embed and count_tokens and keeping each embed batch."""

    def __init__(self, inner: LocalEmbedder, watch: Stopwatch) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.watch = watch
        self.makes_sentences = inner.makes_sentences
        self.batches: list[tuple[list[str], float]] = []  # texts, seconds
        # the sentence spans and shifts of each batch embed_sentences had (None for embed)
        self.spans: list[tuple[Any, Any] | None] = []
        self._count = watch.wrap("count_tokens", inner.count_tokens)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed and record the batch."""
        started = time.perf_counter()
        vectors = self.inner.embed(texts)
        self._record(texts, started)
        self.spans.append(None)
        return vectors

    def embed_sentences(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
                        shifts: Sequence[int]) -> tuple[np.ndarray, Any]:
        """Embed with sentence vectors (what the ingest calls) and record the batch."""
        started = time.perf_counter()
        result = self.inner.embed_sentences(texts, spans, shifts)
        self._record(texts, started)
        self.spans.append((list(spans), list(shifts)))
        return result

    def _record(self, texts: Sequence[str], started: float) -> None:
        seconds = time.perf_counter() - started
        self.watch.seconds["embed"] += seconds
        self.watch.calls["embed"] += 1
        self.batches.append((list(texts), seconds))

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query."""
        return self.inner.embed_query(text)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Count tokens, timed."""
        return self._count(texts)


class HashEmbedder:
    """A stand-in encoder with no cost: pseudo-random unit vectors, the real token counter.

    Ingesting with it shows what everything except the encoder costs.
    """

    def __init__(self, inner: LocalEmbedder) -> None:
        self.name = inner.name
        self.dimension = 384
        self._count = inner.count_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One random unit vector per text."""
        rng = np.random.default_rng(len(texts))
        vectors = rng.normal(size=(len(texts), self.dimension)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed_query(self, text: str) -> np.ndarray:
        """A random unit vector."""
        return self.embed([text])[0]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """The real model's token counts (the chunker's cost is real)."""
        return self._count(texts)


class TimedStore:
    """Delegates to a MilvusStore, timing every method call under `store.<name>`."""

    def __init__(self, inner: MilvusStore, watch: Stopwatch) -> None:
        self._inner = inner
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if callable(value):
            return self._watch.wrap(f"store.{name}", value)
        return value
