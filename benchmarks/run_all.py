"""Run every benchmark and write a Markdown summary: python -m benchmarks.run_all --out FILE."""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import encoders, ingestion, scifact
from benchmarks.common import MILVUS_DOCS, ROOT, SHARED, log, machine, make_embedder
from rag.embedding import LocalEmbedder
from rag.ingest import Ingestor
from rag.onnx_encoder import OnnxEncoder

INGEST_GROUP = inspect.signature(Ingestor).parameters["batch_size"].default
PUBLISHED = [
    ("BM25 (Anserini, flat)", 0.679), ("BM25 (BEIR paper)", 0.665),
    ("all-MiniLM-L6-v2 dense (MTEB)", 0.645), ("bge-small-en-v1.5 dense (MTEB)", 0.713),
]
PARTS = ("encoders", "ingestion", "scifact")
ENCODER_NAMES = {"torch": "sentence-transformers (torch)", "onnx": "ONNX Runtime fp32",
                 "onnx-int8": "ONNX Runtime int8"}


def prepare_onnx() -> dict[str, float]:
    """Export the fp32 and int8 ONNX models once, outside every timed section."""
    model_dir = make_embedder("torch").model_dir
    seconds = {}
    for quantized in (False, True):
        encoder = OnnxEncoder(model_dir, quantized=quantized)
        existed = encoder.model_path.exists()
        started = time.perf_counter()
        path = encoder.prepare()
        seconds["int8" if quantized else "fp32"] = round(time.perf_counter() - started, 1)
        log(f"ONNX model {'found' if existed else 'exported'}: {path}")
    return seconds


def _pct(part: float, total: float) -> str:
    return f"{part:.1f} s ({100 * part / total:.0f}%)" if total else f"{part:.1f} s"


def _rss(run: dict[str, Any]) -> str:
    """RSS of one ingest: with the model loaded, the range while ingesting, at the end."""
    rss = run["rss_mb"]
    during = [mb for chunks, mb in rss["samples"] if chunks > 0]
    text = f"{run['name']} {rss['model_loaded']} MB with the model loaded"
    if during:
        text += (f", {min(during):.0f}-{max(during):.0f} MB over {len(during)} samples while "
                 "ingesting")
    return text + f", {rss['end_of_ingest']} MB at the end"


