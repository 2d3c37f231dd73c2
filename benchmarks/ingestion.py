"""Ingestion benchmark: end-to-end throughput, a per-stage breakdown and peak memory.

Each corpus is ingested in its own subprocess (`python -m benchmarks.ingestion --worker ...`), so
its peak RSS is its own (Milvus Lite 3 runs inside the process). The peak is VmHWM of the worker:
ru_maxrss would not do, as Linux carries the parent's peak over fork and exec into the child's
ru_maxrss. The worker times every stage by
wrapping the functions rag.ingest calls (load, the lazy sections, chunk_sections, count_tokens,
embed, analyze, every store method), then re-embeds a sample of the very batches the ingest sent
to the encoder, alone, with the store closed: the encoder's own throughput on the same texts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PDFS,
    ROOT,
    HashEmbedder,
    Stopwatch,
    TimedEmbedder,
    TimedStore,
    log,
    make_embedder,
    open_store,
    rss_mb,
)

MIN_PDF_PAGES = 600


def build_large_pdf(target: Path, min_pages: int = MIN_PDF_PAGES) -> int:
    """Join the shared PDFs (not the broken edge-* ones) repeatedly into one file; its pages."""
    from pypdf import PdfReader, PdfWriter

    sources = sorted(p for p in PDFS.glob("*.pdf") if not p.name.startswith("edge-"))
    writer = PdfWriter()
    pages = 0
    while pages < min_pages:
        for path in sources:
            reader = PdfReader(path)
            writer.append(reader)
            pages += len(reader.pages)
            if pages >= min_pages:
                break
    with target.open("wb") as fh:
        writer.write(fh)
    return pages


def run(name: str, path: Path, runtime: str, replay_fraction: float, workdir: Path,
        chats: float = 0.0) -> dict:
    """Ingest `path` in a subprocess; its measurements plus the peak RSS the kernel reports."""
    out = workdir / f"ingest-{name}.json"
    command = [sys.executable, "-m", "benchmarks.ingestion", "--worker", "--name", name,
               "--path", str(path), "--runtime", runtime, "--replay", str(replay_fraction),
               "--json", str(out), "--chats", str(chats)]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"ingestion worker for {name} exited with {completed.returncode}")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["process_seconds"] = round(time.perf_counter() - started, 1)
    return result


def many_small_documents(docs: int, window: int = 200) -> dict[str, Any]:
    """Per-document cost of our ingest code alone (no-cost encoder), as the store fills up.

    SciFact abstracts (about 2.3 chunks each) are ingested in one run; a cost that grows with
    the store (per-document scans of Milvus Lite's unsealed rows) shows as rising ms/doc.
    """
    from benchmarks.encoders import subset
    from rag.evaluation import ingest_corpus
    from rag.ingest import Ingestor

    dataset = subset(docs)
    embedder = HashEmbedder(make_embedder("onnx"))
    marks: list[float] = []

    def progress(p: Any) -> None:
        if p.stage == "done" and p.index % window == 0:
            marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="bench-small-") as tmp:
        store = open_store(Path(tmp), embedder)  # type: ignore[arg-type]
        ingestor = Ingestor(store, embedder)  # type: ignore[arg-type]
        started = time.perf_counter()
        results = ingest_corpus(ingestor, dataset, progress=progress)
        total = time.perf_counter() - started
        store.close()
    edges = [started, *marks]
    per_doc = [round(1000 * (b - a) / window) for a, b in itertools.pairwise(edges)]
    chunks = sum(r.chunks for r in results)
    log(f"  many small documents: {total:.0f}s, ms/doc per {window}: {per_doc}")
    return {"docs": len(dataset.keep), "window": window, "seconds": round(total, 1),
            "chunks": chunks, "ms_per_doc_by_window": per_doc,
            "ms_per_chunk": round(1000 * total / max(chunks, 1), 1)}


def _instrument(watch: Stopwatch) -> None:
    """Time what rag.ingest calls: load, lazy sections, chunking, BM25 analysis (patched where
    rag.ingest.ingestor and rag.ingest.reader look them up)."""
    import rag.ingest.ingestor as ingestor
    import rag.ingest.reader as reader

    load, chunk_sections, analyze = ingestor.load, reader.chunk_sections, reader.analyze
    timed_load = watch.wrap("load", load)

    def load_timed(*args: Any, **kwargs: Any) -> Any:
        doc = timed_load(*args, **kwargs)
        doc.sections = watch.iterate("sections", iter(doc.sections))
        return doc

    def chunk_timed(sections: Any, **kwargs: Any) -> Any:
        return watch.iterate("chunk_sections", chunk_sections(sections, **kwargs))

    ingestor.load = load_timed
    reader.chunk_sections = chunk_timed
    reader.analyze = watch.wrap("analyze", analyze)


def _breakdown(watch: Stopwatch, total: float) -> dict[str, float]:
    """Seconds per stage. The reader thread's stages (parsing, chunking, token counting, BM25
    analysis) run beside the run's (embedding, storing); nested timings are subtracted. "run
    thread: rest" is the wall time the run's thread spent outside the encoder and the store:
    mostly waiting for the reader."""
    s = watch.seconds
    store = {k: v for k, v in s.items() if k.startswith("store.")}
    stages = {
        "reader: parse (read, open, extract text)": s["load"] + s["sections"],
        "reader: chunking (python)": s["chunk_sections"] - s["sections"] - s["count_tokens"],
        "reader: token counting (chunker)": s["count_tokens"],
        "reader: BM25 analysis": s["analyze"],
        "run: embed": s["embed"],
        "run: Milvus insert": store.pop("store.insert_chunks", 0.0),
        "run: Milvus flush": store.pop("store.flush", 0.0),
        "run: Milvus bookkeeping (version markers, document lookups)": sum(store.values()),
    }
    stages["run: rest (waiting for the reader, our code)"] = total - sum(
        v for k, v in stages.items() if k.startswith("run:"))
    return {k: round(v, 2) for k, v in stages.items()}


class ChatLoad:
    """Questions asked through the answer pipeline (no LLM: sources only) while an ingest runs,
    one every `interval` seconds; the seconds until each one's sources event."""

    def __init__(self, store: Any, embedder: Any, interval: float) -> None:
        import threading

        from rag.evaluation import load_questions
        from rag.kb import KnowledgeBase
        from rag.pipeline import AnswerPipeline
        from rag.settings import Settings

        kb = KnowledgeBase(Settings())  # the app's retriever, on this store and encoder
        kb.store, kb.embedder, kb.reranker = store, embedder, None
        self.pipeline = AnswerPipeline(kb.retriever, None, top_k=kb.settings.top_k)
        self.questions = [q.question for q in
                          load_questions(ROOT / "benchmarks" / "qa" / "milvus_docs.jsonl")]
        self.interval = interval
        self.seconds: list[float] = []
        self.errors: list[str] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._ask, daemon=True)

    def _ask(self) -> None:
        from rag.events import ErrorEvent, SourcesEvent

        for question in itertools.cycle(self.questions):
            if self.done.wait(self.interval):
                return
            started = time.perf_counter()
            for event in self.pipeline.ask(question):
                if isinstance(event, SourcesEvent):
                    self.seconds.append(time.perf_counter() - started)
                    break
                if isinstance(event, ErrorEvent):
                    self.errors.append(event.message)
                    break

    def summary(self) -> dict[str, Any]:
        """Count, median and p95 of the seconds to first sources, in milliseconds."""
        import numpy as np

        values = np.array(self.seconds or [float("nan")]) * 1000
        return {"questions": len(self.seconds), "errors": self.errors[:3],
                "first_sources_ms_p50": round(float(np.median(values)), 1),
                "first_sources_ms_p95": round(float(np.percentile(values, 95)), 1),
                "first_sources_ms_max": round(float(values.max()), 1)}


