"""Several knowledge bases in one Milvus Lite file: each searches only its own documents,
closing one leaves the others open, renaming keeps conversations, deleting drops the
collections; the API takes a `kb` argument."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.embedding import LocalEmbedder
from rag.errors import ConfigError
from rag.kb import KnowledgeBase
from rag.kb_set import KnowledgeBaseSet
from rag.settings import Settings
from rag.workspace import Workspace
from tests.helpers import RunningApp
from tests.llm_server import FakeGptOss


def _doc(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def kbs(tmp_path: Path, embedder: LocalEmbedder):
    settings = Settings(milvus_uri=str(tmp_path / "kb.db"),
                        database_url=f"sqlite:///{tmp_path / 'app.db'}")
    workspace = Workspace(settings.database_url)
    default = KnowledgeBase(settings)
    default.embedder = embedder
    found = KnowledgeBaseSet(settings, workspace.knowledge_bases(
        settings.milvus_collection, settings.embedding_model), default=default)
    yield found, workspace
    found.close()
    workspace.close()


def test_each_knowledge_base_searches_its_own_documents(kbs, tmp_path: Path) -> None:
    found, _ = kbs
    assert [kb.name for kb in found.list()] == ["knowledge_base"]
    team = found.create("Team notes · 2026")
    assert team.collection.startswith("kb_") and team.embedding_model == "all-MiniLM-L6-v2"
    found.open(None).ingestor.ingest_paths([_doc(tmp_path, "okapi.md",
                                                 "# Okapi\n\nThe okapi eats leaves.\n")])
    found.open(team.name).ingestor.ingest_paths([_doc(tmp_path, "zebra.md",
                                                      "# Zebra\n\nZebras sleep standing.\n")])
    assert found.open(team.name).embedder is found.open(None).embedder  # one model loaded
    hits = found.open(team.name).retriever.search("what do zebras do at night", 5)
    assert {h.source for h in hits} == {"zebra.md"}
    assert {h.source for h in found.open(None).retriever.search("okapi food", 5)} == {
        "okapi.md"}
    with pytest.raises(ConfigError, match="already exists"):
        found.create("Team notes · 2026")
    with pytest.raises(ConfigError, match="No knowledge base is named 'nope'"):
        found.open("nope")


def test_rename_keeps_conversations_and_remove_drops_collections(kbs, tmp_path: Path) -> None:
    found, workspace = kbs
    team = found.create("Team")
    found.open("Team").ingestor.ingest_paths([_doc(tmp_path, "a.md", "# A\n\nAlpha text.\n")])
    conv = workspace.conversations.create("browser:b", "Team")
    renamed = found.rename("Team", "Squad")
    assert renamed.collection == team.collection
    assert workspace.conversations.get("browser:b", conv.id).kb == "Squad"
    assert [d.source for d in found.open("Squad").store.list_documents()] == ["a.md"]
    client = found.open(None).store._client  # the Lite server the knowledge bases share
    found.remove("Squad")
    assert not client.has_collection(f"{team.collection}_chunks")  # dropped, server still up
    assert found.open(None).store.count_chunks() == 0
    with pytest.raises(ConfigError, match="No such conversation"):
        workspace.conversations.get("browser:b", conv.id)
    with pytest.raises(ConfigError, match="cannot be deleted"):
        found.remove("knowledge_base")


def test_the_api_takes_a_knowledge_base(tmp_path: Path, embedder: LocalEmbedder) -> None:
    from gradio_client import handle_file

    with FakeGptOss() as llm:
        running = RunningApp(tmp_path / "kb.db", llm.base_url, embedder)
        try:
            running.services.kbs.create("Team")
            client = running.client()
            note = _doc(tmp_path, "zebra.md", "# Zebra\n\nZebras sleep standing up.\n")
            [added] = client.predict([handle_file(str(note))], "Team", api_name="/ingest")
            assert added["status"] == "added"
            hits = client.predict("zebra sleep", 3, "hybrid", [], "Team", api_name="/search")
            assert [h["source"] for h in hits] == ["zebra.md"]
            assert client.predict("zebra sleep", 3, "hybrid", [], "", api_name="/search") == []
            with pytest.raises(Exception, match="No knowledge base is named 'Other'"):
                client.predict("zebra", 3, "hybrid", [], "Other", api_name="/search")
        finally:
            running.close()
