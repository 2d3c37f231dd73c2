"""Chunking real documents with the embedding model's real tokenizer."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.chunking import TokenCounter, chunk_id, chunk_sections
from rag.embedding import LocalEmbedder
from rag.loading import load
from rag.markup import heading_line
from rag.schema import Chunk, Section
from tests.helpers import FAQ, MILVUS_DOCS, PDFS, SHARED


@pytest.fixture(scope="module")
def count(embedder: LocalEmbedder) -> TokenCounter:
    """Token counts with all-MiniLM-L6-v2's own tokenizer, without special tokens (the counter
    ingest gives the chunker; the model itself is not loaded for it)."""
    return embedder.count_tokens


def _chunk(sections: list[Section], count: TokenCounter, *, version: str = "v1",
           max_tokens: int = 200, overlap: int = 40, min_tokens: int | None = None) -> list[Chunk]:
    return list(chunk_sections(sections, doc_id="doc", version=version, source="doc.src",
                               count_tokens=count, max_tokens=max_tokens, overlap=overlap,
                               min_tokens=min_tokens))


@functools.cache
def _sections(path: Path) -> tuple[Section, ...]:
    """A document's sections, extracted once per test run (PDF extraction is the slow part)."""
    return tuple(load(path).sections)


def _pdf(name: str) -> list[Section]:
    return list(_sections(PDFS / name))


def _markdown(name: str) -> list[Section]:
    return list(_sections(FAQ / name))


def _document_text(sections: list[Section]) -> str:
    """The sections joined as the chunker joins a group of them: blank lines between, and a
    section whose heading differs from the one before starts with its heading line."""
    pieces = []
    for index, section in enumerate(sections):
        line = heading_line(sections[index - 1].heading, section.heading) if index else ""
        pieces.append(f"{line}\n{section.text}" if line else section.text)
    return "\n\n".join(pieces)


def _assert_whole_words(chunks: list[Chunk], sections: list[Section]) -> None:
    text = _document_text(sections)
    for chunk in chunks:
        start = text.find(chunk.text)
        assert start >= 0, f"chunk {chunk.position} is not a contiguous piece of its source"
        while start >= 0:
            end = start + len(chunk.text)
            if ((start == 0 or text[start - 1].isspace())
                    and (end == len(text) or text[end].isspace())):
                break
            start = text.find(chunk.text, start + 1)
        assert start >= 0, f"chunk {chunk.position} starts or ends mid-word: {chunk.text!r}"


def _overlap(previous: str, following: str) -> str:
    """The longest start of `following` that ends `previous`."""
    for k in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:k]):
            return following[:k]
    return ""


ALL_DOCS = [
    *(f"pdfs/{p.name}" for p in sorted(PDFS.glob("*.pdf")) if not p.name.startswith("edge-")),
    *(f"milvus-docs/faq/{p.name}" for p in sorted(FAQ.glob("*.md"))),
]


