"""Chunk texts are stored whole or refused with the document's name, never cut (real Lite)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from rag.errors import StoreError
from rag.ingest import Ingestor, embedding_text
from rag.lexical import analyze
from rag.schema import Chunk, DocumentInfo
from rag.store import MAX_TEXT, ChunkTooLongError, MilvusStore


def _chunk(doc_id: str, text: str) -> Chunk:
    return Chunk(id=uuid.uuid4().hex, doc_id=doc_id, source=doc_id, text=text, position=0)


def _write(store: MilvusStore, embedder, chunks: list[Chunk]) -> list[str]:
    """Begin a version per document and insert the chunks; returns the versions."""
    versions = {c.doc_id: uuid.uuid4().hex for c in chunks}
    store.begin_versions([(doc, version, doc) for doc, version in versions.items()])
    texts = [embedding_text(c) for c in chunks]
    store.insert_chunks(chunks, embedder.embed(texts), [analyze(t) for t in texts],
                        [versions[c.doc_id] for c in chunks])
    return list(versions.values())


def test_a_too_long_chunk_text_raises_naming_the_document(store: MilvusStore, embedder):
    blob = "Some words first. " + "é" * 40_000  # 40,018 characters, 80,018 bytes of UTF-8
    assert len(blob) < MAX_TEXT < len(blob.encode("utf-8"))
    chunks = [_chunk("fine.md", "A short chunk about zorblax."), _chunk("blob.md", blob)]
    with pytest.raises(ChunkTooLongError, match=r"blob\.md: chunk 0 has a text of 80,018 bytes") \
            as raised:
        _write(store, embedder, chunks)
    assert isinstance(raised.value, StoreError) and raised.value.doc_ids == ("blob.md",)
    assert "fine.md" not in str(raised.value)
    assert store._count('id != ""') == 0  # nothing of the batch was written, hidden or not
    for doc in ("fine.md", "blob.md"):
        store.delete_document(doc)  # the begun versions' markers go too
    assert store._pending_versions() == []


def test_a_run_without_spaces_is_split_into_chunks_and_stored_whole(tmp_path: Path,
                                                                    store: MilvusStore, embedder):
    doc = tmp_path / "blob.md"
    doc.write_text("# Blob\n\nSome words first.\n\n" + "é" * 40_000 + "\n", encoding="utf-8")
    [result] = Ingestor(store, embedder).ingest_paths([doc])
    assert result.status == "added" and result.chunks > 1
    hits = store.search_bm25(analyze("some words first"), 50, ["blob.md"])
    assert hits and all(len(h.text.encode("utf-8")) <= MAX_TEXT for h in hits)


def test_an_ingest_of_a_heading_too_long_to_store_fails_with_the_reason(tmp_path: Path,
                                                                       store: MilvusStore,
                                                                       embedder):
    doc = tmp_path / "blob.md"
    doc.write_text("# " + "Heading " * 400 + "\n\nSome words under it.\n", encoding="utf-8")
    [result] = Ingestor(store, embedder).ingest_paths([doc])
    assert result.status == "failed"
    assert "blob.md" in result.reason and "2,048" in result.reason
    assert store.list_documents() == [] and store._count('id != ""') == 0
    assert store._pending_versions() == []


def test_a_too_long_passage_fails_its_document_alone_in_a_shared_batch(tmp_path: Path,
                                                                      store: MilvusStore,
                                                                      embedder):
    """The other files of the same embedding group are stored as if it were not there (a
    heading over the field's 2,048 bytes: text is split into chunks that fit, a heading is not)."""
    (tmp_path / "blob.md").write_text("# " + "Heading " * 400 + "\n\nSome words under it.\n",
                                      encoding="utf-8")
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text(f"# {name}\n\nPlain words about {name} and nothing else.\n")
    results = {r.source: r for r in Ingestor(store, embedder).ingest_paths([tmp_path])}
    assert results["blob.md"].status == "failed" and "2,048" in results["blob.md"].reason
    assert results["a.md"].status == results["b.md"].status == "added"
    assert [d.doc_id for d in store.list_documents()] == ["a.md", "b.md"]
    assert store.count_chunks() == 2 and store._pending_versions() == []


def test_a_long_text_that_fits_is_stored_whole(store: MilvusStore, embedder):
    """60,000 bytes of text, also of two-byte characters: the old store kept 16,383 characters."""
    texts = {"words.md": "zorblax " + "archive label " * 4285,
             "accents.md": "quintrel " + "é" * 29_990}
    chunks = [_chunk(doc, text) for doc, text in texts.items()]
    assert all(len(t) > 16_383 and len(t.encode("utf-8")) <= MAX_TEXT for t in texts.values())
    versions = _write(store, embedder, chunks)
    store.commit_versions([
        (DocumentInfo(doc_id=c.doc_id, source=c.source, sha256=uuid.uuid4().hex, kind="md",
                      pages=None, chunks=1, added_at=time.time()), version)
        for c, version in zip(chunks, versions, strict=True)])
    for doc, text in texts.items():
        [hit] = store.search_bm25(analyze(text.split()[0]), 5, [doc])
        assert hit.text == text
