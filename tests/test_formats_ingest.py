"""Every kind of file in the shared office folder, through the real ingest into Milvus Lite:
each readable file is stored and searchable with its location, each broken or locked one fails
alone with its reason and leaves nothing behind."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.embedding import LocalEmbedder
from rag.ingest import Ingestor, IngestResult
from rag.retrieval import Retriever
from rag.store import MilvusStore
from tests.helpers import OFFICE, json_lines, open_store, rag_command

# too big for a test (the ingestion benchmark reads them): the 872-page handbook, the 400-page
# PDF and the 2.4 MB filing (its first page is in the set)
BIG = {"handbook-872p.docx", "pdf2image-memory-error-test-400p.pdf", "example-10k.html"}
# file -> a word of the reason it must fail with
BROKEN = {"password.pdf": "password", "password_protected.xlsx": "password",
          "empty.xlsx": "empty"}
FILES = sorted(p for p in OFFICE.iterdir() if p.name not in BIG and p.name != "SOURCES.md")


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory,
           embedder: LocalEmbedder) -> Iterator[tuple[MilvusStore, dict[str, IngestResult]]]:
    store = open_store(tmp_path_factory.mktemp("office") / "kb.db", embedder)
    results = Ingestor(store, embedder).ingest_files([(p, p.name) for p in FILES])
    yield store, {r.source: r for r in results}
    store.close()


def _texts(store: MilvusStore, source: str) -> list[str]:
    return [c.text for c in store.document_chunks(source)]


def test_every_readable_office_file_is_stored_and_every_broken_one_fails_alone(office) -> None:
    store, results = office
    stored = {d.source: d for d in store.list_documents()}
    for path in FILES:
        result = results[path.name]
        if path.name in BROKEN:
            assert result.status == "failed", path.name
            assert BROKEN[path.name] in result.reason.lower(), result.reason
            assert path.name not in stored and not _texts(store, path.name)
        else:
            assert result.status == "added", (path.name, result.reason)
            assert stored[path.name].chunks == len(_texts(store, path.name)) > 0


def test_kinds_are_detected_from_the_content(office) -> None:
    store, _ = office
    kinds = {d.source: d.kind for d in store.list_documents()}
    assert kinds["simple.docx"] == "docx" and kinds["simple.odt"] == "odt"
    assert kinds["sample-presentation.pptx"] == "pptx"
    assert kinds["stanley-cups.xlsx"] == "xlsx" and kinds["stanley-cups-utf-16.csv"] == "csv"
    assert kinds["winter-sports.epub"] == "epub" and kinds["fake-email.eml"] == "email"
    assert kinds["DA-1p.png"] == "image" and kinds["loremipsum-flat.pdf"] == "pdf"


def test_scanned_pages_are_read_by_ocr_and_the_document_list_says_so(office) -> None:
    store, _ = office
    docs = {d.source: d for d in store.list_documents()}
    assert docs["DA-1p.png"].notes == "OCR"
    assert docs["loremipsum-flat.pdf"].notes.startswith("OCR: page")
    assert "OCR" not in docs["multi-column-2p.pdf"].notes  # a text PDF is not OCR'd
    lorem = " ".join(_texts(store, "loremipsum-flat.pdf")).lower()
    assert "lorem" in lorem and "ipsum" in lorem


def test_a_spreadsheet_row_keeps_its_column_names_in_every_chunk(office) -> None:
    store, _ = office
    for name in ("stanley-cups.xlsx", "stanley-cups.csv", "stanley-cups-utf-16.csv"):
        chunks = store.document_chunks(name)
        assert chunks
        for chunk in chunks:
            assert "Team | Location | Stanley Cups" in chunk.text  # the header row
            assert "rows " in chunk.heading  # (sheet >) rows a-b
    for name in ("vodafone.xlsx", "2023-half-year-analyses-by-segment.xlsx"):
        chunks = store.document_chunks(name)
        assert chunks and all(re.search(r"> rows? \d", c.heading) for c in chunks)


def test_hits_carry_their_location(office, embedder: LocalEmbedder) -> None:
    store, _ = office
    retriever = Retriever(store, embedder)
    hits = retriever.search("slide", k=50, mode="bm25")
    slides = [h for h in hits if h.source.endswith(".pptx")]
    assert slides and all(h.to_dict()["location"].startswith("slide ") for h in slides)
    sheet = retriever.search("Stanley Cup champions by year", k=20)
    located = [h.to_dict()["location"] for h in sheet if h.source.startswith("stanley-cups")]
    assert located and all("rows" in where for where in located)


def test_an_e_mail_attachment_is_a_document_named_after_the_mail(office) -> None:
    store, results = office
    name = "fake-email-attachment.eml/fake-attachment.txt"
    assert results[name].status == "added"
    assert [c.text for c in store.document_chunks(name)] == ["Hey this is a fake attachment!"]
    mail = " ".join(c.text for c in store.document_chunks("fake-email-attachment.eml"))
    assert "Subject:" in mail


def test_the_command_line_ingests_office_files_and_prints_their_locations(
        tmp_path: Path) -> None:
    run = rag_command(tmp_path)
    files = [str(OFFICE / n) for n in ("fake-power-point-table.pptx", "DA-1p.png",
                                       "password.pdf")]
    ingested = run("ingest", *files, ok=False)
    assert ingested.returncode == 1  # one file failed; the others are stored
    assert "password-protected" in ingested.stdout
    docs = {d["source"]: d for d in json_lines(run("docs", "--json").stdout)}
    assert sorted(docs) == ["DA-1p.png", "fake-power-point-table.pptx"]
    assert docs["DA-1p.png"]["notes"] == "OCR"
    [line] = json_lines(run("search", "--json", "Tangerine Aqua colours").stdout)
    top = line["hits"][0]
    assert top["source"] == "fake-power-point-table.pptx"
    assert top["location"] == "slide 1: A Slide with a Table"
    shown = run("search", "Tangerine Aqua colours", COLUMNS="120").stdout
    assert "slide 1: A Slide with a Table" in shown