def render(results: dict[str, Any], command: str) -> str:
    """The Markdown summary."""
    m = results["machine"]
    lines = [
        "# Benchmarks", "",
        f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gb']} GB "
        f"RAM), Python {m['python']}, torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
        f"pymilvus {m['pymilvus']} with Milvus Lite. Load average "
        f"{results['load_before']:.1f} before and {results['load_after']:.1f} after: the "
        "machine was shared, so absolute speeds are noisy; ratios are measured inside one run. "
        f"The whole run took {results['minutes']:.0f} min ("
        + ", ".join(f"{k} {v:.0f}" for k, v in results.get("part_minutes", {}).items())
        + ").", "",
        f"Rerun: `{command}`", "",
    ]
    if "ingestion" in results:
        runs = results["ingestion"]
        lines += [
            f"## Ingestion (encoder: {ENCODER_NAMES[results['runtime']]}, batches of "
            f"{results['batch_size']} in ingest groups of {INGEST_GROUP} "
            "chunks)", "",
            "| corpus | files | pages | chunks | wall | chunks/s | encoder alone, chunks/s | "
            "end-to-end / encoder | peak RSS |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in runs.values():
            lines.append(
                f"| {r['name']} | {r['files']} | {r['pages'] or '-'} | {r['chunks']} | "
                f"{r['seconds']:.0f} s | {r['chunks_per_s']} | {r['encoder_alone_chunks_per_s']} "
                f"| {r['e2e_over_encoder']:.2f} | {r['peak_rss_mb']:.0f} MB |")
        lines += ["", "Where the time goes (seconds, share of the wall time):", "",
                  "| stage | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        stages = list(next(iter(runs.values()))["breakdown_s"])
        for stage in stages:
            cells = [_pct(r["breakdown_s"].get(stage, 0.0), r["seconds"]) for r in runs.values()]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        lines += ["", "The encoder-alone rate re-embeds a sample of the same batches (same texts, "
                  "same batch size) after the ingest, with the store closed. Peak RSS is the "
                  "worker's VmHWM (Milvus Lite runs in the process). RSS: "
                  + "; ".join(_rss(r) for r in runs.values()) + ".", ""]
        small = results.get("small_documents")
        if small:
            lines += [
                f"Many small documents: {small['docs']} SciFact abstracts ({small['chunks']} "
                f"chunks) ingested in one run with a no-cost stand-in encoder, so only our code "
                f"and Milvus Lite are timed: {small['seconds']:.0f} s, "
                f"{small['ms_per_chunk']} ms per chunk; milliseconds per document, per "
                f"{small['window']} documents, as the store fills: "
                + " → ".join(str(v) for v in small["ms_per_doc_by_window"]) + ".", ""]
    if "encoders" in results:
        t = results["encoders"]["throughput"]
        q = results["encoders"].get("quality")
        lines += [
            "## Encoders", "",
            f"Throughput on the same {t['chunks']} SciFact chunks ({t['tokens']} tokens), median "
            f"of {t['runs']} interleaved runs; speed-up = median of the per-round ratios. "
            "Query embedding: one short query at a time.", "",
            "| encoder | chunks/s | speed-up vs torch | query embed p50 | cosine vs torch "
            "(min) |" + (f" nDCG@10 dense / hybrid ({q['docs']} docs) |" if q else ""),
            "|---|---|---|---|---|" + ("---|" if q else ""),
        ]
        for rt in encoders.RUNTIMES:
            r = t[rt]
            row = (f"| {ENCODER_NAMES[rt]} | {r['chunks_per_s']} | {r['speedup_vs_torch']:.2f}x "
                   f"| {r['query_embed_ms_p50']} ms | {r['cosine_vs_torch_min']:.4f} |")
            if q:
                row += f" {q[rt]['dense']['ndcg@10']:.4f} / {q[rt]['hybrid']['ndcg@10']:.4f} |"
            lines.append(row)
        if q:
            lines += ["", f"nDCG here is on a reduced SciFact corpus (all {q['docs']} documents: "
                      "every judged one plus seeded random others), so it is higher than on the "
                      "full corpus; it compares the encoders with each other only.", ""]
        else:
            lines.append("")
    if "scifact" in results:
        s = results["scifact"]
        quality = s["quality"]
        ing = s["ingest"]
        lines += [
            f"## Retrieval quality: SciFact test ({quality['hybrid']['queries']} queries)", "",
            f"Corpus: {ing['documents']} documents, {ing['chunks']} chunks, ingested in "
            f"{ing['seconds']:.0f} s ({ing['chunks_per_s']} chunks/s) with "
            f"{ENCODER_NAMES[s['runtime']]}. Documents are ranked by their best chunk.", "",
            "| method | nDCG@10 | Recall@10 | Recall@100 |", "|---|---|---|---|",
        ]
        for mode in ("dense", "bm25", "hybrid"):
            r = quality[mode]
            lines.append(f"| this project, {mode} | {r['ndcg@10']:.3f} | {r['recall@10']:.3f} | "
                         f"{r['recall@100']:.3f} |")
        if "tutorial" in s:
            r = s["tutorial"]
            lines.append(f"| seed tutorial (split on \"# \", whole pieces, dense) | "
                         f"{r['ndcg@10']:.3f} | {r['recall@10']:.3f} | {r['recall@100']:.3f} |")
        for name, value in PUBLISHED:
            lines.append(f"| published: {name} | {value:.3f} | | |")
        lines += ["", "## Query path", "",
                  f"p50 / p95 over {s['latency_small']['queries']} SciFact queries, hybrid "
                  f"search for the top {s['latency_small']['k']} from "
                  f"{s['latency_small']['candidates']} candidates per retriever. "
                  "\"To the LLM\" is from AnswerPipeline.ask() to the chat request arriving at "
                  "a loopback server.", "",
                  "| chunks | query embed | dense search | BM25 search | hybrid search, total "
                  "| dense ∥ BM25 (2 threads) | to the LLM: total | of which retrieval "
                  "| empty-KB check | prompt + HTTP |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for size in ("small", "large"):
            if f"latency_{size}" not in s:
                continue
            lat, llm = s[f"latency_{size}"], s[f"to_llm_{size}"]

            def cell(d: dict[str, float]) -> str:
                return f"{d['p50_ms']:.0f} / {d['p95_ms']:.0f} ms"

            lines.append(
                f"| {lat['chunks']:,} | {cell(lat['embed_query'])} | {cell(lat['search_dense'])} "
                f"| {cell(lat['search_bm25'])} | {cell(lat['hybrid_total'])} | "
                f"{cell(lat['dense_bm25_parallel'])} | "
                f"{cell(llm['to_first_byte'])} | {cell(llm['retriever_search'])} | "
                f"{cell(llm['empty_check'])} | {cell(llm['prompt_and_http'])} |")
        if "grow" in s:
            g = s["grow"]
            lines += ["", f"The {g['chunks']:,}-chunk store holds the SciFact chunks plus "
                      f"{g['inserted']:,} copies (same text, new ids, vectors perturbed by "
                      f"N(0, 0.01) noise) inserted through MilvusStore.insert_chunks at "
                      f"{g['rows_per_s']:,} rows/s, flushed in {g['flush_s']} s."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Run the selected benchmarks, print progress, write the summary and the raw JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--resume", action="store_true",
                        help="keep the parts already in results.json beside --out")
    parser.add_argument("--quick", action="store_true",
                        help="about 20 min: SciFact cut to 1,000 documents, no tutorial run, "
                             "no encoder quality check, fewer re-embedded batches")
    parser.add_argument("--runtime", choices=encoders.RUNTIMES,
                        default=LocalEmbedder().runtime,
                        help="encoder for the ingestion and SciFact parts (default: the app's)")
    parser.add_argument("--replay", type=float, default=0.2,
                        help="share of the ingest's embed batches re-embedded alone")
    parser.add_argument("--pdf-pages", type=int, default=ingestion.MIN_PDF_PAGES)
    parser.add_argument("--small-docs", type=int, default=5183,
                        help="SciFact abstracts in the many-small-documents overhead run (0: off)")
    parser.add_argument("--sample-chunks", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quality-docs", type=int, default=400,
                        help="SciFact documents per encoder in the encoder quality check (0: off)")
    parser.add_argument("--latency-queries", type=int, default=60)
    parser.add_argument("--ttfb-queries", type=int, default=30)
    parser.add_argument("--grow-to", type=int, default=100_000)
    parser.add_argument("--no-tutorial", action="store_true")
    parser.add_argument("--docs", type=Path, default=MILVUS_DOCS,
                        help="the Markdown corpus of the ingestion benchmark")
    parser.add_argument("--scifact-docs", type=int, default=0,
                        help="cut the SciFact corpus to this many documents (0: all)")
    args = parser.parse_args()
    if args.quick:
        args.scifact_docs = args.scifact_docs or 1000
        args.no_tutorial = True
        args.quality_docs = 0
        args.replay = 0.1
    if not SHARED.is_dir():
        raise SystemExit(f"shared data not found at {SHARED}")
    command = "python -m benchmarks.run_all " + shlex.join(
        a if not a.startswith(str(ROOT)) else str(Path(a).relative_to(ROOT))
        for a in sys.argv[1:])
    raw = args.out.with_name("results.json")
    started = time.perf_counter()
    results: dict[str, Any] = {}
    if args.resume and raw.exists():
        results = json.loads(raw.read_text(encoding="utf-8"))
        log(f"resuming: keeping {', '.join(p for p in PARTS if p in results)} from {raw}")
    results.update({
        "date": dt.date.today().isoformat(), "machine": machine(), "runtime": args.runtime,
        "batch_size": make_embedder("onnx").batch_size,
        "args": vars(args) | {"out": str(args.out), "docs": str(args.docs)},
    })
    results.setdefault("part_minutes", {})
    results.setdefault("load_before", results["machine"]["load_average"][0])
    results["onnx_export_s"] = prepare_onnx()

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")

    for part in args.only:
        if part in results:
            continue
        begun = time.perf_counter()
        if part == "encoders":
            results[part] = encoders.run(args.sample_chunks, args.runs, args.quality_docs)
        elif part == "ingestion":
            results[part] = run_ingestion(args)
            if args.small_docs:
                log(f"ingestion: {args.small_docs} small documents, our code alone")
                results["small_documents"] = ingestion.many_small_documents(args.small_docs)
        else:
            dataset = encoders.subset(args.scifact_docs) if args.scifact_docs else None
            results[part] = scifact.run(args.runtime, args.latency_queries, args.ttfb_queries,
                                        args.grow_to, tutorial=not args.no_tutorial,
                                        dataset=dataset)
        results["part_minutes"][part] = round((time.perf_counter() - begun) / 60, 1)
        save()
    results["minutes"] = sum(results["part_minutes"].values())
    results["load_after"] = os.getloadavg()[0]
    save()
    args.out.write_text(render(results, command), encoding="utf-8")
    log(f"wrote {args.out} and {raw} ({(time.perf_counter() - started) / 60:.1f} min)")


def run_ingestion(args: argparse.Namespace) -> dict[str, Any]:
    """The Markdown corpus and a large PDF, each ingested in its own subprocess."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        pdf = work / "large.pdf"
        pages = ingestion.build_large_pdf(pdf, args.pdf_pages)
        log(f"ingestion: built a {pages}-page PDF ({pdf.stat().st_size / 1e6:.1f} MB)")
        for name, path in ((args.docs.name, args.docs), (f"{pages}-page PDF", pdf)):
            log(f"ingestion: {name} in a subprocess")
            r = ingestion.run(name, path, args.runtime, args.replay, work)
            out[name] = r
            log(f"ingestion: {name}: {r['chunks']} chunks in {r['seconds']}s, "
                f"{r['chunks_per_s']} chunks/s, encoder alone "
                f"{r['encoder_alone_chunks_per_s']}, peak RSS {r['peak_rss_mb']} MB")
    return out


if __name__ == "__main__":
    main()
