"""Ingest runs at once (several people's uploads): the encoder in turns, one run per document
name, the reader thread's failures, with the real encoder and Milvus Lite."""

from __future__ import annotations

import shutil
import threading
from functools import partial
from pathlib import Path

import pytest

from rag.ingest import Ingestor, Progress
from rag.loading import find_files, load
from rag.store import MilvusStore
from tests.helpers import MILVUS_DOCS


def _whole(store: MilvusStore) -> None:
    """Every listed document has all its chunks, and only listed documents have chunks."""
    docs = store.list_documents()
    for d in docs:
        assert store.count_chunks(d.source) == d.chunks > 0, d.source
    assert store.count_chunks() == sum(d.chunks for d in docs)


def test_a_small_upload_is_not_held_back_by_a_big_one(store: MilvusStore, embedder,
                                                      tmp_path: Path) -> None:
    """Run A (40 files) holds the encoder group by group; run B (one file), started once A has
    stored a group, gets the next turn, finishes while A is far from done, and is told its
    place while it waits."""
    big = tmp_path / "big"
    shutil.copytree(MILVUS_DOCS / "reference", big)
    files_a = find_files([big]).files[:40]
    small = tmp_path / "small" / "note.md"
    small.parent.mkdir()
    small.write_text("# Team note\n\nThe staging cluster restarts every Sunday at 03:00 UTC.\n",
                     encoding="utf-8")
    ingestor = Ingestor(store, embedder, batch_size=16)
    a_stored = threading.Event()
    a_files_done: list[int] = []
    b_waits: list[int] = []

    def progress_a(p: Progress) -> None:
        a_files_done.append(p.files_done)
        if p.chunks:
            a_stored.set()

    def progress_b(p: Progress) -> None:
        if p.stage == "waiting":
            b_waits.append(p.ahead)
            assert "waiting for its turn, 1 other upload first" in p.describe()

    results: dict[str, list] = {}
    run_a = threading.Thread(target=lambda: results.update(
        a=ingestor.ingest_files(files_a, progress_a)))
    run_a.start()
    assert a_stored.wait(120), "run A stored nothing"
    results["b"] = ingestor.ingest_files(find_files([small]).files, progress_b)
    a_done_when_b_finished = a_files_done[-1]
    assert run_a.is_alive(), "run A finished before the one-file run B"
    run_a.join(300)
    assert [r.status for r in results["b"]] == ["added"]
    assert b_waits and b_waits[0] == 1  # B waited behind A's group, and was told so
    assert a_done_when_b_finished < len(files_a) // 2
    assert [r.status for r in results["a"]] == ["added"] * len(files_a)
    assert len(store.list_documents()) == len(files_a) + 1
    _whole(store)


def test_a_name_another_run_is_adding_is_skipped_saying_so(store: MilvusStore, embedder,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text("# Plan\n\nShip the release on Friday.\n", encoding="utf-8")
    other = tmp_path / "plan-v2.md"
    other.write_text("# Plan\n\nShip the release on Monday instead.\n", encoding="utf-8")
    ingestor = Ingestor(store, embedder)
    loading, release = threading.Event(), threading.Event()

    def slow_load():
        loading.set()
        assert release.wait(60)
        return load(path, "plan.md")

    first: list = []
    run_a = threading.Thread(target=lambda: first.extend(
        ingestor.ingest_documents([("plan.md", slow_load)])))
    run_a.start()
    assert loading.wait(60)
    second = ingestor.ingest_documents([("plan.md", partial(load, other, "plan.md"))])
    release.set()
    run_a.join(120)
    assert second[0].status == "skipped"
    assert "another upload is adding a document of this name" in second[0].reason
    assert first[0].status == "added"
    # the name is free again: the second version now replaces the first
    again = ingestor.ingest_documents([("plan.md", partial(load, other, "plan.md"))])
    assert again[0].status == "replaced"
    _whole(store)


def test_an_unexpected_reader_failure_is_raised_and_stores_nothing_half(
        store: MilvusStore, embedder, tmp_path: Path) -> None:
    good = tmp_path / "good.md"
    good.write_text("# Good\n\nThis file is fine.\n", encoding="utf-8")

    def broken():
        raise RuntimeError("the loader itself broke")

    ingestor = Ingestor(store, embedder)
    with pytest.raises(RuntimeError, match="the loader itself broke"):
        ingestor.ingest_documents([("good.md", partial(load, good, "good.md")),
                                   ("broken.md", broken)])
    _whole(store)
    assert store.list_documents() == []  # good.md's chunks were not yet written: nothing left
    done = ingestor.ingest_documents([("good.md", partial(load, good, "good.md"))])
    assert done[0].status == "added"  # its name was given back
    _whole(store)

