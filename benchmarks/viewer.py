"""Passage viewer speed: a PDF page rendered with a cited passage boxed (rag.viewer.pdf_page).

python -m benchmarks.viewer [--pdf PATH] [--rounds 3] [--out benchmarks/viewer.json] [--formats]

For every page of the PDF (default: the shared 64-page NIST SP 800-88), with the passage of a
real chunk on that page (chunked as the ingest chunks: rag.loading, chunk_sections at the
Settings' sizes), render_page is timed whole (open, find and box the passage, render, encode
PNG) at zoom 1 and zoom 2, `rounds` times each after a warm-up; median and p95 ms, and the
image size. passage_boxes alone (open, find, box) is timed too. The bar: p95 < 300 ms.
With --formats, the encoders the viewer could use are compared on the same pages (grayscale
or RGB bitmap; PNG, JPEG, WebP): encode ms and size.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import CHUNK_OVERLAP, CHUNK_TOKENS, PDFS, log, machine, median, percentile
from rag.chunking import chunk_sections
from rag.embedding import LocalEmbedder
from rag.formats import Limits
from rag.loading import load
from rag.viewer.pdf_page import passage_boxes, render_page

NIST_64 = PDFS / "nist-sp800-88r1-media-sanitization-64p.pdf"
BAR_MS = 300.0
ENCODERS: dict[str, dict[str, Any]] = {
    "PNG (level 3)": {"format": "PNG", "compress_level": 3},
    "PNG (level 6)": {"format": "PNG", "compress_level": 6},
    "JPEG (q 85)": {"format": "JPEG", "quality": 85},
    "WebP (q 80)": {"format": "WEBP", "quality": 80, "method": 0},
}


def passages(path: Path) -> dict[int, str]:
    """A real chunk's text for each page: the first chunk on it ("" for a page without
    one)."""
    doc = load(path, limits=Limits(table_chars=CHUNK_TOKENS * 5 // 2))
    count = LocalEmbedder().count_tokens
    by_page: dict[int, str] = {}
    for chunk in chunk_sections(doc.sections, doc_id=path.name, version="bench",
                                source=path.name, count_tokens=count,
                                max_tokens=CHUNK_TOKENS, overlap=CHUNK_OVERLAP):
        for page in range(chunk.page or 1, (chunk.page_end or chunk.page or 0) + 1):
            by_page.setdefault(page, chunk.text)
    pages = doc.pages or max(by_page)
    return {page: by_page.get(page, "") for page in range(1, pages + 1)}


def _stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": round(median(ms), 1), "p95_ms": round(percentile(ms, 95), 1),
            "max_ms": round(max(ms), 1)}


def time_views(path: Path, texts: dict[int, str], rounds: int) -> dict[str, Any]:
    """render_page at zoom 1 and 2, and passage_boxes alone, on every page."""
    render_page(path, 1, texts[1])  # warm-up: the library, the caches
    result: dict[str, Any] = {}
    for zoom in (1.0, 2.0):
        ms: list[float] = []
        sizes: list[int] = []
        matched: list[float] = []
        shape = (0, 0)
        for _ in range(rounds):
            for page, text in texts.items():
                started = time.perf_counter()
                view = render_page(path, page, text, zoom=zoom)
                ms.append(1000 * (time.perf_counter() - started))
                sizes.append(len(view.image))
                matched.append(view.matched)
                shape = (view.width, view.height)
        result[f"zoom {zoom:g}"] = _stats(ms) | {
            "image_kb_median": round(median(sizes) / 1024),
            "image_kb_max": round(max(sizes) / 1024),
            "pixels": f"{shape[0]}x{shape[1]}", "renders": len(ms),
            "matched_median": round(median(matched), 3), "matched_min": round(min(matched), 3)}
        log(f"  zoom {zoom:g}: {result[f'zoom {zoom:g}']}")
    ms = []
    for _ in range(rounds):
        for page, text in texts.items():
            started = time.perf_counter()
            passage_boxes(path, page, text)
            ms.append(1000 * (time.perf_counter() - started))
    result["boxes only"] = _stats(ms) | {"renders": len(ms)}
    return result


def time_encoders(path: Path, pages: list[int]) -> dict[str, Any]:
    """Encode ms and size of the pages' bitmaps (grayscale and RGB, zoom 1 and 2) with each
    candidate encoder; the bitmap's render time apart."""
    import pypdfium2 as pdfium

    out: dict[str, Any] = {}
    pdf = pdfium.PdfDocument(path)
    try:
        for zoom in (1, 2):
            for mode in ("gray", "rgb"):
                render_ms: list[float] = []
                encoded: dict[str, tuple[list[float], list[int]]] = {
                    name: ([], []) for name in ENCODERS}
                for number in pages:
                    page = pdf[number - 1]
                    started = time.perf_counter()
                    image = page.render(scale=900 * zoom / page.get_width(),
                                        grayscale=mode == "gray").to_pil()
                    render_ms.append(1000 * (time.perf_counter() - started))
                    for name, options in ENCODERS.items():
                        buffer = io.BytesIO()
                        started = time.perf_counter()
                        image.save(buffer, **options)
                        encoded[name][0].append(1000 * (time.perf_counter() - started))
                        encoded[name][1].append(len(buffer.getvalue()))
                    page.close()
                key = f"zoom {zoom} {mode}"
                out[key] = {"render_ms_median": round(median(render_ms), 1)} | {
                    name: {"encode_ms_median": round(median(ms), 1),
                           "encode_ms_p95": round(percentile(ms, 95), 1),
                           "kb_median": round(median(sizes) / 1024)}
                    for name, (ms, sizes) in encoded.items()}
                log(f"  encoders, {key}: done")
    finally:
        pdf.close()
    return out


