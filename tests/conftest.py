"""Shared fixtures: the shared data folder, the real embedding model, real Milvus Lite stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag.embedding import LocalEmbedder
from rag.ingest import Ingestor
from rag.retrieval import Retriever
from rag.store import MilvusStore
from tests.llm_server import FakeGptOss

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PDFS = SHARED / "pdfs"
MILVUS_DOCS = SHARED / "milvus-docs"

pytest_plugins = ["tests.llamacpp_server"]


@pytest.fixture(scope="session")
def shared() -> Path:
    """The read-only shared data folder beside the project."""
    if not SHARED.is_dir():
        pytest.fail(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    """The real default embedding model (all-MiniLM-L6-v2 from its PyPI package)."""
    return LocalEmbedder()


@pytest.fixture
def store(tmp_path: Path, embedder: LocalEmbedder) -> Iterator[MilvusStore]:
    """A fresh Milvus Lite database in a temporary folder."""
    s = MilvusStore(str(tmp_path / "kb.db"), embedding_model=embedder.name,
                    dimension=embedder.dimension)
    yield s
    s.close()


@pytest.fixture
def ingestor(store: MilvusStore, embedder: LocalEmbedder) -> Ingestor:
    """An ingestor over the fresh store."""
    return Ingestor(store, embedder, chunk_tokens=200, chunk_overlap=40, batch_size=32)


@pytest.fixture
def retriever(store: MilvusStore, embedder: LocalEmbedder) -> Retriever:
    """A hybrid retriever over the fresh store."""
    return Retriever(store, embedder)


@pytest.fixture
def llm() -> Iterator[FakeGptOss]:
    """A loopback OpenAI-compatible server speaking the gpt-oss wire formats."""
    with FakeGptOss() as server:
        yield server


@pytest.fixture(scope="module")
def faq_retriever(tmp_path_factory: pytest.TempPathFactory,
                  embedder: LocalEmbedder) -> Iterator[Retriever]:
    """A hybrid retriever over the Milvus FAQ pages, one store per test module."""
    store = MilvusStore(str(tmp_path_factory.mktemp("faq") / "kb.db"),
                        embedding_model=embedder.name, dimension=embedder.dimension)
    Ingestor(store, embedder).ingest_paths([MILVUS_DOCS / "faq"])
    yield Retriever(store, embedder)
    store.close()
