"""Ingestion: load, chunk, embed and store files; each file is all-or-nothing.

Chunks of consecutive files share embedding batches, so many small files cost no more to encode
than one big one. A file becomes visible only when all its chunks are stored (see rag.store).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rag.chunking import chunk_sections
from rag.embedding import Embedder
from rag.errors import EmbeddingError, LoaderError, StoreError
from rag.lexical import analyze
from rag.loading import LoadedDocument, iter_files, load
from rag.schema import Chunk, DocumentInfo
from rag.store import MAX_NAME_BYTES, MilvusStore

Status = Literal["added", "replaced", "skipped", "failed"]
Stage = Literal["parsing", "embedding", "storing", "done"]


@dataclass(slots=True)
class IngestResult:
    """What happened to one file."""

    source: str
    status: Status
    pages: int | None = None
    chunks: int = 0
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(slots=True)
class Progress:
    """Where an ingest run is: file `index` of `total`, at `stage`, `chunks` of it stored."""

    index: int
    total: int
    source: str
    stage: Stage
    chunks: int = 0
    page: int | None = None
    pages: int | None = None


ProgressCallback = Callable[[Progress], None]
DocumentSource = tuple[str, Callable[[], LoadedDocument]]


def displayable(source: str) -> str:
    """The name as it can be shown: bytes that were not UTF-8 become U+FFFD."""
    return source.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def check_name(source: str) -> None:
    """Raise LoaderError for a document name the store cannot keep, before any work is done."""
    shown = displayable(source)
    if shown != source:
        raise LoaderError(shown, "the file name is not valid UTF-8; rename the file and add it "
                                 "again")
    size = len(source.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise LoaderError(shown[:80] + "…", f"the name is {size} bytes long (with its folders); "
                          f"at most {MAX_NAME_BYTES} are kept, so shorten it")


def embedding_text(chunk: Chunk) -> str:
    """What the encoder and BM25 see: the heading path, then the chunk text."""
    heading = chunk.heading_path
    return f"{heading}\n{chunk.text}" if heading else chunk.text


@dataclass(slots=True, eq=False)
class _Job:
    index: int
    source: str
    started: float
    doc: LoadedDocument | None = None
    version: str = ""
    replacing: bool = False
    begun: bool = False
    stored: int = 0
    page: int | None = None
    result: IngestResult | None = None
    buffered: int = 0
    finished: bool = False


class Ingestor:
    """Turns files into stored, searchable chunks."""

    def __init__(self, store: MilvusStore, embedder: Embedder, *, chunk_tokens: int = 200,
                 chunk_overlap: int = 40, batch_size: int = 256) -> None:
        """`batch_size` chunks are embedded and stored together. The embedder sorts them by
        length into its own smaller batches, so a larger group pads less (ONNX fp32: 26 chunks/s
        in groups of 32, 34 in groups of 256)."""
        self.store = store
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.batch_size = batch_size

    def ingest_paths(self, paths: Iterable[Path | str],
                     progress: ProgressCallback | None = None) -> list[IngestResult]:
        """Ingest files and folders (recursively); a bad file fails alone."""
        files = list(iter_files(Path(p) for p in paths))
        sources: list[DocumentSource] = [
            (source, lambda path=path, source=source: load(path, source))
            for path, source in files
        ]
        return self.ingest_documents(sources, progress=progress)

    def ingest_documents(self, documents: Iterable[DocumentSource] | list[DocumentSource],
                         progress: ProgressCallback | None = None) -> list[IngestResult]:
        """Ingest (source, loader) pairs in order, then flush; returns one result per document."""
        run = _Run(self, progress, total=len(documents) if isinstance(documents, list) else 0)
        try:
            for index, (source, loader) in enumerate(documents, start=1):
                run.add(index, source, loader)
            run.drain()
        except BaseException:
            run.abort_open()  # Ctrl-C or a crash: nothing half-stored stays visible
            raise
        self.store.flush()
        return run.results()


class _Run:
    """One ingest run: a FIFO buffer of chunks from consecutive documents."""

    def __init__(self, ingestor: Ingestor, progress: ProgressCallback | None, total: int):
        self.ing = ingestor
        self.report = progress or (lambda _p: None)
        self.total = total
        self.jobs: list[_Job] = []
        self.open: list[_Job] = []  # begun, not yet committed or aborted
        self.buffer: list[tuple[_Job, Chunk]] = []
        self.by_sha: dict[str, str] = {}  # content seen in this run -> its document name
        self.sources: set[str] = set()  # document names seen in this run
        self.stored: dict[str, DocumentInfo] | None = None  # the store's documents at the start
        self.stored_by_sha: dict[str, DocumentInfo] = {}

    def _progress(self, job: _Job, stage: Stage) -> None:
        pages = job.doc.pages if job.doc else None
        self.report(Progress(job.index, max(self.total, job.index), job.source, stage,
                             job.stored, job.page, pages))

    def _finish(self, job: _Job, result: IngestResult) -> None:
        result.seconds = round(time.perf_counter() - job.started, 3)
        job.result = result
        self._progress(job, "done")

    def add(self, index: int, source: str, loader: Callable[[], LoadedDocument]) -> None:
        job = _Job(index, displayable(source), time.perf_counter())
        self.jobs.append(job)
        self._progress(job, "parsing")
        try:
            check_name(source)
            job.doc = loader()
            if self._skip(job):
                return
            job.version = hashlib.sha256(f"{source}\0{job.doc.sha256}".encode()).hexdigest()[:32]
            self.open.append(job)  # begun in the store with the first batch holding its chunks
            for chunk in chunk_sections(
                job.doc.sections, doc_id=source, version=job.version, source=source,
                count_tokens=self.ing.embedder.count_tokens,
                max_tokens=self.ing.chunk_tokens, overlap=self.ing.chunk_overlap,
            ):
                self.buffer.append((job, chunk))
                job.buffered += 1
                if len(self.buffer) >= self.ing.batch_size:
                    self._write_batch()
                    if job.result is not None:  # the batch failed, and this file with it
                        return
        except (LoaderError, EmbeddingError, StoreError) as exc:
            self._fail(job, exc)
            return
        job.finished = True
        self._commit_ready()

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
        jobs = list(dict.fromkeys(j for j, _ in batch))
        chunks = [c for _, c in batch]
        for job in jobs:
            job.page = max((c.page_end or c.page or 0 for j, c in batch if j is job), default=0)
            self._progress(job, "embedding")
        texts = [embedding_text(c) for c in chunks]
        try:
            new = [job for job in jobs if not job.begun]
            self.ing.store.begin_versions([(j.source, j.version, j.source) for j in new])
            for job in new:
                job.begun = True
            vectors = self.ing.embedder.embed(texts)
            for job in jobs:
                self._progress(job, "storing")
            self.ing.store.insert_chunks(chunks, vectors, [analyze(t) for t in texts],
                                         [j.version for j, _ in batch])
        except (EmbeddingError, StoreError) as exc:
            for job in jobs:
                self._fail(job, exc)
            return
        for job, _ in batch:
            job.stored += 1
            job.buffered -= 1

    def _commit_ready(self) -> None:
        """Commit, in one store switch, every document whose chunks are all written."""
        ready = [job for job in self.open if job.finished and not job.buffered]
        commits = []
        for job in ready:
            self.open.remove(job)
            doc = job.doc
            assert doc is not None
            if job.stored == 0:
                if job.begun:
                    self.ing.store.abort_version(job.source, job.version)
                self._finish(job, IngestResult(job.source, "failed", doc.pages,
                                               reason="no text to index"))
                continue
            commits.append((job, DocumentInfo(doc_id=job.source, source=job.source,
                                              sha256=doc.sha256, kind=doc.kind, pages=doc.pages,
                                              chunks=job.stored, added_at=time.time())))
        if not commits:
            return
        try:
            self.ing.store.commit_versions([(info, job.version) for job, info in commits])
        except StoreError as exc:
            for job, info in commits:
                self.ing.store.abort_version(job.source, job.version)
                self._finish(job, IngestResult(job.source, "failed", info.pages,
                                               reason=str(exc)))
            return
        for job, info in commits:
            status: Status = "replaced" if job.replacing else "added"
            self._finish(job, IngestResult(job.source, status, info.pages, job.stored))

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
