"""How fast the viewer shows a cited PDF passage: page render + highlight + PNG encoding.

For every page of the shared 64-page NIST SP 800-88 PDF, a real chunk of that page (as the
product chunks it) is located and the page rendered with its boxes (rag.viewer.pdf_page
.render_page), at zoom 1 and zoom 2; median and p95 per zoom. Bar: p95 under 300 ms.

    python -m benchmarks.viewer
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.common import CHUNK_OVERLAP, CHUNK_TOKENS, PDFS, ROOT, machine, median, percentile
from rag.chunking import chunk_sections
from rag.embedding import LocalEmbedder
from rag.loading import load
from rag.viewer.pdf_page import render_page

PDF = PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf"


def passages(path: Path) -> dict[int, str]:
    """One real chunk per page: the first that starts on it."""
    doc = load(path, path.name)
    embedder = LocalEmbedder()
    out: dict[int, str] = {}
    for chunk in chunk_sections(doc.sections, doc_id=path.name, version="v", source=path.name,
                                count_tokens=embedder.count_tokens, max_tokens=CHUNK_TOKENS,
                                overlap=CHUNK_OVERLAP):
        if chunk.page is not None:
            out.setdefault(chunk.page, chunk.text)
    return out


def main() -> None:
    chosen = passages(PDF)
    result = {"date": time.strftime("%Y-%m-%d"), "pdf": PDF.name, "pages": len(chosen),
              "machine": machine()}
    rows = []
    for zoom in (1.0, 2.0):
        times, sizes, matched = [], [], []
        for page, text in sorted(chosen.items()):
            started = time.perf_counter()
            view = render_page(PDF, page, text, zoom=zoom)
            times.append((time.perf_counter() - started) * 1000)
            sizes.append(len(view.image) / 1024)
            matched.append(view.matched)
        row = {"zoom": zoom, "median_ms": round(median(times), 1),
               "p95_ms": round(percentile(times, 95), 1), "max_ms": round(max(times), 1),
               "median_kb": round(median(sizes), 1),
               "median_matched": round(median(matched), 3)}
        rows.append(row)
    result["rows"] = rows
    (ROOT / "benchmarks" / "viewer.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| zoom | pages | median ms | p95 ms | max ms | median PNG KB | passage found (median) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['zoom']} | {len(chosen)} | {r['median_ms']} | {r['p95_ms']} | {r['max_ms']} "
              f"| {r['median_kb']} | {r['median_matched']} |")


if __name__ == "__main__":
    main()
