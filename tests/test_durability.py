"""A killed ingest leaves no mix; a locked Lite file is a clear error; the server URI works."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag.errors import StoreError
from rag.ingest import Ingestor
from rag.retrieval import Retriever
from tests.helpers import PDFS, ROOT, UNREACHABLE_LLM, free_port, open_store

SMALL = PDFS / "nist-sp800-145-cloud-definition-7p.pdf"
BIG = PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf"

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from rag.embedding import LocalEmbedder
    from rag.ingest import Ingestor
    from rag.store import MilvusStore

    db, path, stage = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    emb = LocalEmbedder()
    store = MilvusStore(db, embedding_model=emb.name, dimension=emb.dimension)
    if stage == "switch":
        # Die right after the commit point, before the old chunks are deleted.
        def die(*args, **kwargs):
            sys.stdout.write("switched\\n"); sys.stdout.flush()
            import os, time; time.sleep(60)
        store._finish_switch = die
    def report(p):
        sys.stdout.write(f"{p.stage} {p.chunks}\\n"); sys.stdout.flush()
    Ingestor(store, emb, batch_size=8).ingest_paths([path], progress=report)
""")


def _run_child_until(db: Path, doc: Path, stage: str, wanted: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(doc), stage],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(wanted):
                break
        else:
            pytest.fail(f"child ended before {wanted!r}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)


@pytest.mark.parametrize("stage,wanted", [("write", "storing 16"), ("switch", "switched")])
def test_kill_during_replace_leaves_old_or_new_never_a_mix(tmp_path: Path, embedder, stage,
                                                           wanted):
    doc = tmp_path / "manual.pdf"
    shutil.copy(SMALL, doc)
    store = open_store(tmp_path / "kb.db", embedder)
    [first] = Ingestor(store, embedder).ingest_paths([doc])
    old = store.get_document("manual.pdf")
    store.close()
    assert first.status == "added" and old is not None

    shutil.copy(BIG, doc)  # a changed file under the same name
    _run_child_until(tmp_path / "kb.db", doc, stage, wanted)

    store = open_store(tmp_path / "kb.db", embedder)
    try:
        info = store.get_document("manual.pdf")
        assert info is not None
        retriever = Retriever(store, embedder)
        hits = retriever.search("cloud computing media sanitization", 50, mode="bm25")
        pages = {h.page for h in hits}
        if stage == "write":  # died while writing: the old version, whole
            assert info.sha256 == old.sha256
            assert store.count_chunks() == store.count_chunks("manual.pdf") == old.chunks
            assert max(pages) <= 7
        else:  # died after the switch: the new version, whole
            assert info.pages == 64
            assert store.count_chunks() == store.count_chunks("manual.pdf") == info.chunks
            assert max(pages) > 7
        [again] = Ingestor(store, embedder).ingest_paths([doc])
        assert again.status == ("replaced" if stage == "write" else "skipped")
        final = store.get_document("manual.pdf")
        assert final is not None and final.pages == 64
        assert store.count_chunks() == final.chunks
    finally:
        store.close()


def test_locked_lite_file_is_a_clear_error(tmp_path: Path, embedder):
    db = tmp_path / "kb.db"
    holder = open_store(db, embedder)
    try:
        code = ("from rag.store import MilvusStore\n"
                f"MilvusStore({str(db)!r}, embedding_model='x', dimension=3)\n")
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode != 0
        assert time.monotonic() - started < 60  # an error, not a hang
        assert "one process at a time" in result.stderr
        assert "milvus-lite server" in result.stderr
    finally:
        holder.close()


HOLDER = textwrap.dedent("""
    import sys, time
    from rag.store import MilvusStore
    store = MilvusStore(sys.argv[1], embedding_model="x", dimension=3)
    sys.stdout.write("holding\\n"); sys.stdout.flush()
    time.sleep(600)
""")


def test_rag_docs_on_a_locked_lite_file_prints_only_the_clear_message(tmp_path: Path):
    """Milvus Lite logs its lock failure with a traceback; the user sees our message alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MILVUS_URI": "./data/milvus.db",
           "OPENAI_BASE_URL": UNREACHABLE_LLM, "LLM_MODEL": "gpt-oss-20b"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "./data/milvus.db"],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        result = subprocess.run([sys.executable, "-m", "rag", "docs"], capture_output=True,
                                text=True, timeout=120, env=env, cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())  # rich wraps the message at 80 columns
    assert message.startswith("error: Cannot open the Milvus Lite database ./data/milvus.db")
    assert "another process holds its lock" in message and "one process at a time" in message
    assert "Traceback" not in result.stderr and "DataDirLockedError" not in result.stderr
    assert len(result.stderr.splitlines()) <= 6


def test_same_code_speaks_to_a_milvus_server(milvus_server: str, embedder):
    store = open_store(milvus_server, embedder)
    try:
        assert not store.is_lite
        [result] = Ingestor(store, embedder).ingest_paths([SMALL])
        assert result.status == "added"
        hits = Retriever(store, embedder).search("resource pooling", 3)
        assert hits and hits[0].source == SMALL.name
        assert store.count_chunks() == result.chunks
    finally:
        store.close()


def test_one_read_of_the_pending_markers_per_search(milvus_server: str, embedder,
                                                    tmp_path: Path):
    """On a server (no cache) each search reads the markers once, and sees a version that
    another store (another process's ingest) begins after this one opened."""
    store, other = (open_store(milvus_server, embedder) for _ in range(2))
    try:
        [result] = Ingestor(store, embedder).ingest_paths([SMALL])
        reads = []
        read = store._read_pending_versions
        store._read_pending_versions = lambda: reads.append(1) or read()
        retriever = Retriever(store, embedder, candidates=10)
        for mode in ("hybrid", "dense", "bm25"):
            before = len(reads)
            assert retriever.search("resource pooling", 3, mode=mode)
            assert len(reads) - before == 1, mode

        other.commit_versions = lambda commits: None  # stop before the switch: a live ingest
        (tmp_path / "media.md").write_text("# Media sanitization\n\nMedia sanitization "
                                           "erases the data on a disk before reuse.\n")
        [again] = Ingestor(other, embedder).ingest_paths([tmp_path / "media.md"])
        assert again.status == "added" and store.count_chunks() == result.chunks
        hits = retriever.search("media sanitization", 20)
        assert hits and {h.source for h in hits} == {SMALL.name}
        assert len(store._pending_versions()) == 1
    finally:
        other.close()
        store.close()


def test_unreachable_server_is_a_clear_error(embedder):
    with pytest.raises(StoreError, match="MILVUS_URI"):
        open_store(f"http://127.0.0.1:{free_port()}", embedder)