@pytest.mark.parametrize("name", ALL_DOCS)
@pytest.mark.parametrize(("max_tokens", "overlap"), [(200, 40), (64, 16)])
def test_limits_and_word_boundaries(name: str, max_tokens: int, overlap: int,
                                    count: TokenCounter) -> None:
    sections = list(_sections(SHARED / name))
    chunks = _chunk(sections, count, max_tokens=max_tokens, overlap=overlap)
    assert chunks
    tokens = count([c.text for c in chunks])
    assert max(tokens) <= max_tokens
    assert all(c.text and c.text == c.text.strip() for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    _assert_whole_words(chunks, sections)
    words = re.findall(r"\S+", " ".join(s.text for s in sections))
    covered = set(re.findall(r"\S+", " ".join(c.text for c in chunks)))
    assert set(words) <= covered, "every word of the document is in some chunk"


def test_overlap_between_chunks_of_one_long_section(count: TokenCounter) -> None:
    sections = _pdf("acl2016-sennrich-subword-nmt-2col.pdf")
    chunks = _chunk(sections, count, max_tokens=200, overlap=40)
    pairs = [(a, b) for a, b in itertools.pairwise(chunks)
             if a.page == b.page and a.page_end == a.page]
    assert len(pairs) >= 20
    overlaps = [_overlap(a.text, b.text) for a, b in pairs]
    assert sum(1 for o in overlaps if o) >= 0.9 * len(pairs)
    sizes = count([o for o in overlaps if o])
    assert max(sizes) <= 40
    assert sum(sizes) / len(sizes) >= 15, "overlaps are about the asked size, not a word"
    for (a, _), shared in zip(pairs, overlaps, strict=True):
        assert not shared or len(shared) < len(a.text), "a chunk is never repeated whole"


def test_no_overlap_across_markdown_headings(count: TokenCounter) -> None:
    sections = _markdown("performance_faq.md")
    chunks = _chunk(sections, count)
    for a, b in itertools.pairwise(chunks):
        if a.heading != b.heading:
            assert not _overlap(a.text, b.text) or len(_overlap(a.text, b.text)) < 3


def test_heading_and_page_are_carried(count: TokenCounter) -> None:
    md = _chunk(_markdown("performance_faq.md"), count)
    headings = {s.heading for s in _markdown("performance_faq.md")}
    assert {c.heading for c in md} <= headings
    for merged in headings - {c.heading for c in md}:  # a small section joined the one before
        assert any(f"\n\n{merged[-1]}\n" in c.text for c in md), merged
    cpu = [c for c in md if c.heading == ("Performance FAQ", "What factors impact CPU usage?")]
    assert len(cpu) == 1 and cpu[0].text.startswith("CPU usage increases")
    assert all(c.page is None and c.page_end is None for c in md)

    pdf = _chunk(_pdf("nist-sp800-88r1-media-sanitization-64p.pdf"), count)
    assert all(c.page is not None and c.page_end is not None for c in pdf)
    assert all(1 <= c.page <= c.page_end <= 64 for c in pdf)  # type: ignore[operator]
    pages = [c.page for c in pdf]
    assert pages == sorted(pages)
    assert pdf[-1].page_end == 64
    assert all(c.heading == () and c.source == "doc.src" and c.doc_id == "doc" for c in pdf)


def test_small_pdf_pages_merge(count: TokenCounter) -> None:
    sections = _pdf("nist-sp800-145-cloud-definition-7p.pdf")
    chunks = _chunk(sections, count)
    first = chunks[0]
    assert (first.page, first.page_end) == (1, 2)
    assert first.text == f"{sections[0].text}\n\n{sections[1].text}"
    assert all(c.page == c.page_end for c in chunks[1:])


def test_deterministic_ids(count: TokenCounter) -> None:
    sections = _markdown("product_faq.md")
    one = _chunk(sections, count)
    two = _chunk(sections, count)
    assert one == two
    ids = [c.id for c in one]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    other = _chunk(sections, count, version="v2")
    assert [c.text for c in other] == [c.text for c in one]
    assert not set(ids) & {c.id for c in other}
    assert one[0].id == chunk_id("doc", "v1", 0, one[0].text)
    assert chunk_id("doc", "v1", 1, one[0].text) != one[0].id


def test_streams_lazily(count: TokenCounter) -> None:
    consumed = 0

    def pages() -> Iterator[Section]:
        nonlocal consumed
        for section in load(PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf").sections:
            consumed += 1
            yield section

    chunks = chunk_sections(pages(), doc_id="d", version="v", source="s", count_tokens=count)
    first = next(chunks)
    assert first.position == 0
    assert consumed <= 3
    rest = list(chunks)
    assert consumed == 64
    assert len(rest) > 100


def test_64_page_pdf(count: TokenCounter) -> None:
    sections = _pdf("nist-sp800-88r1-media-sanitization-64p.pdf")
    chunks = _chunk(sections, count)
    assert 150 < len(chunks) < 600
    assert "Cryptographic Erase" in " ".join(c.text for c in chunks)


def test_overlong_word_and_other_counters(count: TokenCounter) -> None:
    blob = "sha256:" + "9f" * 900
    text = f"Checksums follow.\n\n{blob} is the digest.\n\nThe end of the text."
    chunks = _chunk([Section(text=text)], count, max_tokens=64, overlap=8)
    assert max(count([c.text for c in chunks])) <= 64
    assert "".join(c.text for c in chunks).replace(" is the digest.", "").count("9f") >= 900

    def characters(texts: list[str]) -> list[int]:  # not additive: separators count too
        return [len(t) for t in texts]

    long_text = "\n\n".join(s.text for s in _markdown("operational_faq.md"))
    by_chars = _chunk([Section(text=long_text)], characters, max_tokens=300, overlap=60)
    assert max(len(c.text) for c in by_chars) <= 300
    _assert_whole_words(by_chars, [Section(text=long_text)])


def test_empty_sections_and_bad_arguments(count: TokenCounter) -> None:
    assert _chunk([Section(text="  \n"), Section(text="")], count) == []
    with pytest.raises(ValueError, match="overlap"):
        _chunk([Section(text="x")], count, max_tokens=50, overlap=50)


SAMPLE_DOCS = [
    "reference/index.md", "reference/metric.md", "reference/timestamp.md",
    "adminGuide/connect_kafka_ssl.md", "userGuide/manage-collections.md", "release_notes.md",
    "tutorials/multimodal_rag_with_milvus.md", "faq/performance_faq.md",
]


@pytest.mark.parametrize("name", SAMPLE_DOCS)
def test_no_small_chunks_in_real_markdown(name: str, count: TokenCounter) -> None:
    sections = list(_sections(MILVUS_DOCS / name))
    chunks = _chunk(sections, count)
    tokens = count([c.text for c in chunks])
    assert len(chunks) > 1
    assert min(tokens) >= 50, [c.text for c, n in zip(chunks, tokens, strict=True) if n < 50]
    assert max(tokens) <= 200
    _assert_whole_words(chunks, sections)
    words = set(re.findall(r"\S+", " ".join(s.text for s in sections)))
    assert words <= set(re.findall(r"\S+", " ".join(c.text for c in chunks)))


@pytest.mark.parametrize("path", [p for p in sorted(PDFS.glob("*.pdf"))
                                  if not p.name.startswith("edge-")], ids=lambda p: p.name)
def test_no_small_chunks_in_real_pdfs(path: Path, count: TokenCounter) -> None:
    chunks = _chunk(list(_sections(path)), count)
    tokens = count([c.text for c in chunks])
    assert len(chunks) == 1 or min(tokens) >= 50
    assert max(tokens) <= 200


def test_link_list_section_joins_the_section_before(count: TokenCounter) -> None:
    sections = list(_sections(MILVUS_DOCS / "reference" / "metric.md"))
    assert sections[-1].heading == ("Similarity Metrics", "What's next")
    chunks = _chunk(sections, count)
    assert ("Similarity Metrics", "What's next") not in {c.heading for c in chunks}
    last = chunks[-1]
    assert last.heading == ("Similarity Metrics", "FAQ")
    assert last.text.endswith("\n\nWhat's next\n- Learn more about the supported index types"
                              " in Milvus.")


def _words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n)) + "."


