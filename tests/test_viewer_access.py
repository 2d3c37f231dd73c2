"""The passage viewer's handler with logins: the page and the original file only for an
account allowed to read that knowledge base; others get the reason, and nothing of the file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from rag.choices import Role
from rag.embedding import LocalEmbedder
from rag.ui.chat import ChatSession
from rag.ui.viewer import Viewer, ViewerWidgets, build_viewer
from rag.workspace import Workspace
from tests.helpers import CLOUD_PDF, RunningApp
from tests.llm_server import FakeGptOss

READER = ("vera", "vera's password")
OUTSIDER = ("oskar", "oskar's password")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder):
    folder = tmp_path_factory.mktemp("viewer-access")
    workspace = Workspace(f"sqlite:///{folder / 'app.db'}")
    workspace.accounts.add(*READER, Role.VIEWER)
    workspace.accounts.add(*OUTSIDER, Role.VIEWER, kb="another knowledge base")
    workspace.close()
    with FakeGptOss() as llm:
        running = RunningApp(folder / "kb.db", llm.base_url, embedder)
        running.kb.ingestor.ingest_paths([CLOUD_PDF])
        yield running
        running.close()


def _viewer(app: RunningApp) -> tuple[Viewer, ViewerWidgets]:
    with gr.Blocks():
        widgets = build_viewer()
    return Viewer(app.services, widgets), widgets


def test_only_readers_of_the_knowledge_base_see_the_page_and_the_file(app: RunningApp) -> None:
    viewer, w = _viewer(app)
    chunk = app.kb.store.document_chunks(CLOUD_PDF.name)[3]
    request = f"\t{chunk.chunk_id}\t1"
    refused = viewer.open(request, ChatSession(), SimpleNamespace(username=OUTSIDER[0]))
    assert "not a member" in str(refused[w.body])
    assert CLOUD_PDF.name not in str(refused[w.title]) and w.state not in refused
    assert refused[w.download].visible is False

    shown = viewer.open(request, ChatSession(), SimpleNamespace(username=READER[0]))
    assert CLOUD_PDF.name in str(shown[w.title])
    assert "<img src='data:image/png;base64," in str(shown[w.body])
    assert "class='rag-hl'" in str(shown[w.body])
    download = shown[w.download]
    assert download.visible is True
    value = download.value
    kept = Path(value["path"] if isinstance(value, dict) else value)
    assert kept.name == CLOUD_PDF.name
    assert kept.read_bytes() == CLOUD_PDF.read_bytes()
