"""Helpers shared by the tests: data paths, a free loopback port, stores, the `rag` command,
the answering pipeline on the loopback LLM, and the web app on a loopback port.

Fixtures live in tests/conftest.py; a test module imports from here, never from another test."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.store import MilvusStore

if TYPE_CHECKING:
    from gradio_client import Client

    from rag.embedding import Embedder
    from rag.pipeline import AnswerPipeline
    from rag.retrieval import Retriever
    from tests.llm_server import FakeGptOss

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PDFS = SHARED / "pdfs"
OFFICE = SHARED / "office"
MILVUS_DOCS = SHARED / "milvus-docs"
FAQ = MILVUS_DOCS / "faq"
CLOUD_PDF = PDFS / "nist-sp800-145-cloud-definition-7p.pdf"
"""The 7-page NIST cloud computing definition: the small PDF most tests ingest."""

UNREACHABLE_LLM = "http://127.0.0.1:9/v1"
"""An LLM URL where nothing listens (the discard port)."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind to port 0, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_store(uri: str | Path, embedder: Embedder) -> MilvusStore:
    """A store at `uri` (a Milvus Lite file or a server URL) for the embedder's vectors."""
    return MilvusStore(str(uri), embedding_model=embedder.name, dimension=embedder.dimension)


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines output (`rag ... --json`), blank lines skipped."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


RagCommand = Callable[..., subprocess.CompletedProcess[str]]


def rag_command(cwd: Path, **env: str) -> RagCommand:
    """A runner of `python -m rag ARGS` in `cwd`, with its output piped (no COLUMNS).

    The knowledge base is `cwd/kb.db` and the LLM is unreachable unless `env` says otherwise.
    The runner takes the command's words, `ok=False` to allow a failure (otherwise a non-zero
    exit fails the test with the end of stderr), and more environment variables as keywords
    for one call (e.g. COLUMNS="90").
    """
    base = {**os.environ, "MILVUS_URI": str(cwd / "kb.db"), "PYTHONPATH": str(ROOT),
            "OPENAI_BASE_URL": UNREACHABLE_LLM, "LLM_MODEL": "gpt-oss-20b"}
    base.pop("COLUMNS", None)
    base.update(env)

    def run(*args: str, ok: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True,
                                text=True, env={**base, **extra}, timeout=600, cwd=cwd)
        if ok:
            assert result.returncode == 0, result.stderr[-2000:]
        return result

    return run


class RunningApp:
    """The Gradio app over a fresh knowledge base, served on a free loopback port."""

    def __init__(self, db: Path, llm_url: str, embedder: Embedder, port: int | None = None,
                 **overrides: Any) -> None:
        from rag.kb import KnowledgeBase
        from rag.settings import Settings
        from rag.ui import build_app, launch
        from rag.ui.server import auth_from
        from rag.workspace import Workspace

        settings = Settings(milvus_uri=str(db), openai_base_url=llm_url,
                            llm_model="gpt-oss-20b", llm_timeout=20.0, top_k=4,
                            database_url=f"sqlite:///{db.parent / 'app.db'}",
                            files_dir=str(db.parent / "files")).with_(**overrides)
        self.kb = KnowledgeBase(settings)
        self.kb.embedder = embedder  # share the session's loaded model
        self.workspace = Workspace(settings.database_url)
        self.demo = build_app(self.kb, self.workspace, auth_from(settings.rag_auth))
        port = port or free_port()
        self.port = port
        launch(self.demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port,
               quiet=True)
        self.url = f"http://127.0.0.1:{port}/"
        self.services = self.demo.rag_services

    def client(self, auth: tuple[str, str] | None = None) -> Client:
        """A new API client: a new session."""
        from gradio_client import Client

        return Client(self.url, verbose=False, auth=auth)

    def close(self) -> None:
        """Stop serving and release the database."""
        self.demo.close()
        self.kb.close()
        self.workspace.close()


def answer_pipeline(retriever: Retriever, server: FakeGptOss, *, provider: str = "",
                    context_tokens: int = 8192) -> AnswerPipeline:
    """The answering pipeline over `retriever`, answering from the loopback gpt-oss server
    (no retries, four sources, short answers)."""
    from rag.llm import LLMClient, LLMConfig
    from rag.pipeline import AnswerPipeline

    config = LLMConfig(base_url=server.base_url, api_key="k", model="gpt-oss-20b",
                       provider=provider, max_retries=0)
    return AnswerPipeline(retriever, LLMClient(config), top_k=4, context_tokens=context_tokens,
                          max_output_tokens=512)


# -- the browser tests ---------------------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium, driven by Playwright
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_skip() -> None:
    """Skip without Debian's chromium; in CI (where .ci/run installs it) fail instead."""
    import pytest

    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing; .ci/run must install Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
