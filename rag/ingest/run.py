"""One ingest run: the chunks the reader sends (rag.ingest.reader) embedded and stored in shared
groups, each document committed once all its chunks are stored, or failed alone."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rag.errors import EmbeddingError, LoaderError, StoreError
from rag.ingest.originals import Originals
from rag.ingest.progress import Stage, Tracker
from rag.ingest.reader import Job, Reader
from rag.ingest.results import IngestResult, Status
from rag.schema import Chunk
from rag.sentences import sentence_spans

if TYPE_CHECKING:
    from rag.ingest.ingestor import Ingestor

_ENCODER_BATCH = 32  # texts per encoder call when the embedder does not say


class _Entry(NamedTuple):
    """A buffered chunk, with what the encoder and BM25 get of it (from the reader)."""

    job: Job
    chunk: Chunk
    text: str
    lexical: str


class Run:
    """One ingest run: takes the reader's events (rag.ingest.reader) and keeps a FIFO buffer of
    chunks from consecutive documents, embedded and stored a group at a time."""

    def __init__(self, ingestor: Ingestor, tracker: Tracker):
        self.ing = ingestor
        self.tracker = tracker
        self.jobs: list[Job] = []
        self.open: list[Job] = []  # begun, not yet committed or aborted
        self.buffer: list[_Entry] = []
        self.originals = Originals(ingestor.files)
        self.unflushed = 0  # chunks committed since the last flush

    def _progress(self, job: Job, stage: Stage) -> None:
        self.tracker.report(job.work, stage)

    def _finish(self, job: Job, result: IngestResult) -> None:
        result.seconds = round(job.seconds + job.read_seconds, 3)
        job.result = result
        self.ing.claims.release(job.source, self)
        self._progress(job, "done")

    def consume(self, reader: Reader) -> None:
        """Take the reader's events until its documents are done, then drain."""
        for event in reader.events():
            job = event.job
            assert job is not None
            if event.kind == "job":
                self.jobs.append(job)
            elif job.result is not None:  # failed by the run while the reader was at it
                continue
            elif event.kind == "skip":
                assert event.result is not None
                self._finish(job, event.result)
            elif event.kind == "begin":
                self.open.append(job)  # begun in the store with the first group holding it
            elif event.kind == "chunk":
                assert event.chunk is not None
                self._take(job, event.chunk, event.text, event.lexical)
            elif event.kind == "end":
                job.finished = True
                self._commit_ready()
            elif event.kind == "fail":
                assert isinstance(event.error, Exception)
                self._fail(job, event.error)
        self.drain()

    def _take(self, job: Job, chunk: Chunk, text: str, lexical: str) -> None:
        self.buffer.append(_Entry(job, chunk, text, lexical))
        job.buffered += 1
        if len(self.buffer) >= self.ing.batch_size:
            self._write_batch()

    def _fail(self, job: Job, exc: Exception) -> None:
        if job.result is not None:
            return
        self.buffer = [entry for entry in self.buffer if entry.job is not job]
        if job in self.open:
            self.open.remove(job)
            if job.begun:
                self.ing.store.abort_version(job.source, job.version)
        reason = exc.reason if isinstance(exc, LoaderError) else str(exc)
        pages = job.doc.pages if job.doc else None
        self._finish(job, IngestResult(job.source, "failed", pages, reason=reason))

    def _write_batch(self) -> None:
        batch, self.buffer = self.buffer, []
        if not batch:
            return
        started = time.perf_counter()
        keep = self._refuse_oversized(batch)
        if len(keep) < len(batch):
            batch = [batch[i] for i in keep]
        if not batch:
            return
        jobs = list(dict.fromkeys(entry.job for entry in batch))
        chunks = [entry.chunk for entry in batch]
        texts = [entry.text for entry in batch]
        lexical = [entry.lexical for entry in batch]
        try:
            with self.ing.turns.turn(lambda ahead: self._waiting(jobs, ahead)):
                started = time.perf_counter()  # the wait for the turn is not the files' time
                new = [job for job in jobs if not job.begun]
                self.ing.store.begin_versions([(j.source, j.version, j.source) for j in new])
                for job in new:
                    job.begun = True
                vectors, sentences = self._embed(batch, texts, jobs)
                for job in jobs:
                    self._progress(job, "storing")
                self.ing.store.insert_chunks(chunks, vectors, lexical,
                                             [entry.job.version for entry in batch], sentences)
        except (EmbeddingError, StoreError) as exc:
            self._charge([entry.job for entry in batch], started)
            for job in jobs:
                self._fail(job, exc)
            return
        self._charge([entry.job for entry in batch], started)
        for entry in batch:
            entry.job.work.stored += 1
            entry.job.buffered -= 1

    def _waiting(self, jobs: list[Job], ahead: int) -> None:
        """Report that the group waits for the encoder, with `ahead` runs before it."""
        for job in jobs:
            self.tracker.report(job.work, "waiting", ahead=ahead)

    def _refuse_oversized(self, batch: list[_Entry]) -> list[int]:
        """The positions in the batch of the chunks to write: documents that have a chunk too
        large to store each fail alone, with the reason, before anything is embedded."""
        problems = self.ing.store.oversized([entry.chunk for entry in batch],
                                            [entry.lexical for entry in batch])
        if not problems:
            return list(range(len(batch)))
        for job in dict.fromkeys(e.job for e in batch if e.job.source in problems):
            self._fail(job, StoreError(problems[job.source]))
        return [i for i, entry in enumerate(batch) if entry.job.source not in problems]

    def _embed(self, batch: list[_Entry], texts: list[str],
               jobs: list[Job]) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """The texts' vectors and their chunks' sentence vectors (None when the embedder makes
        none), asked of the encoder one of its batches at a time, longest text first (the
        order it would give the whole group itself), reporting each batch."""
        for job in jobs:
            self._progress(job, "embedding")
        step = max(int(getattr(self.ing.embedder, "batch_size", 0) or _ENCODER_BATCH), 1)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts = []
        sentences: list[np.ndarray] | None = [] if self.ing.embedder.makes_sentences else None
        for start in range(0, len(order), step):
            rows = order[start:start + step]
            chunk_texts = [batch[i].chunk.text for i in rows]
            vectors, pooled = self.ing.embedder.embed_sentences(
                [texts[i] for i in rows], [sentence_spans(t) for t in chunk_texts],
                [len(texts[i]) - len(t) for i, t in zip(rows, chunk_texts, strict=True)])
            parts.append(vectors)
            if sentences is not None and pooled is not None:
                sentences.extend(pooled)
            for i in rows:
                batch[i].job.work.embedded += 1
            for job in dict.fromkeys(batch[i].job for i in rows):
                self._progress(job, "embedding")
        vectors = np.concatenate(parts)
        ordered = np.empty_like(vectors)
        ordered[order] = vectors
        if sentences is None:
            return ordered, None
        by_text: list[np.ndarray] = [np.empty(0)] * len(texts)
        for i, own in zip(order, sentences, strict=True):
            by_text[i] = own
        return ordered, by_text

    @staticmethod
    def _charge(jobs: list[Job], started: float) -> None:
        """Share the time since `started` among the jobs, one share per entry."""
        share = (time.perf_counter() - started) / max(len(jobs), 1)
        for job in jobs:
            job.seconds += share

    def _commit_ready(self) -> None:
        """Commit, in one store switch, every document whose chunks are all written."""
        ready = [job for job in self.open if job.finished and not job.buffered]
        commits = []
        started = time.perf_counter()
        for job in ready:  # each keeps its original file first, or fails alone
            self.open.remove(job)
            doc = job.doc
            assert doc is not None
            reason = "no text to index" if job.work.stored == 0 else self.originals.keep(
                job.source, job.version, job.original, doc.sha256)
            if reason:
                if job.begun:
                    self.ing.store.abort_version(job.source, job.version)
                self._finish(job, IngestResult(job.source, "failed", doc.pages, reason=reason))
                continue
            commits.append((job, doc.info(job.source, job.work.stored)))
        if not commits:
            return
        try:
            self.ing.store.commit_versions([(info, job.version) for job, info in commits])
        except StoreError as exc:
            self._charge([job for job, _ in commits], started)
            self.originals.discard([(job.source, job.version) for job, _ in commits])
            for job, info in commits:
                self.ing.store.abort_version(job.source, job.version)
                self._finish(job, IngestResult(job.source, "failed", info.pages,
                                               reason=str(exc)))
            return
        self._charge([job for job, _ in commits], started)
        self.originals.keep_only([(job.source, job.version) for job, _ in commits])
        for job, info in commits:
            status: Status = "replaced" if job.replacing else "added"
            self._finish(job, IngestResult(job.source, status, info.pages, job.work.stored))
        self.unflushed += sum(info.chunks for _, info in commits)
        if self.ing.flush_chunks and self.unflushed >= self.ing.flush_chunks:
            self.ing.store.flush()
            self.unflushed = 0

    def drain(self) -> None:
        """Write what is buffered and commit every finished document."""
        self._write_batch()
        self._commit_ready()

    def abort_open(self) -> None:
        """Remove every begun, uncommitted version."""
        for job in self.open:
            if job.begun:
                self.ing.store.abort_version(job.source, job.version)
        self.open.clear()

    def results(self) -> list[IngestResult]:
        """One result per document, in input order."""
        return [job.result for job in self.jobs if job.result is not None]
