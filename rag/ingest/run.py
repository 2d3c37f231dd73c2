"""One ingest run: documents read in order, their chunks embedded and stored in shared groups,
each document committed once all its chunks are stored, or failed alone."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.chunking import chunk_sections
from rag.errors import EmbeddingError, LoaderError, StoreError
from rag.ingest.originals import Original, Originals
from rag.ingest.progress import FileWork, Stage, Tracker
from rag.ingest.results import IngestResult, Status, check_name, displayable, embedding_text
from rag.lexical import analyze
from rag.loading import LoadedDocument
from rag.schema import Chunk, DocumentInfo, Section
from rag.sentences import sentence_spans

if TYPE_CHECKING:
    from rag.ingest.ingestor import Ingestor

_ENCODER_BATCH = 32  # texts per encoder call when the embedder does not say


@dataclass(slots=True, eq=False)
class _Job:
    work: FileWork
    doc: LoadedDocument | None = None
    version: str = ""
    replacing: bool = False
    begun: bool = False
    result: IngestResult | None = None
    buffered: int = 0
    finished: bool = False
    seconds: float = 0.0  # this file's own time so far
    reading_since: float | None = None  # while its sections are being read and chunked
    original: Original | None = None  # the file (or content) kept with it, rag.files

    @property
    def source(self) -> str:
        return self.work.source


class Run:
    """One ingest run: a FIFO buffer of chunks from consecutive documents."""

    def __init__(self, ingestor: Ingestor, tracker: Tracker):
        self.ing = ingestor
        self.tracker = tracker
        self.jobs: list[_Job] = []
        self.open: list[_Job] = []  # begun, not yet committed or aborted
        self.buffer: list[tuple[_Job, Chunk]] = []
        self.by_sha: dict[str, str] = {}  # content seen in this run -> its document name
        self.sources: set[str] = set()  # document names seen in this run
        self.stored: dict[str, DocumentInfo] | None = None  # the store's documents at the start
        self.stored_by_sha: dict[str, DocumentInfo] = {}
        self.originals = Originals(ingestor.files)

    def _progress(self, job: _Job, stage: Stage) -> None:
        self.tracker.report(job.work, stage)

    def _finish(self, job: _Job, result: IngestResult) -> None:
        self._stop_reading(job)
        result.seconds = round(job.seconds, 3)
        job.result = result
        self._progress(job, "done")

    @staticmethod
    def _stop_reading(job: _Job) -> None:
        if job.reading_since is not None:
            job.seconds += time.perf_counter() - job.reading_since
            job.reading_since = None

    def add(self, index: int, source: str, loader: Callable[[], LoadedDocument],
            original: Original | None = None) -> None:
        job = _Job(self.tracker.work(index, displayable(source)),
                   reading_since=time.perf_counter(), original=original)
        self.jobs.append(job)
        self._progress(job, "parsing")
        try:
            check_name(source)
            job.doc = loader()
            job.work.kind, job.work.pages = job.doc.kind, job.doc.pages
            if self._skip(job):
                return
            job.version = hashlib.sha256(f"{source}\0{job.doc.sha256}".encode()).hexdigest()[:32]
            self.open.append(job)  # begun in the store with the first batch holding its chunks
            for chunk in chunk_sections(
                self._reading(job), doc_id=source, version=job.version, source=source,
                count_tokens=self.ing.embedder.count_tokens,
                max_tokens=self.ing.chunk_tokens, overlap=self.ing.chunk_overlap,
            ):
                self._check_count(job)
                self.buffer.append((job, chunk))
                job.buffered += 1
                job.work.made += 1
                if len(self.buffer) >= self.ing.batch_size:
                    self._stop_reading(job)
                    self._write_batch()
                    if job.result is not None:  # the batch failed, and this file with it
                        return
                    job.reading_since = time.perf_counter()
        except (LoaderError, EmbeddingError, StoreError) as exc:
            self._fail(job, exc)
            return
        self._stop_reading(job)
        job.finished = job.work.read = True
        self._commit_ready()

    def _check_count(self, job: _Job) -> None:
        """Raise LoaderError when the document would have more chunks than the limit."""
        limit = self.ing.max_chunks_per_file
        if job.work.made >= limit:
            raise LoaderError(job.source, f"the file makes more than {limit} chunks (the limit, "
                              "MAX_CHUNKS_PER_FILE); split it, or raise MAX_CHUNKS_PER_FILE")

    def _reading(self, job: _Job) -> Iterator[Section]:
        """The document's sections, reporting each page as it is read."""
        assert job.doc is not None
        for section in job.doc.sections:
            if section.page is not None and section.page != job.work.page:
                job.work.page = section.page
                self._progress(job, "parsing")
            yield section

    def _skip(self, job: _Job) -> bool:
        doc = job.doc
        assert doc is not None
        if job.source in self.sources:
            self._finish(job, IngestResult(job.source, "skipped", doc.pages,
                                           reason="listed twice"))
            return True
        self.sources.add(job.source)
        if self.stored is None:  # one read of the document list per run, not one per file
            self.stored = {d.doc_id: d for d in self.ing.store.list_documents()}
            self.stored_by_sha = {d.sha256: d for d in self.stored.values()}
        existing = self.stored.get(job.source)
        twin = self.stored_by_sha.get(doc.sha256)
        job.replacing = existing is not None
        if existing is not None and existing.sha256 == doc.sha256:
            self.originals.backfill(existing, job.original)
            self._finish(job, IngestResult(job.source, "skipped", existing.pages,
                                           existing.chunks, reason="unchanged"))
            return True
        if twin is not None and twin.doc_id != job.source:
            self._finish(job, IngestResult(job.source, "skipped", twin.pages, twin.chunks,
                                           reason=f"same content as {twin.source}"))
            return True
        earlier = self.by_sha.setdefault(doc.sha256, job.source)
        if earlier != job.source:
            self._finish(job, IngestResult(job.source, "skipped", doc.pages,
                                           reason=f"same content as {earlier}"))
            return True
        return False

    def _fail(self, job: _Job, exc: Exception) -> None:
        self.buffer = [(j, c) for j, c in self.buffer if j is not job]
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
        texts = [embedding_text(c) for _, c in batch]
        lexical = [analyze(t) for t in texts]
        keep = self._refuse_oversized(batch, lexical)
        if len(keep) < len(batch):
            batch = [batch[i] for i in keep]
            texts = [texts[i] for i in keep]
            lexical = [lexical[i] for i in keep]
        if not batch:
            return
        jobs = list(dict.fromkeys(j for j, _ in batch))
        chunks = [c for _, c in batch]
        try:
            new = [job for job in jobs if not job.begun]
            self.ing.store.begin_versions([(j.source, j.version, j.source) for j in new])
            for job in new:
                job.begun = True
            vectors, sentences = self._embed(batch, texts, jobs)
            for job in jobs:
                self._progress(job, "storing")
            self.ing.store.insert_chunks(chunks, vectors, lexical,
                                         [j.version for j, _ in batch], sentences)
        except (EmbeddingError, StoreError) as exc:
            self._charge([j for j, _ in batch], started)
            for job in jobs:
                self._fail(job, exc)
            return
        self._charge([j for j, _ in batch], started)
        for job, _ in batch:
            job.work.stored += 1
            job.buffered -= 1

    def _refuse_oversized(self, batch: list[tuple[_Job, Chunk]],
                          lexical: list[str]) -> list[int]:
        """The positions in the batch of the chunks to write: documents that have a chunk too
        large to store each fail alone, with the reason, before anything is embedded."""
        problems = self.ing.store.oversized([c for _, c in batch], lexical)
        if not problems:
            return list(range(len(batch)))
        for job in dict.fromkeys(j for j, _ in batch if j.source in problems):
            self._fail(job, StoreError(problems[job.source]))
        return [i for i, (j, _) in enumerate(batch) if j.source not in problems]

    def _embed(self, batch: list[tuple[_Job, Chunk]], texts: list[str],
               jobs: list[_Job]) -> tuple[np.ndarray, list[np.ndarray] | None]:
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
            chunk_texts = [batch[i][1].text for i in rows]
            vectors, pooled = self.ing.embedder.embed_sentences(
                [texts[i] for i in rows], [sentence_spans(t) for t in chunk_texts],
                [len(texts[i]) - len(t) for i, t in zip(rows, chunk_texts, strict=True)])
            parts.append(vectors)
            if sentences is not None and pooled is not None:
                sentences.extend(pooled)
            for i in rows:
                batch[i][0].work.embedded += 1
            for job in dict.fromkeys(batch[i][0] for i in rows):
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
    def _charge(jobs: list[_Job], started: float) -> None:
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
