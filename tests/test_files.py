"""The kept original files (rag.files): every stored document's file, byte for byte, under its
committed version; only that version; gone with the document and with its knowledge base;
never kept for a document that is not stored; FILES_DIR= keeps none. Real Milvus Lite, the
real embedding model, the shared PDFs and e-mails."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.embedding import LocalEmbedder
from rag.errors import DocumentNotFoundError, StoreError
from rag.files import FileStore
from rag.formats.email import attachments
from rag.kb import KnowledgeBase
from rag.kb_set import KnowledgeBaseSet
from rag.settings import Settings
from rag.ui.services import Services
from rag.workspace import Workspace
from tests.helpers import CLOUD_PDF, OFFICE, PDFS, rag_command

MAIL = OFFICE / "fake-email-attachment.eml"  # a mail with one text attachment
BROKEN_PDF = PDFS / "edge-truncated-nist-sp800-145.pdf"


def _settings(tmp_path: Path, **changes: str) -> Settings:
    return Settings(milvus_uri=str(tmp_path / "kb.db"), files_dir=str(tmp_path / "files"),
                    database_url=f"sqlite:///{tmp_path / 'app.db'}").with_(**changes)


@pytest.fixture
def kb(tmp_path: Path, embedder: LocalEmbedder) -> Iterator[KnowledgeBase]:
    """A knowledge base in tmp_path keeping originals in tmp_path/files/knowledge_base."""
    base = KnowledgeBase(_settings(tmp_path))
    base.embedder = embedder
    yield base
    base.close()


def _kept(kb: KnowledgeBase, name: str) -> Path | None:
    """The kept file of the document's committed version (what the viewer opens)."""
    info = kb.store.get_document(name)
    assert info is not None, f"{name} is not stored"
    assert kb.files is not None
    return kb.files.path(info.doc_id, info.meta["version"])