def test_small_sections_join_a_neighbour_with_their_heading(count: TokenCounter) -> None:
    sections = [
        Section(text="Short intro of the guide.", heading=("Guide",)),
        Section(text=_words(60, "alpha"), heading=("Guide", "Install")),
        Section(text="Only one short line.", heading=("Guide", "Prerequisites")),
        Section(text=_words(60, "beta"), heading=("Guide", "Run")),
        Section(text="- Search\n- Query", heading=("Guide", "What's next")),
    ]
    chunks = _chunk(sections, count, max_tokens=200, overlap=20)
    assert [c.heading for c in chunks] == [("Guide",), ("Guide", "Run")]
    assert chunks[0].text == (f"Short intro of the guide.\n\nInstall\n{sections[1].text}\n\n"
                              "Prerequisites\nOnly one short line.")
    assert chunks[1].text == f"{sections[3].text}\n\nWhat's next\n- Search\n- Query"
    again = _chunk(sections, count, max_tokens=200, overlap=20)
    assert [c.id for c in again] == [c.id for c in chunks]


def test_a_parent_intro_leads_its_subsections(count: TokenCounter) -> None:
    sections = [
        Section(text=_words(60, "alpha"), heading=("Index", "Overview")),
        Section(text="Milvus supports these index types.", heading=("Index", "Supported")),
        Section(text=_words(60, "beta"), heading=("Index", "Supported", "FLAT")),
    ]
    chunks = _chunk(sections, count)
    assert [c.heading for c in chunks] == [("Index", "Overview"), ("Index", "Supported")]
    assert chunks[1].text == f"Milvus supports these index types.\n\nFLAT\n{sections[2].text}"


def test_small_tail_of_a_long_section_is_rebalanced(count: TokenCounter) -> None:
    paragraphs = [_words(45, f"p{i}w") for i in range(9)] + ["The very end."]
    section = Section(text="\n\n".join(paragraphs), heading=("Long",))
    greedy = _chunk([section], count, max_tokens=200, overlap=40, min_tokens=0)
    assert count([greedy[-1].text])[0] < 50, "the greedy split leaves a small tail"
    chunks = _chunk([section], count, max_tokens=200, overlap=40)
    tokens = count([c.text for c in chunks])
    assert min(tokens) >= 50 and max(tokens) <= 200
    assert chunks[-1].text.endswith("The very end.")
    _assert_whole_words(chunks, [section])
    for a, b in itertools.pairwise(chunks):
        assert count([_overlap(a.text, b.text)])[0] <= 40


def test_min_tokens_argument(count: TokenCounter) -> None:
    sections = [Section(text="Tiny.", heading=("A",)),
                Section(text=_words(30, "w"), heading=("B",))]
    assert len(_chunk(sections, count, min_tokens=0)) == 2  # 0: every section stands alone
    assert len(_chunk(sections, count)) == 1
    whole = _chunk([Section(text="A whole document of one line.")], count)
    assert [c.text for c in whole] == ["A whole document of one line."]
    with pytest.raises(ValueError, match="min_tokens"):
        list(chunk_sections(sections, doc_id="d", version="v", source="s", count_tokens=count,
                            max_tokens=100, min_tokens=51))

