"""The ONNX Runtime encoder gives the same embeddings as sentence-transformers on real texts."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import rag.onnx_encoder as onnx_encoder
from rag.embedding import LocalEmbedder
from rag.errors import EmbeddingError
from rag.onnx_encoder import OnnxEncoder


def _real_texts(shared: Path) -> list[str]:
    """About fifty varied texts: abstracts, Markdown paragraphs, code, edge cases."""
    with (shared / "beir" / "scifact" / "corpus.jsonl").open(encoding="utf-8") as fh:
        abstracts = [json.loads(line) for line in itertools.islice(fh, 20)]
    texts = [a["text"] for a in abstracts[:15]] + [a["title"] for a in abstracts[15:]]
    faq = (shared / "milvus-docs" / "faq" / "performance_faq.md").read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in faq.split("\n\n") if p.strip()]
    texts += paragraphs[:20]
    long_doc = (shared / "milvus-docs" / "faq" / "product_faq.md").read_text(encoding="utf-8")
    texts += [
        long_doc,  # thousands of tokens: truncated at max_seq_length
        "",
        "x",
        "Milvus",
        "What is the maximum dimension of a vector in Milvus?",
        "Ünïcödé façade — naïve café, 東京, Москва, 🙂",
        "client.create_collection(collection_name='demo', dimension=384)",
        "   leading and trailing spaces   ",
        "HNSW vs IVF_FLAT: recall 0.99 at ef=64, nprobe=16.",
        "a " * 400,  # many short tokens, truncated
    ]
    return texts


@pytest.fixture(scope="module")
def texts(shared: Path) -> list[str]:
    """The comparison texts."""
    return _real_texts(shared)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private export cache, so the test exports for real."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def torch_embedder() -> LocalEmbedder:
    """The model run by sentence-transformers on PyTorch: the reference."""
    return LocalEmbedder(runtime="torch")


@pytest.fixture(scope="module")
def reference(torch_embedder: LocalEmbedder, texts: list[str]) -> np.ndarray:
    """sentence-transformers (torch) embeddings of the texts."""
    return torch_embedder.embed(texts)


def test_fp32_matches_sentence_transformers(embedder: LocalEmbedder, texts: list[str],
                                            reference: np.ndarray, cache: Path) -> None:
    """Cosine > 0.9999 with the torch embeddings for every text, and unit length."""
    encoder = OnnxEncoder(embedder.model_dir, cache_dir=cache)
    assert encoder.max_seq_length == 256
    vectors = encoder.encode(texts, batch_size=8)
    assert vectors.shape == reference.shape
    assert vectors.dtype == np.float32
    cosines = (vectors * reference).sum(axis=1)
    worst = [(t[:40], c) for t, c in zip(texts, cosines, strict=True) if c <= 0.9999]
    assert not worst, worst
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (cache / encoder.cache_folder.name / "model.onnx").is_file()
    assert not list(encoder.cache_folder.glob("*.tmp"))


def test_int8_stays_close(embedder: LocalEmbedder, texts: list[str], reference: np.ndarray,
                          cache: Path) -> None:
    """The int8-quantised model keeps cosine > 0.98 with the torch embeddings."""
    encoder = OnnxEncoder(embedder.model_dir, quantized=True, cache_dir=cache)
    vectors = encoder.encode(texts, batch_size=16)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() > 0.98
    assert encoder.model_path.name == "model_int8.onnx"
    fp32_size = (encoder.cache_folder / "model.onnx").stat().st_size
    assert encoder.model_path.stat().st_size < fp32_size / 2


def test_order_is_preserved_across_batches(embedder: LocalEmbedder, texts: list[str],
                                           cache: Path) -> None:
    """Length sorting inside encode never reorders the output; batch size does not matter."""
    encoder = OnnxEncoder(embedder.model_dir, cache_dir=cache)
    sample = texts[:12]
    one_by_one = np.stack([encoder.encode([t])[0] for t in sample])
    batched = encoder.encode(sample, batch_size=5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    reversed_rows = encoder.encode(sample[::-1], batch_size=3)
    np.testing.assert_allclose(reversed_rows[::-1], one_by_one, atol=1e-5)


def test_empty_input(embedder: LocalEmbedder, cache: Path) -> None:
    """No texts: an empty (0, 384) float32 array, without loading anything."""
    encoder = OnnxEncoder(embedder.model_dir, cache_dir=cache)
    empty = encoder.encode([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32


def test_export_is_reused(embedder: LocalEmbedder, cache: Path) -> None:
    """A second encoder finds the cached export instead of exporting again."""
    first = OnnxEncoder(embedder.model_dir, cache_dir=cache)
    path = first.prepare()
    before = path.stat().st_mtime_ns
    second = OnnxEncoder(embedder.model_dir, cache_dir=cache)
    assert second.prepare() == path
    assert path.stat().st_mtime_ns == before


def test_local_embedder_onnx_runtime(embedder: LocalEmbedder, texts: list[str],
                                     reference: np.ndarray, cache: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """LocalEmbedder(runtime='onnx') runs through OnnxEncoder with the same results."""
    monkeypatch.setattr(onnx_encoder, "DEFAULT_CACHE", cache)
    onnx = LocalEmbedder(runtime="onnx", batch_size=16)
    assert onnx.max_tokens == 256
    assert onnx.dimension == 384
    cosines = (onnx.embed(texts) * reference).sum(axis=1)
    assert cosines.min() > 0.9999
    np.testing.assert_allclose(onnx.embed_query(texts[3]), reference[3], atol=1e-4)


def test_corrupt_cache_file_is_reported(embedder: LocalEmbedder, tmp_path: Path) -> None:
    """A damaged cached model gives an EmbeddingError naming the file to delete."""
    encoder = OnnxEncoder(embedder.model_dir, cache_dir=tmp_path)
    encoder.cache_folder.mkdir(parents=True)
    (encoder.cache_folder / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(EmbeddingError, match="Delete the file"):
        encoder.encode(["hello"])


def test_folder_without_weights_is_rejected(tmp_path: Path) -> None:
    """A folder that is not a model fails with a clear EmbeddingError."""
    with pytest.raises(EmbeddingError, match=r"model\.safetensors"):
        OnnxEncoder(tmp_path)


def _model_copy(embedder: LocalEmbedder, folder: Path, pooling: dict[str, bool]) -> Path:
    """The bundled model's files (linked), with another pooling configuration."""
    for item in embedder.model_dir.iterdir():
        if item.name != "1_Pooling":
            (folder / item.name).symlink_to(item)
    original = json.loads((embedder.model_dir / "1_Pooling" / "config.json").read_text())
    (folder / "1_Pooling").mkdir()
    config = {k: v for k, v in original.items() if not k.startswith("pooling_mode_")}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({**config, **pooling}))
    return folder


def test_auto_runtime_is_onnx_for_the_default_model(embedder: LocalEmbedder) -> None:
    assert onnx_encoder.unsupported_reason(embedder.model_dir) is None
    assert LocalEmbedder().runtime == "onnx"


def test_models_onnx_cannot_match_run_on_torch_or_fail_clearly(embedder: LocalEmbedder,
                                                                tmp_path: Path) -> None:
    cls_model = _model_copy(embedder, tmp_path, {"pooling_mode_cls_token": True,
                                                 "pooling_mode_mean_tokens": False})
    reason = onnx_encoder.unsupported_reason(cls_model)
    assert reason is not None and "cls_token" in reason
    assert LocalEmbedder(str(cls_model)).runtime == "torch"
    with pytest.raises(EmbeddingError, match="EMBEDDING_RUNTIME=torch"):
        LocalEmbedder(str(cls_model), runtime="onnx").embed(["text"])
