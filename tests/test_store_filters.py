"""Document names of any Unicode, and leftover rows that must never lock the store.

Every name here goes through Milvus filters (ingest markers, document filters, deletes, the
pending-version lookup of each open and search) on real Milvus Lite, through the real `rag`
command, and once against a `milvus-lite server` over gRPC.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import rag.store.client as store_client
from rag.ingest import Ingestor
from rag.lexical import analyze
from rag.retrieval import Retriever
from rag.store import MilvusStore
from rag.store.schema import document_row
from tests.helpers import RagCommand, json_lines, open_store, rag_command

NAMES = [
    "résumé.md",
    "文档.md",
    "🙂 notes.md",
    'a"b\\c.md',
    "tab\there.md",
    "bell\x07.md",
    "it's {a} [b] }{ ][.md",
    "new\nline.md",
    "two \\\\ backslashes.md",
]

# Distinct made-up words, one per document, so a hit names the file it came from.
WORDS = ["zorblax", "quintrel", "fenwhistle", "gravimond", "tulverine", "ploskary",
         "wendraith", "marbleton", "crovanthe"]


def _write(folder: Path, names: list[str], edition: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, word in zip(names, WORDS, strict=False):
        (folder / name).write_text(
            f"# Notes on {word}\n\nThe {word} edition {edition} describes how a {word} "
            f"is kept in the archive. Every {word} has a label.\n", encoding="utf-8")


def _round_trip(store: MilvusStore, embedder, folder: Path) -> None:
    """Ingest, filter, search, list, replace and delete every name on one store."""
    names = NAMES
    _write(folder, names)
    ingestor = Ingestor(store, embedder, chunk_tokens=200, chunk_overlap=40, batch_size=4)
    first = {r.source: r for r in ingestor.ingest_paths([folder])}
    assert {n: first[n].status for n in names} == dict.fromkeys(names, "added")
    assert sorted(d.doc_id for d in store.list_documents()) == sorted(names)
    assert store.get_document(names[0]).source == names[0]
    assert set(store.get_documents(names)) == set(names)
    assert store._pending_versions() == []

    retriever = Retriever(store, embedder)
    for name, word in zip(names, WORDS, strict=False):
        assert store.count_chunks(name) == first[name].chunks > 0
        hits = retriever.search(f"what is a {word}?", 5, doc_ids=[name])
        assert hits and {h.doc_id for h in hits} == {name} and word in hits[0].text
        dense, bm25 = store.search_both(embedder.embed_query(word), analyze(word), 5, [name])
        assert {h.doc_id for h in dense + bm25} == {name} and word in bm25[0].text
    pair = names[3:5]
    hits = retriever.search("label in the archive", 20, doc_ids=pair)
    assert {h.doc_id for h in hits} == set(pair)

    _write(folder, names, edition=2)  # every file changed: each is replaced under its name
    second = {r.source: r for r in ingestor.ingest_paths([folder])}
    assert {n: second[n].status for n in names} == dict.fromkeys(names, "replaced")
    assert store.count_chunks() == sum(d.chunks for d in store.list_documents())
    texts = " ".join(h.text for h in retriever.search("edition", 50, mode="bm25"))
    assert "edition 2" in texts and "edition 1" not in texts

    for name in names:
        assert store.delete_document(name).doc_id == name
        assert store.get_document(name) is None and store.count_chunks(name) == 0
    assert store.list_documents() == [] and store.count_chunks() == 0
    assert store._pending_versions() == []


def test_any_unicode_name_round_trips_on_lite(tmp_path: Path, embedder):
    store = open_store(tmp_path / "kb.db", embedder)
    try:
        _round_trip(store, embedder, tmp_path / "docs")
    finally:
        store.close()


def test_any_unicode_name_round_trips_on_a_milvus_lite_server(milvus_server: str,
                                                              embedder, tmp_path: Path):
    store = open_store(milvus_server, embedder)
    try:
        assert not store.is_lite
        _round_trip(store, embedder, tmp_path / "docs")
    finally:
        store.close()


def test_listing_pages_past_one_query_window(tmp_path: Path, embedder, monkeypatch):
    """More documents than one query returns: paged by name, names with quotes included."""
    store = open_store(tmp_path / "kb.db", embedder)
    try:
        _write(tmp_path / "docs", NAMES)
        Ingestor(store, embedder).ingest_paths([tmp_path / "docs"])
        monkeypatch.setattr(store_client, "QUERY_WINDOW", 2)
        listed = [d.doc_id for d in store.list_documents()]
        assert listed == sorted(NAMES)
    finally:
        store.close()


# -- leftovers ---------------------------------------------------------------------------------
def test_leftover_marker_of_a_weird_name_does_not_stop_the_store(tmp_path: Path, embedder):
    """An ingest that died mid-change: marker and chunks written, never committed."""
    db = tmp_path / "kb.db"
    store = open_store(db, embedder)
    (tmp_path / "plain.md").write_text("# Plain\n\nA document with a plain name.\n")
    Ingestor(store, embedder).ingest_paths([tmp_path / "plain.md"])
    plain = store.count_chunks()
    weird = NAMES
    _write(tmp_path / "weird", weird)
    ingestor = Ingestor(store, embedder)
    store.commit_versions = lambda commits: None  # die before the switch: nothing committed
    ingestor.ingest_paths([tmp_path / "weird"])
    assert len(store._pending_versions()) == len(weird)
    assert store.count_chunks() == plain  # the half-written versions are hidden
    store.close()

    store = open_store(db, embedder)  # rolls every leftover back
    try:
        assert store._pending_versions() == []
        assert [d.doc_id for d in store.list_documents()] == ["plain.md"]
        assert store.count_chunks() == plain
        results = Ingestor(store, embedder).ingest_paths([tmp_path / "weird"])
        assert {r.status for r in results} == {"added"}
        assert len(store.list_documents()) == len(NAMES) + 1
    finally:
        store.close()


def test_two_stores_on_one_lite_file_hide_the_same_versions(tmp_path: Path, embedder):
    """The pending versions cached for searches are shared by the stores on one Lite file."""
    first, second = (open_store(tmp_path / "kb.db", embedder) for _ in range(2))
    try:
        query = (embedder.embed_query(WORDS[0]), analyze(WORDS[0]), 5)
        assert first.search_both(*query) == ([], [])  # caches "nothing pending"
        _write(tmp_path / "docs", NAMES[:2])
        second.commit_versions = lambda commits: None  # stop before the switch
        Ingestor(second, embedder).ingest_paths([tmp_path / "docs"])
        assert first.search_both(*query) == ([], []) and first.count_chunks() == 0
        assert len(first._pending_versions()) == 2
    finally:
        second.close()
        first.close()


def _damaged_leftovers(db: Path, embedder, folder: Path) -> tuple[str, str, int]:
    """A store with a committed document whose marker cannot be rolled forward, and a marker
    (no phase) of a document never committed; returns both names and the healthy chunks."""
    store = open_store(db, embedder)
    stuck, orphan = "résumé \"v2\".md", "文档\x07 draft.md"
    _write(folder, [stuck, "plain.md"])
    Ingestor(store, embedder).ingest_paths([folder])
    healthy = store.count_chunks("plain.md")
    info = store.get_document(stuck)
    store._upsert_rows([  # the store's own row builders, with parts missing
        store._marker_row(stuck, hidden=info.meta["version"], phase="switching", source=stuck,
                          extra={"version": "f" * 32, "info": {"doc_id": stuck}}),
        document_row(f"pending:{orphan}", state="pending", version="e" * 32, sha256="",
                     source=orphan, kind="", pages=None, chunks=0, meta={}),
    ])
    store.close()
    return stuck, orphan, healthy


def test_a_leftover_that_cannot_be_finished_is_logged_and_removable(tmp_path: Path, embedder,
                                                                    caplog):
    db = tmp_path / "kb.db"
    stuck, orphan, healthy = _damaged_leftovers(db, embedder, tmp_path / "docs")
    with caplog.at_level(logging.WARNING, logger="rag.store"):
        store = open_store(db, embedder)
    try:
        warned = " ".join(r.getMessage() for r in caplog.records)
        assert repr(stuck) in warned and repr(orphan) in warned
        assert sorted(d.doc_id for d in store.list_documents()) == sorted(["plain.md", stuck])
        assert store.count_chunks() == healthy  # the stuck document's version stays hidden
        assert store.delete_document(orphan).doc_id == orphan
        assert store.delete_document(stuck).doc_id == stuck
        assert store._pending_versions() == []
        assert [d.doc_id for d in store.list_documents()] == ["plain.md"]
    finally:
        store.close()
    store = open_store(db, embedder)  # opens clean now
    store.close()


# -- the `rag` command -------------------------------------------------------------------------
@pytest.fixture
def rag(tmp_path: Path) -> RagCommand:
    """`rag` on tmp_path/kb.db with no LLM."""
    return rag_command(tmp_path)


def test_rag_command_with_any_unicode_name(rag, tmp_path: Path):
    folder = tmp_path / "docs"
    _write(folder, NAMES)
    added = json_lines(rag("ingest", "--json", str(folder)).stdout)
    assert sorted(r["source"] for r in added) == sorted(NAMES)
    assert {r["status"] for r in added} == {"added"}
    assert sorted(d["source"] for d in json_lines(rag("docs", "--json").stdout)) == sorted(NAMES)

    doc_args = [arg for name in NAMES for arg in ("--doc", name)]
    found = json_lines(rag("search", "--json", "-k", "3", *doc_args, *WORDS).stdout)
    for query, name in zip(found, NAMES, strict=True):
        assert query["hits"] and query["hits"][0]["source"] == name
    only = json_lines(rag("search", "--json", "--doc", NAMES[3], WORDS[3], WORDS[0]).stdout)
    assert {h["source"] for q in only for h in q["hits"]} == {NAMES[3]}

    _write(folder, NAMES, edition=2)
    replaced = json_lines(rag("ingest", "--json", str(folder)).stdout)
    assert {r["status"] for r in replaced} == {"replaced"}

    removed = rag("rm", *NAMES).stdout
    assert removed.count("deleted ") == len(NAMES)
    assert json_lines(rag("docs", "--json").stdout) == []


def test_rag_command_opens_past_a_leftover_it_cannot_finish(rag, tmp_path: Path, embedder):
    stuck, orphan, _ = _damaged_leftovers(tmp_path / "kb.db", embedder, tmp_path / "docs")
    listed = rag("docs", "--json")
    assert sorted(d["source"] for d in json_lines(listed.stdout)) == sorted(["plain.md", stuck])
    assert repr(stuck) in listed.stderr and repr(orphan) in listed.stderr  # the warnings
    assert rag("search", "--json", "label").stdout
    removed = rag("rm", orphan, stuck)
    assert removed.stdout.count("deleted ") == 2
    after = rag("docs", "--json")
    assert [d["source"] for d in json_lines(after.stdout)] == ["plain.md"]
    assert "Could not finish" not in after.stderr
