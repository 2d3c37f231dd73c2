"""Ingest, re-ingest, delete, filter and search against real Milvus Lite and real files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from rag.errors import DocumentNotFoundError, ModelMismatchError
from rag.ingest import Ingestor, Progress
from rag.retrieval import Retriever
from rag.store import MilvusStore
from tests.helpers import MILVUS_DOCS, PDFS

GOOD_PDFS = sorted(p.name for p in PDFS.glob("*.pdf") if not p.name.startswith("edge-"))


def _page_with(pdf: Path, phrase: str) -> int:
    for number, page in enumerate(PdfReader(pdf).pages, start=1):
        if phrase.lower() in " ".join((page.extract_text() or "").split()).lower():
            return number
    raise AssertionError(f"{phrase!r} not in {pdf.name}")


def test_pdf_folder_ingests_good_files_and_fails_broken_ones_alone(ingestor: Ingestor,
                                                                    store: MilvusStore):
    results = {r.source: r for r in ingestor.ingest_paths([PDFS])}
    assert results.pop("SOURCES.md").status == "added"  # the folder's Markdown file
    assert sorted(s for s, r in results.items() if r.status == "added") == GOOD_PDFS
    encrypted = results["edge-encrypted-aes256-nist-sp800-145.pdf"]
    truncated = results["edge-truncated-nist-sp800-145.pdf"]
    assert encrypted.status == "failed" and "encrypted" in encrypted.reason.lower()
    assert truncated.status == "failed" and truncated.reason
    listed = {d.source: d for d in store.list_documents() if d.kind == "pdf"}
    assert sorted(listed) == GOOD_PDFS
    for name in GOOD_PDFS:
        assert listed[name].pages == len(PdfReader(PDFS / name).pages)
        assert listed[name].chunks == results[name].chunks == store.count_chunks(name)
    assert store.count_chunks("edge-encrypted-aes256-nist-sp800-145.pdf") == 0
    assert store.count_chunks() == sum(d.chunks for d in store.list_documents())


def test_hits_carry_page_numbers_and_scores(ingestor: Ingestor, retriever: Retriever):
    pdf = PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf"
    ingestor.ingest_paths([pdf])
    phrase = "cryptographic erase"
    expected_pages = {n for n, page in enumerate(PdfReader(pdf).pages, start=1)
                      if phrase in " ".join((page.extract_text() or "").split()).lower()}
    hits = retriever.search("What is cryptographic erase (CE)?", k=5)
    assert hits, "no hits"
    assert all(h.source == pdf.name and h.page is not None for h in hits)
    top = hits[0]
    assert top.page in expected_pages or (
        top.page_end is not None and expected_pages & set(range(top.page, top.page_end + 1)))
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert hits == sorted(hits, key=lambda h: h.score, reverse=True)
    assert any(h.dense_score is not None and 0 < h.dense_score <= 1 for h in hits)
    assert any(h.bm25_score is not None and h.bm25_score > 0 for h in hits)


def test_single_retriever_modes(ingestor: Ingestor, retriever: Retriever):
    ingestor.ingest_paths([PDFS / "nist-sp800-145-cloud-definition-7p.pdf"])
    dense = retriever.search("essential characteristics of cloud computing", 3, mode="dense")
    bm25 = retriever.search("essential characteristics of cloud computing", 3, mode="bm25")
    assert dense and all(h.dense_score is not None and h.bm25_score is None for h in dense)
    assert bm25 and all(h.bm25_score is not None and h.dense_score is None for h in bm25)
    page = _page_with(PDFS / "nist-sp800-145-cloud-definition-7p.pdf", "On-demand self-service")
    assert page in {h.page for h in bm25}


def test_markdown_heading_paths(ingestor: Ingestor, retriever: Retriever):
    ingestor.ingest_paths([MILVUS_DOCS / "faq"])
    hits = retriever.search("how come etcd holds no vectors?", k=3)
    assert hits[0].source == "product_faq.md"
    # The answer is one short line, so its section joins the one before it; its question stays
    # in the text as a heading line, and the chunk keeps a heading path.
    assert "Why is there no vector data in etcd?" in hits[0].text.split("\n")
    assert " > " in hits[0].heading  # the page title, then the question


def test_reingest_skips_unchanged_and_replaces_changed(tmp_path: Path, ingestor: Ingestor,
                                                       store: MilvusStore, retriever: Retriever):
    note = tmp_path / "notes.md"
    note.write_text("# Keys\n\nRotate the signing keys every ninety days with keyctl.\n")
    assert [r.status for r in ingestor.ingest_paths([note])] == ["added"]
    assert [r.status for r in ingestor.ingest_paths([note])] == ["skipped"]
    note.write_text("# Keys\n\nRotate the signing keys every thirty days with vaultctl.\n"
                    "\n## Audit\n\nAudit logs are kept for a year.\n")
    [result] = ingestor.ingest_paths([note])
    assert result.status == "replaced"
    assert [d.source for d in store.list_documents()] == ["notes.md"]
    assert store.count_chunks("notes.md") == result.chunks == 1  # two one-line sections join
    texts = " ".join(h.text for h in retriever.search("how often rotate keys", k=10))
    assert "thirty" in texts and "ninety" not in texts


def test_same_content_under_another_name_is_skipped(tmp_path: Path, ingestor: Ingestor,
                                                    store: MilvusStore):
    original = PDFS / "pysample-libreoffice-1page.pdf"
    copy = tmp_path / "copy-of-sample.pdf"
    shutil.copy(original, copy)
    first, second = ingestor.ingest_paths([original, copy])
    assert first.status == "added"
    assert second.status == "skipped" and original.name in second.reason
    assert [d.source for d in store.list_documents()] == [original.name]


def test_delete_and_filter(ingestor: Ingestor, store: MilvusStore, retriever: Retriever):
    ingestor.ingest_paths([PDFS / "nist-sp800-145-cloud-definition-7p.pdf",
                           PDFS / "acl2016-sennrich-subword-nmt-2col.pdf"])
    only = retriever.search("cloud computing definition", k=5,
                            doc_ids=["acl2016-sennrich-subword-nmt-2col.pdf"])
    assert only and {h.source for h in only} == {"acl2016-sennrich-subword-nmt-2col.pdf"}
    info = store.delete_document("nist-sp800-145-cloud-definition-7p.pdf")
    assert info.chunks > 0
    assert [d.source for d in store.list_documents()] == ["acl2016-sennrich-subword-nmt-2col.pdf"]
    assert store.count_chunks("nist-sp800-145-cloud-definition-7p.pdf") == 0
    hits = retriever.search("cloud computing definition", k=10)
    assert "nist-sp800-145-cloud-definition-7p.pdf" not in {h.source for h in hits}
    with pytest.raises(DocumentNotFoundError):
        store.delete_document("nist-sp800-145-cloud-definition-7p.pdf")


def test_other_embedding_model_is_a_clear_error(tmp_path: Path, embedder):
    MilvusStore(str(tmp_path / "kb.db"), embedding_model=embedder.name,
                dimension=embedder.dimension).close()
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        MilvusStore(str(tmp_path / "kb.db"), embedding_model="bge-small-en-v1.5",
                    dimension=384)


def test_chunk_ids_are_deterministic(tmp_path: Path, embedder):
    ids = []
    for name in ("a", "b"):
        store = MilvusStore(str(tmp_path / f"{name}.db"), embedding_model=embedder.name,
                            dimension=embedder.dimension)
        Ingestor(store, embedder).ingest_paths([PDFS / "nist-sp800-145-cloud-definition-7p.pdf"])
        hits = Retriever(store, embedder).search("cloud", k=50, mode="bm25")
        ids.append(sorted(h.chunk_id for h in hits))
        store.close()
    assert ids[0] == ids[1] and ids[0]


def test_many_small_documents_commit_in_batches_and_replace_cleanly(
        tmp_path: Path, ingestor: Ingestor, store: MilvusStore, retriever: Retriever):
    folder = tmp_path / "faq"
    folder.mkdir()
    for n in range(40):
        (folder / f"q{n:02}.md").write_text(f"# Question {n}\n\nThe answer code is alpha{n}.\n")
    first = ingestor.ingest_paths([folder])
    assert [r.status for r in first] == ["added"] * 40
    for n in range(0, 40, 8):  # change five, add two, list one twice
        (folder / f"q{n:02}.md").write_text(f"# Question {n}\n\nThe answer code is omega{n}.\n")
    (folder / "new1.md").write_text("# New\n\nA brand new entry about zeta.\n")
    (folder / "new2.md").write_text("# Newer\n\nAnother new entry about theta.\n")
    second = ingestor.ingest_paths([folder, folder / "new1.md"])
    assert len(second) == 43
    statuses = {r.source: r.status for r in second[:42]}
    assert second[42].source == "new1.md" and second[42].reason == "listed twice"
    assert sorted(s for s, st in statuses.items() if st == "replaced") == [
        f"q{n:02}.md" for n in range(0, 40, 8)]
    assert statuses["new1.md"] == statuses["new2.md"] == "added"
    assert list(statuses.values()).count("skipped") == 35
    documents = store.list_documents()
    assert len(documents) == 42
    assert store.count_chunks() == sum(d.chunks for d in documents) == 42
    assert store._pending_versions() == []
    texts = {h.source: h.text for h in retriever.search("answer code", k=50, mode="bm25")}
    assert "omega8" in texts["q08.md"] and "alpha8" not in " ".join(texts.values())


def test_a_bad_name_fails_alone_and_the_rest_of_the_batch_is_stored(tmp_path: Path,
                                                                    ingestor: Ingestor,
                                                                    store: MilvusStore):
    folder = tmp_path / "upload"
    deep = folder.joinpath(*[f"{letter * 200}" for letter in "abcde"])
    deep.mkdir(parents=True)
    (deep / "too-long.md").write_text("# Deep\n\nA file whose path is over a thousand bytes.\n")
    (folder / "good.md").write_text("# Good\n\nThis file has an ordinary name and is kept.\n")
    with open(os.fsencode(folder) + b"/caf\xe9.md", "wb") as fh:  # Latin-1 bytes, not UTF-8
        fh.write(b"# Latin\n\nA name from another encoding.\n")
    results = {r.source: r for r in ingestor.ingest_paths([folder])}
    assert results["good.md"].status == "added"
    failed = {r.source: r.reason for r in results.values() if r.status == "failed"}
    assert len(failed) == 2, results
    assert any("not valid UTF-8" in reason for reason in failed.values())
    assert any("bytes long" in reason and "shorten" in reason for reason in failed.values())
    assert all("\udce9" not in source for source in results)  # printable names only
    assert [d.source for d in store.list_documents()] == ["good.md"]


def test_progress_is_a_monotone_fraction_of_the_whole_job(tmp_path: Path, store: MilvusStore,
                                                          embedder):
    folder = tmp_path / "kb"
    shutil.copytree(MILVUS_DOCS / "faq", folder / "faq")
    shutil.copy(PDFS / "nist-sp800-145-cloud-definition-7p.pdf", folder)
    shutil.copy(PDFS / "edge-truncated-nist-sp800-145.pdf", folder)
    (folder / "faq" / "diagram.gif").write_bytes(b"GIF89a")
    loose = tmp_path / "notes.pages"
    loose.write_text("not a document type")
    events: list[Progress] = []
    # groups of 64 chunks, which the encoder gets in its own batches of 32
    ingestor = Ingestor(store, embedder, batch_size=64)
    results = {r.source: r for r in ingestor.ingest_paths([folder, loose], events.append)}

    assert "faq/diagram.gif" not in results  # other types in a folder are not picked up
    assert results["notes.pages"].status == "failed"
    assert "unsupported file type (.pages)" in results["notes.pages"].reason
    assert results["edge-truncated-nist-sp800-145.pdf"].status == "failed"
    fractions = [p.fraction for p in events]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert fractions == sorted(fractions), "progress went backwards"
    assert fractions[-1] == 1.0 and events[-1].stage == "done"
    done = [sum(p.stage == "done" for p in events[:i + 1]) for i in range(len(events))]
    assert [f == 1.0 for f in fractions] == [n == len(results) for n in done]
    assert {p.total for p in events} == {len(results)}
    assert sorted(p.index for p in events if p.stage == "done") == list(range(1, 8))

    pdf = "nist-sp800-145-cloud-definition-7p.pdf"
    mine = [p for p in events if p.source == pdf]
    pages = [p.page for p in mine if p.stage == "parsing" and p.page]
    assert pages == list(range(1, 8)) and {p.pages for p in mine[1:]} == {7}
    embedded = [p.embedded for p in mine if p.stage == "embedding"]
    assert embedded == sorted(embedded) and embedded[-1] == results[pdf].chunks
    assert any(0 < n < results[pdf].chunks for n in embedded), "no batch-by-batch progress"
    assert mine[-1].chunks == mine[-1].expected == results[pdf].chunks
    stages = {p.stage for p in events}
    assert stages == {"parsing", "embedding", "storing", "done"}
    etas = [p.eta for p in events if p.eta is not None]
    assert events[0].eta is None and all(e >= 0 for e in etas)


def test_progress_lines():
    line = Progress(2, 5, "report.pdf", "embedding", chunks=96, page=64, pages=64,
                    fraction=0.4, eta=42.4, embedded=120, expected=480).describe()
    assert line == "report.pdf (2/5): embedding 120/480 chunks · 0:42 left"
    reading = Progress(1, 1, "big.pdf", "embedding", page=40, pages=605, fraction=0.03,
                       embedded=32)
    assert reading.describe() == "big.pdf (1/1): embedding 32 chunks (page 40/605 read)"
    assert Progress(3, 9, "a.md", "parsing", eta=3725).describe() == \
        "a.md (3/9): parsing · 1:02:05 left"
    assert Progress(9, 9, "a.md", "done", fraction=1.0, eta=0.0).describe() == "a.md (9/9): done"
    busy = Progress(4, 60, "b.md", "embedding", fraction=0.3, eta=40, embedded=3, expected=12,
                    rate=13.2, files_done=19)
    assert busy.describe() == \
        "b.md (4/60): embedding 3/12 chunks · 19/60 files done · 13 chunks/s · 0:40 left"
    waiting = Progress(2, 3, "c.md", "waiting", ahead=2, rate=5.0, files_done=1)
    assert waiting.describe() == \
        "c.md (2/3): waiting for its turn, 2 other uploads first · 1/3 files done"


def test_each_file_reports_its_own_seconds(tmp_path: Path, store: MilvusStore, embedder):
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in range(30):
        (folder / f"n{n:02}.md").write_text(f"# Note {n}\n\nThe note's code word is w{n}.\n")
    started = time.perf_counter()
    results = Ingestor(store, embedder, batch_size=256).ingest_paths([folder])
    wall = time.perf_counter() - started
    assert [r.status for r in results] == ["added"] * 30
    # One group holds all 30 files: each is charged its share of it, not the whole of it.
    assert sum(r.seconds for r in results) <= wall
    assert all(0 < r.seconds < wall / 5 for r in results)


def test_a_stopped_ingest_ends_at_a_document_boundary_and_a_rerun_does_the_rest(
        store: MilvusStore, embedder, tmp_path: Path) -> None:
    import threading

    from rag.ingest.ingestor import NOT_REACHED
    from rag.loading import find_files

    folder = tmp_path / "faq"
    shutil.copytree(MILVUS_DOCS / "faq", folder)
    files = find_files([folder]).files
    assert len(files) == 4
    stop = threading.Event()

    def progress(p: Progress) -> None:
        if p.index == 2:  # asked to stop while the second file is read
            stop.set()

    ingestor = Ingestor(store, embedder)
    first = ingestor.ingest_files(files, progress, stop=stop)
    assert [r.status for r in first] == ["added", "added", "skipped", "skipped"]
    assert all(r.reason == NOT_REACHED for r in first[2:])
    stored = {d.source: d for d in store.list_documents()}
    assert sorted(stored) == sorted(r.source for r in first[:2])
    for name, info in stored.items():  # each stored document whole
        assert store.count_chunks(name) == info.chunks > 0
    again = {r.source: r.status for r in ingestor.ingest_files(files)}
    assert sorted(again.values()) == ["added", "added", "skipped", "skipped"]
    assert all(again[r.source] == "skipped" for r in first[:2])  # unchanged: not redone
    assert len(store.list_documents()) == 4
