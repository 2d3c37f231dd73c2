"""The development question sets (`benchmarks/qa/*.jsonl`) and the documents each is asked of.

Each set is evaluated in its own knowledge base built from exactly these paths, so a question's
`source` is the name the knowledge base gives the file: its path relative to a folder given, or
the bare file name of a file given directly.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
QA = ROOT / "benchmarks" / "qa"

QA_SETS: dict[str, tuple[Path, list[Path]]] = {
    "milvus_docs": (QA / "milvus_docs.jsonl", [SHARED / "milvus-docs"]),
    "pdfs": (QA / "pdfs.jsonl", [SHARED / "pdfs"]),
    "short": (QA / "short.jsonl", [
        *(ROOT / "assets" / "demo-docs" / name for name in (
            "operational_faq.md", "performance_faq.md", "product_faq.md", "troubleshooting.md")),
        *(SHARED / "office" / name for name in (
            "layout-parser-paper-with-table.pdf", "multi-column-2p.pdf", "single_table.pdf")),
    ]),
    # every office file but the 400-page PDF (no question is about it; the benchmark reads it)
    "office": (QA / "office.jsonl", sorted(
        p for p in (SHARED / "office").iterdir()
        if p.name not in ("SOURCES.md", "pdf2image-memory-error-test-400p.pdf"))),
}
