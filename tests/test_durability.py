"""A killed ingest leaves no mix; a locked Lite file is a clear error; the server URI works."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag.errors import StoreError
from rag.ingest import Ingestor
from rag.retrieval import Retriever
from rag.store import MilvusStore
from tests.conftest import PDFS, ROOT

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


def _open(db: Path, embedder) -> MilvusStore:
    return MilvusStore(str(db), embedding_model=embedder.name, dimension=embedder.dimension)


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
    store = _open(tmp_path / "kb.db", embedder)
    [first] = Ingestor(store, embedder).ingest_paths([doc])
    old = store.get_document("manual.pdf")
    store.close()
    assert first.status == "added" and old is not None

    shutil.copy(BIG, doc)  # a changed file under the same name
    _run_child_until(tmp_path / "kb.db", doc, stage, wanted)

    store = _open(tmp_path / "kb.db", embedder)
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
    holder = _open(db, embedder)
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def milvus_server(tmp_path: Path):
    """A real Milvus Lite gRPC server on loopback."""
    port = _free_port()
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


def test_same_code_speaks_to_a_milvus_server(milvus_server: str, embedder):
    store = MilvusStore(milvus_server, embedding_model=embedder.name,
                        dimension=embedder.dimension)
    try:
        assert not store.is_lite
        [result] = Ingestor(store, embedder).ingest_paths([SMALL])
        assert result.status == "added"
        hits = Retriever(store, embedder).search("resource pooling", 3)
        assert hits and hits[0].source == SMALL.name
        assert store.count_chunks() == result.chunks
    finally:
        store.close()


def test_unreachable_server_is_a_clear_error(embedder):
    with pytest.raises(StoreError, match="MILVUS_URI"):
        MilvusStore(f"http://127.0.0.1:{_free_port()}", embedding_model=embedder.name,
                    dimension=embedder.dimension)