def _files_of(kb: KnowledgeBase, name: str) -> list[Path]:
    assert kb.files is not None
    folder = kb.files.folder(name)
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _note(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_pdf_and_a_markdown_file_are_kept_byte_for_byte(kb: KnowledgeBase,
                                                          tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    note = _note(docs, "guides/keys · ünïcode.md", "# Keys\n\nRotate the signing keys.\n")
    shutil.copy(CLOUD_PDF, docs / CLOUD_PDF.name)
    results = {r.source: r for r in kb.ingestor.ingest_paths([docs])}
    assert {r.status for r in results.values()} == {"added"}
    assert set(results) == {"guides/keys · ünïcode.md", CLOUD_PDF.name}

    pdf = _kept(kb, CLOUD_PDF.name)
    assert pdf is not None and pdf.read_bytes() == CLOUD_PDF.read_bytes()
    assert pdf.suffix == ".pdf" and pdf.is_relative_to(tmp_path / "files" / "knowledge_base")
    md = _kept(kb, "guides/keys · ünïcode.md")
    assert md is not None and md.read_bytes() == note.read_bytes()
    assert md.suffix == ".md" and "keys" not in str(md.relative_to(tmp_path))  # never the name
    assert [p.name for p in _files_of(kb, CLOUD_PDF.name)] == [pdf.name]  # no temporary files

    assert {r.status for r in kb.ingestor.ingest_paths([docs])} == {"skipped"}
    assert _kept(kb, CLOUD_PDF.name) == pdf and pdf.read_bytes() == CLOUD_PDF.read_bytes()


def test_a_changed_file_keeps_only_its_new_version_and_delete_removes_it(
        kb: KnowledgeBase, tmp_path: Path) -> None:
    note = _note(tmp_path, "notes.md", "# Keys\n\nRotate the keys every ninety days.\n")
    kb.ingestor.ingest_paths([note])
    old = kb.store.get_document("notes.md")
    assert old is not None
    first = _kept(kb, "notes.md")
    assert first is not None

    note.write_text("# Keys\n\nRotate the keys every thirty days.\n", encoding="utf-8")
    [result] = kb.ingestor.ingest_paths([note])
    assert result.status == "replaced"
    now = _kept(kb, "notes.md")
    assert now is not None and now.read_bytes() == note.read_bytes()
    assert kb.files is not None and kb.files.path("notes.md", old.meta["version"]) is None
    assert _files_of(kb, "notes.md") == [now]

    info = kb.delete_document("notes.md")
    assert info.doc_id == "notes.md" and not now.exists()
    assert not kb.files.folder("notes.md").exists()
    assert kb.store.get_document("notes.md") is None
    with pytest.raises(DocumentNotFoundError):
        kb.delete_document("notes.md")


def test_an_e_mail_attachment_keeps_its_own_bytes_and_sync_removes_both(
        kb: KnowledgeBase) -> None:
    data = MAIL.read_bytes()
    [(name, content)] = attachments(data, MAIL.name)
    attachment = f"{MAIL.name}/{name}"
    results = {r.source: r.status for r in kb.ingestor.ingest_paths([MAIL])}
    assert results == {MAIL.name: "added", attachment: "added"}
    mail = _kept(kb, MAIL.name)
    kept = _kept(kb, attachment)
    assert mail is not None and mail.read_bytes() == data
    assert kept is not None and kept.read_bytes() == content and kept.parent != mail.parent

    removed = kb.ingestor.remove_missing([])  # `rag ingest --sync` of nothing
    assert {d.doc_id for d in removed} == {MAIL.name, attachment}
    assert not mail.exists() and not kept.exists()


def test_a_document_that_fails_keeps_no_file(kb: KnowledgeBase, tmp_path: Path) -> None:
    good = _note(tmp_path, "good.md", "# Good\n\nThis one is stored.\n")
    results = {r.source: r for r in kb.ingestor.ingest_paths([BROKEN_PDF, good])}
    assert results[BROKEN_PDF.name].status == "failed" and results["good.md"].status == "added"
    assert _files_of(kb, BROKEN_PDF.name) == [] and _kept(kb, "good.md") is not None


def test_a_failed_commit_discards_the_new_file_and_keeps_the_old(kb: KnowledgeBase,
                                                                  tmp_path: Path) -> None:
    note = _note(tmp_path, "notes.md", "# Keys\n\nRotate the keys every ninety days.\n")
    kb.ingestor.ingest_paths([note])
    old = _kept(kb, "notes.md")
    assert old is not None
    old_bytes = old.read_bytes()

    def refuse(commits: object) -> None:
        raise StoreError("Milvus refused the switch (injected)")

    kb.store.commit_versions = refuse  # type: ignore[method-assign]
    note.write_text("# Keys\n\nRotate the keys every thirty days.\n", encoding="utf-8")
    [result] = kb.ingestor.ingest_paths([note])
    assert result.status == "failed" and "injected" in result.reason
    assert _kept(kb, "notes.md") == old and old.read_bytes() == old_bytes
    assert _files_of(kb, "notes.md") == [old]  # the new version's file is gone

    fresh = _note(tmp_path, "fresh.md", "# Fresh\n\nNever stored.\n")
    [result] = kb.ingestor.ingest_paths([fresh])
    assert result.status == "failed" and _files_of(kb, "fresh.md") == []


def test_a_file_that_cannot_be_kept_fails_that_document_alone(kb: KnowledgeBase,
                                                               tmp_path: Path) -> None:
    blocked = _note(tmp_path, "blocked.md", "# Blocked\n\nIts folder is taken by a file.\n")
    other = _note(tmp_path, "other.md", "# Other\n\nThis one is stored.\n")
    assert kb.files is not None
    folder = kb.files.folder("blocked.md")
    folder.parent.mkdir(parents=True)
    folder.write_bytes(b"")  # a file where the document's folder goes: mkdir fails, also as root
    results = {r.source: r for r in kb.ingestor.ingest_paths([blocked, other])}
    assert results["blocked.md"].status == "failed"
    assert "Could not keep the original file of 'blocked.md'" in results["blocked.md"].reason
    assert "FILES_DIR" in results["blocked.md"].reason  # what to do
    assert results["other.md"].status == "added" and _kept(kb, "other.md") is not None
    assert kb.store.get_document("blocked.md") is None
    hits = kb.retriever.search("folder taken by a file", 5)
    assert "blocked.md" not in {h.source for h in hits}


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_an_unwritable_folder_fails_that_document_alone(kb: KnowledgeBase,
                                                        tmp_path: Path) -> None:
    locked = _note(tmp_path, "locked.md", "# Locked\n\nIts folder is read-only.\n")
    other = _note(tmp_path, "other.md", "# Other\n\nThis one is stored.\n")
    assert kb.files is not None
    folder = kb.files.folder("locked.md")
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        results = {r.source: r for r in kb.ingestor.ingest_paths([locked, other])}
    finally:
        folder.chmod(0o700)
    assert results["locked.md"].status == "failed"
    assert "Permission denied" in results["locked.md"].reason
    assert "FILES_DIR" in results["locked.md"].reason
    assert results["other.md"].status == "added"
    assert kb.store.get_document("locked.md") is None and list(folder.iterdir()) == []


def test_an_unchanged_document_gets_its_missing_original_kept(tmp_path: Path,
                                                              embedder: LocalEmbedder,
                                                              caplog) -> None:
    note = _note(tmp_path, "old.md", "# Old\n\nIngested before originals were kept.\n")
    blocked = _note(tmp_path, "blocked.md", "# Blocked\n\nIngested before too.\n")
    before = KnowledgeBase(_settings(tmp_path, files_dir=""))
    before.embedder = embedder
    assert before.files is None
    before.ingestor.ingest_paths([note, blocked])
    before.close()
    assert not (tmp_path / "files").exists()

    after = KnowledgeBase(_settings(tmp_path))
    after.embedder = embedder
    try:
        assert after.files is not None
        folder = after.files.folder("blocked.md")
        folder.parent.mkdir(parents=True)
        folder.write_bytes(b"")
        with caplog.at_level(logging.WARNING, logger="rag.ingest.originals"):
            results = after.ingestor.ingest_paths([note, blocked])
        assert [(r.status, r.reason) for r in results] == [("skipped", "unchanged")] * 2
        kept = _kept(after, "old.md")
        assert kept is not None and kept.read_bytes() == note.read_bytes()
        assert "blocked.md" in caplog.text and "without its original file" in caplog.text
    finally:
        after.close()


def test_files_dir_empty_keeps_nothing(tmp_path: Path, embedder: LocalEmbedder,
                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default ./data/files would be here
    assert Settings.from_env({}).files_dir == "./data/files"
    settings = Settings.from_env({"FILES_DIR": "", "MILVUS_URI": str(tmp_path / "kb.db")})
    assert settings.files_dir == ""
    kb = KnowledgeBase(settings)
    kb.embedder = embedder
    try:
        assert kb.files is None and kb.ingestor.files is None
        note = _note(tmp_path / "in", "note.md", "# Note\n\nNothing of it is kept.\n")
        assert [r.status for r in kb.ingestor.ingest_paths([note])] == ["added"]
        assert kb.delete_document("note.md").doc_id == "note.md"
    finally:
        kb.close()
    assert not (tmp_path / "data" / "files").exists()


def test_sync_sweeps_files_no_stored_version_owns(kb: KnowledgeBase, tmp_path: Path) -> None:
    note = _note(tmp_path, "notes.md", "# Notes\n\nStored and kept.\n")
    kb.ingestor.ingest_paths([note])
    kept = _kept(kb, "notes.md")
    assert kb.files is not None and kept is not None
    # what a process killed between keeping a file and committing it leaves behind
    stray = kb.files.put("notes.md", "0" * 32, b"an uncommitted version")
    orphan = kb.files.put("never-committed.md", "1" * 32, b"a document never stored")
    part = kept.parent / ".part-leftover"
    part.write_bytes(b"half a file")
    assert kb.ingestor.remove_missing(["notes.md"]) == []
    assert kept.exists() and kept.read_bytes() == note.read_bytes()
    assert not stray.exists() and not part.exists() and not orphan.parent.exists()


def test_a_put_is_checked_and_names_are_never_paths(tmp_path: Path) -> None:
    files = FileStore(tmp_path / "files")
    names = ["../../etc/passwd", "mail.eml/report.pdf", "a/b/c.PDF", "Ωμέγα.docx", "README"]
    paths = [files.put(name, "ab" * 16, name.encode()) for name in names]
    assert all(p.is_relative_to(tmp_path / "files") for p in paths)
    assert len({p.parent for p in paths}) == len(names)
    assert [p.suffix for p in paths] == ["", ".pdf", ".pdf", ".docx", ""]
    assert [files.path(n, "ab" * 16) for n in names] == paths
    assert [p.read_bytes() for p in paths] == [n.encode() for n in names]
    with pytest.raises(ValueError, match="not a document version"):
        files.put("x.md", "../x", b"x")

    source = tmp_path / "report.pdf"
    shutil.copy(CLOUD_PDF, source)
    with pytest.raises(StoreError, match="changed while it was being added"):
        files.put("report.pdf", "cd" * 16, source, sha256="0" * 64)
    assert files.path("report.pdf", "cd" * 16) is None
    assert list(files.folder("report.pdf").iterdir()) == []  # no temporary file left
    source.unlink()
    with pytest.raises(StoreError, match="Could not read"):
        files.put("report.pdf", "cd" * 16, source)

    files.drop()
    assert not (tmp_path / "files").exists()


def test_removing_a_knowledge_base_removes_its_folder_and_the_app_deletes_files(
        tmp_path: Path, embedder: LocalEmbedder) -> None:
    settings = _settings(tmp_path)
    workspace = Workspace(settings.database_url)
    default = KnowledgeBase(settings)
    default.embedder = embedder
    services = Services(default, workspace)
    kbs: KnowledgeBaseSet = services.kbs
    try:
        team = kbs.create("Team")
        kbs.open("Team").ingestor.ingest_paths([_note(tmp_path, "a.md", "# A\n\nAlpha.\n")])
        default.ingestor.ingest_paths([_note(tmp_path, "b.md", "# B\n\nBeta.\n")])
        team_folder = tmp_path / "files" / team.collection
        assert _kept(kbs.open("Team"), "a.md") is not None and team_folder.is_dir()
        kbs.remove("Team")
        assert not team_folder.exists()
        kept = _kept(default, "b.md")
        assert kept is not None  # the other knowledge base's files stay

        [info] = services.delete(["b.md"])
        assert info.doc_id == "b.md" and not kept.exists()
        assert default.store.list_documents() == []
    finally:
        kbs.close()
        workspace.close()


def test_rag_rm_deletes_the_kept_file(tmp_path: Path) -> None:
    run = rag_command(tmp_path)
    note = _note(tmp_path / "in", "notes.md", "# Notes\n\nKept until removed.\n")
    run("ingest", str(note))
    # FILES_DIR by default: `files` beside the Milvus Lite file (cwd/kb.db here)
    folder = FileStore(tmp_path / "files" / "knowledge_base").folder("notes.md")
    assert [p.read_bytes() for p in folder.iterdir()] == [note.read_bytes()]
    assert "deleted notes.md" in run("rm", "notes.md").stdout
    assert not folder.exists()