def worker(name: str, path: Path, runtime: str, replay_fraction: float,
           chats: float = 0.0) -> dict[str, Any]:
    """Ingest one corpus with timing wrappers; then re-embed sampled batches alone. With
    `chats` (seconds), a question is asked every `chats` seconds during the ingest."""
    from rag.ingest import Ingestor
    from rag.settings import Settings

    settings = Settings()
    rss_start = rss_mb()
    loaded = time.perf_counter()
    embedder = make_embedder(runtime, batch_size=settings.embedding_batch_size)
    embedder.embed(["warm-up"])
    model_seconds = time.perf_counter() - loaded
    rss_model = rss_mb()
    watch = Stopwatch()
    timed = TimedEmbedder(embedder, watch)
    _instrument(watch)
    samples: list[tuple[int, float]] = []  # (chunks stored so far, RSS MB)
    state = {"chunks": 0, "next_log": 0.0}

    def progress(p: Any) -> None:
        if p.stage == "done":
            state["chunks"] += p.chunks
        now = time.perf_counter()
        if now >= state["next_log"]:
            samples.append((state["chunks"] + (p.chunks if p.stage != "done" else 0), rss_mb()))
            where = f"page {p.page}/{p.pages}" if p.pages else f"file {p.index}/{p.total}"
            log(f"  {name}: {where}, {samples[-1][0]} chunks, RSS {samples[-1][1]:.0f} MB")
            state["next_log"] = now + 15

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        store = open_store(Path(tmp), embedder)
        ingestor = Ingestor(TimedStore(store, watch), timed,  # type: ignore[arg-type]
                            chunk_tokens=settings.chunk_tokens,
                            chunk_overlap=settings.chunk_overlap)
        chat_load = ChatLoad(store, embedder, chats) if chats else None
        if chat_load is not None:
            chat_load.thread.start()
        started = time.perf_counter()
        results = ingestor.ingest_paths([path], progress=progress)
        total = time.perf_counter() - started
        if chat_load is not None:
            chat_load.done.set()
            chat_load.thread.join()
        rss_end = rss_mb()
        stored = store.count_chunks()
        store.close()

    chunks = sum(r.chunks for r in results)
    failed = [f"{r.source}: {r.reason}" for r in results if r.status == "failed"]
    step = max(1, round(1 / replay_fraction))
    sampled = timed.batches[::step]
    sampled_spans = timed.spans[::step]
    log(f"  {name}: re-embedding {len(sampled)} of {len(timed.batches)} batches alone")
    alone = 0.0
    for (texts, _), spans in zip(sampled, sampled_spans, strict=True):
        begun = time.perf_counter()
        if spans is None:
            embedder.embed(texts)
        else:  # as the ingest did: with the sentence vectors pooled from the same encoding
            embedder.embed_sentences(texts, *spans)
        alone += time.perf_counter() - begun
    sampled_chunks = sum(len(t) for t, _ in sampled)
    in_ingest = sum(s for _, s in sampled)
    tokens = sum(sum(embedder.count_tokens(t)) for t, _ in timed.batches)
    e2e = chunks / total
    encoder_alone = sampled_chunks / alone
    return {
        "name": name, "runtime": runtime, "files": len(results), "failed": failed,
        "pages": sum(r.pages or 0 for r in results), "chunks": chunks, "stored": stored,
        "embedded_tokens": tokens, "seconds": round(total, 1),
        "chunks_per_s": round(e2e, 1), "encoder_alone_chunks_per_s": round(encoder_alone, 1),
        "e2e_over_encoder": round(e2e / encoder_alone, 3),
        "replayed_batches": len(sampled), "replayed_chunks": sampled_chunks,
        "replay_in_ingest_s": round(in_ingest, 1), "replay_alone_s": round(alone, 1),
        "breakdown_s": _breakdown(watch, total),
        "calls": dict(watch.calls), "model_load_s": round(model_seconds, 1),
        "peak_rss_mb": round(rss_mb("VmHWM")),
        "chats": chat_load.summary() if chat_load is not None else None,
        "rss_mb": {"start": round(rss_start), "model_loaded": round(rss_model),
                   "end_of_ingest": round(rss_end), "samples": samples},
    }


def main() -> None:
    """Worker entry point."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--runtime", default="onnx")
    parser.add_argument("--replay", type=float, default=0.25)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--chats", type=float, default=0.0,
                        help="ask a question every this many seconds during the ingest")
    args = parser.parse_args()
    result = worker(args.name, args.path, args.runtime, args.replay, args.chats)
    args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