def render(result: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    lines = [f"render_page on {result['pdf']} ({result['pages']} pages, each with a real "
             f"chunk's passage), {result['rounds']} rounds; bar p95 < {BAR_MS:g} ms",
             "", "| what | median ms | p95 ms | max ms | image (median / max KB) | pixels |"
             " passage found (median / min) |", "|---|---|---|---|---|---|---|"]
    for name, row in result["views"].items():
        image = (f"{row['image_kb_median']} / {row['image_kb_max']}"
                 if "image_kb_median" in row else "-")
        found = (f"{row['matched_median']:.3f} / {row['matched_min']:.3f}"
                 if "matched_median" in row else "-")
        lines.append(f"| {name} | {row['median_ms']} | {row['p95_ms']} | {row['max_ms']} | "
                     f"{image} | {row.get('pixels', '-')} | {found} |")
    if result.get("encoders"):
        lines += ["", "| bitmap | render ms | " + " | ".join(
            f"{name} ms / KB" for name in ENCODERS) + " |",
                  "|---|---|" + "---|" * len(ENCODERS)]
        for key, row in result["encoders"].items():
            cells = " | ".join(f"{row[n]['encode_ms_median']} / {row[n]['kb_median']}"
                               for n in ENCODERS)
            lines.append(f"| {key} | {row['render_ms_median']} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark, write the JSON result, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pdf", type=Path, default=NIST_64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/viewer.json"))
    parser.add_argument("--formats", action="store_true", help="compare image encoders too")
    args = parser.parse_args()
    log(f"chunking {args.pdf.name}")
    texts = passages(args.pdf)
    log(f"timing render_page on {len(texts)} pages")
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"), "pdf": args.pdf.name, "pages": len(texts),
        "pages_without_chunk": [p for p, t in texts.items() if not t], "rounds": args.rounds,
        "views": time_views(args.pdf, texts, args.rounds)}
    if args.formats:
        result["encoders"] = time_encoders(args.pdf, list(texts)[::4])
    result["under_bar"] = all(row["p95_ms"] < BAR_MS for row in result["views"].values())
    result["machine"] = machine()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))


if __name__ == "__main__":
    main()
