"""Ingestion at scale: end-to-end throughput over the encoder's own, for Markdown, a big PDF and
a big Word file, plus the chats' time to first sources during a long ingest.

    python -m benchmarks.pipeline [--chats 1.0] [--json benchmarks/pipeline.json]

Each corpus is ingested in its own subprocess (benchmarks.ingestion's worker), then every batch
the ingest sent to the encoder is embedded again alone, with the store closed (replay 1.0): the
ratio of the two rates is read inside one process, on the same texts. The Milvus docs are then
ingested once more while a question is asked every `--chats` seconds through the answer
pipeline (sources only, no LLM); that run's ratio is not the one to read, its latencies are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import ingestion
from benchmarks.common import MILVUS_DOCS, ROOT, SHARED, log

DOCX = SHARED / "office" / "handbook-872p.docx"


def corpora(work: Path, pdf_pages: int) -> list[tuple[str, Path]]:
    """(name, path) of the three corpora; the big PDF is built in `work`."""
    pdf = work / "large.pdf"
    pages = ingestion.build_large_pdf(pdf, pdf_pages)
    log(f"pipeline: built a {pages}-page PDF ({pdf.stat().st_size / 1e6:.1f} MB)")
    return [("Milvus docs (269 Markdown files)", MILVUS_DOCS),
            (f"the shared PDFs joined ({pages} pages)", pdf),
            ("handbook-872p.docx (Word, 872 pages)", DOCX)]


def main() -> None:
    """Run the corpora and the chat run; write the JSON and print the README table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "pipeline.json")
    parser.add_argument("--runtime", default="onnx")
    parser.add_argument("--pdf-pages", type=int, default=ingestion.MIN_PDF_PAGES)
    parser.add_argument("--chats", type=float, default=1.0,
                        help="seconds between questions in the chat run (0: no chat run)")
    args = parser.parse_args()
    started = time.perf_counter()
    out: dict[str, Any] = {"date": dt.date.today().isoformat(),
                           "load_before": os.getloadavg()[0], "runs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        runs = corpora(work, args.pdf_pages)
        if args.chats:
            runs.append(("Milvus docs, with a question every "
                         f"{args.chats:g} s", MILVUS_DOCS))
        for i, (name, path) in enumerate(runs):
            chats = args.chats if i == 3 else 0.0
            log(f"pipeline: {name}")
            r = ingestion.run(f"run{i}", path, args.runtime, 1.0, work, chats=chats)
            r["name"] = name
            out["runs"][name] = r
            log(f"pipeline: {name}: {r['chunks']} chunks in {r['seconds']} s, "
                f"{r['chunks_per_s']} chunks/s, encoder alone {r['encoder_alone_chunks_per_s']}"
                f" ({r['e2e_over_encoder']}), peak RSS {r['peak_rss_mb']} MB"
                + (f", chats {r['chats']}" if r.get("chats") else ""))
    out["minutes"] = round((time.perf_counter() - started) / 60, 1)
    out["load_after"] = os.getloadavg()[0]
    args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(render(out))


def render(out: dict[str, Any]) -> str:
    """The README table."""
    lines = ["| corpus | chunks | wall | chunks/s | encoder alone | end-to-end / encoder "
             "| reader thread (parse + chunk) | peak RSS | first sources p50 / p95 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in out["runs"].values():
        b = r["breakdown_s"]
        reader = sum(v for k, v in b.items() if k.startswith("reader:"))
        chats = r.get("chats")
        latency = (f"{chats['first_sources_ms_p50']:.0f} / {chats['first_sources_ms_p95']:.0f} "
                   f"ms ({chats['questions']} questions)" if chats else "-")
        lines.append(f"| {r['name']} | {r['chunks']:,} | {r['seconds']:.0f} s | "
                     f"{r['chunks_per_s']} | {r['encoder_alone_chunks_per_s']} | "
                     f"**{r['e2e_over_encoder']:.2f}** | {reader:.1f} s | "
                     f"{r['peak_rss_mb'] / 1024:.2f} GB | {latency} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
