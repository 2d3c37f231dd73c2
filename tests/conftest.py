"""Shared fixtures: the shared data folder, the real embedding model, real Milvus Lite stores,
a Milvus Lite gRPC server, the loopback gpt-oss server. Plain helpers are in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag.embedding import LocalEmbedder
from rag.ingest import Ingestor
from rag.retrieval import Retriever
from rag.store import MilvusStore
from tests.helpers import FAQ, SHARED, RunningApp, chromium_or_skip, free_port, open_store
from tests.llm_server import FakeGptOss

pytest_plugins = ["tests.llamacpp_server", "tests.postgres"]


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
    s = open_store(tmp_path / "kb.db", embedder)
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


@pytest.fixture
def web_app(tmp_path: Path, embedder: LocalEmbedder) -> Iterator[tuple[RunningApp, FakeGptOss]]:
    """A fresh web app (empty knowledge base, loopback LLM) for a real browser; skips when
    Chromium is missing."""
    chromium_or_skip()
    with FakeGptOss() as server:
        running = RunningApp(tmp_path / "kb.db", server.base_url, embedder)
        try:
            yield running, server
        finally:
            running.close()


@pytest.fixture(scope="module")
def faq_retriever(tmp_path_factory: pytest.TempPathFactory,
                  embedder: LocalEmbedder) -> Iterator[Retriever]:
    """A hybrid retriever over the Milvus FAQ pages, one store per test module."""
    store = open_store(tmp_path_factory.mktemp("faq") / "kb.db", embedder)
    Ingestor(store, embedder).ingest_paths([FAQ])
    yield Retriever(store, embedder)
    store.close()


@pytest.fixture
def milvus_server(tmp_path: Path) -> Iterator[str]:
    """A real Milvus Lite gRPC server on loopback; yields its http:// URI."""
    port = free_port()
    exe = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    proc = subprocess.Popen([exe, "server", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(tmp_path / "server")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("milvus-lite server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)
