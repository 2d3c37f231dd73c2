"""The reading side of an ingest run: documents loaded, checked and chunked in a thread of their
own, ahead of the encoder, through a bounded queue.

The reader (rag.ingest.run's Run consumes what it sends) goes through the documents in order.
For each it sends a `job` event, then `skip` (listed twice, unchanged, the same content as
another), or `begin` followed by one `chunk` event per chunk and `end`, or `fail` with the reason.
At most one group of chunks (the ingestor's batch_size) waits in the queue, so the reader parses
while the encoder embeds the previous group, and memory stays flat however large the files.

The reader checks `stop` before each document: a stopped run ends at a document boundary, and
`reached` says how many documents were begun. A document the run has failed meanwhile (its
batch could not be embedded or stored) is read no further.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rag.chunking import chunk_sections
from rag.errors import EmbeddingError, LoaderError, StoreError
from rag.ingest.originals import Original, Originals
from rag.ingest.progress import FileWork, Tracker
from rag.ingest.results import IngestResult, check_name, displayable, embedding_text
from rag.lexical import analyze
from rag.loading import LoadedDocument
from rag.schema import Chunk, DocumentInfo, Section

if TYPE_CHECKING:
    from rag.ingest.ingestor import Ingestor

EventKind = Literal["job", "skip", "begin", "chunk", "end", "fail", "done", "crash"]
_PUT_WAIT = 0.1  # seconds between checks for a cancelled run while the queue is full


@dataclass(slots=True, eq=False)
class Job:
    """One document of a run; the reader fills `doc` and `version`, the run the rest."""

    work: FileWork
    original: Original | None = None  # the file (or content) kept with it, rag.files
    doc: LoadedDocument | None = None
    version: str = ""
    replacing: bool = False
    begun: bool = False  # its version is begun in the store
    result: IngestResult | None = None
    buffered: int = 0  # chunks taken by the run and not yet stored
    finished: bool = False  # read to the end
    seconds: float = 0.0  # its share of the encoder and store groups (the run)
    read_seconds: float = 0.0  # its reading and chunking (the reader)

    @property
    def source(self) -> str:
        return self.work.source


@dataclass(slots=True, eq=False)
class Event:
    """What the reader sends: `job` set except for done/crash; `chunk`, its encoder `text` and
    BM25 `lexical` for chunk; `result` for skip; `error` for fail and crash."""

    kind: EventKind
    job: Job | None = None
    chunk: Chunk | None = None
    text: str = ""
    lexical: str = ""
    result: IngestResult | None = None
    error: BaseException | None = None


class _Cancelled(Exception):
    """The run was cancelled while the reader waited for room in the queue."""


class Reader:
    """Reads (source, loader) documents ahead of the run in a daemon thread."""

    def __init__(self, ingestor: Ingestor, tracker: Tracker,
                 documents: Sequence[tuple[str, Callable[[], LoadedDocument]]],
                 originals: Sequence[Original | None], originals_store: Originals,
                 stop: threading.Event | None, owner: object) -> None:
        """`owner` (the run) claims each document name it reads (Ingestor.claims)."""
        self.ing = ingestor
        self.owner = owner
        self.tracker = tracker
        self.documents = documents
        self.originals = originals
        self.kept = originals_store
        self.stop = stop
        self.reached = 0  # documents begun
        self.queue: queue.Queue[Event] = queue.Queue(maxsize=max(ingestor.batch_size, 1))
        self.cancelled = threading.Event()
        self.sources: set[str] = set()  # document names seen in this run
        self.by_sha: dict[str, str] = {}  # content seen in this run -> its document name
        self.stored: dict[str, DocumentInfo] = {}
        self.stored_by_sha: dict[str, DocumentInfo] = {}
        self.thread = threading.Thread(target=self._run, name="rag-ingest-reader", daemon=True)

    def events(self) -> Iterator[Event]:
        """Start reading; the events in order, until the documents are done. A crash of the
        reader is raised here."""
        self.thread.start()
        while True:
            event = self.queue.get()
            if event.kind == "done":
                return
            if event.kind == "crash":
                assert event.error is not None
                raise event.error
            yield event

    def cancel(self) -> None:
        """End the reader at its next step (the run is abandoned); waits briefly for it."""
        self.cancelled.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5.0)

    def _run(self) -> None:
        try:
            if self.documents:  # one read of the document list per run, not one per file
                self.stored = {d.doc_id: d for d in self.ing.store.list_documents()}
                self.stored_by_sha = {d.sha256: d for d in self.stored.values()}
            for index, (source, loader) in enumerate(self.documents, start=1):
                if self.cancelled.is_set() or (self.stop is not None and self.stop.is_set()):
                    break
                self.reached = index
                self._read(index, source, loader, self.originals[index - 1])
            self._put(Event("done"))
        except _Cancelled:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the run, which raises it
            try:
                self._put(Event("crash", error=exc))
            except _Cancelled:
                return

    def _put(self, event: Event) -> float:
        """Queue an event, waiting for room; the seconds waited."""
        started = time.perf_counter()
        while True:
            if self.cancelled.is_set():
                raise _Cancelled
            try:
                self.queue.put(event, timeout=_PUT_WAIT)
            except queue.Full:
                continue
            return time.perf_counter() - started

    def _read(self, index: int, source: str, loader: Callable[[], LoadedDocument],
              original: Original | None) -> None:
        job = Job(self.tracker.work(index, displayable(source)), original=original)
        started = time.perf_counter()
        waited = self._put(Event("job", job))
        self.tracker.report(job.work, "parsing")
        try:
            waited += self._chunks(job, source, loader)
        except (LoaderError, EmbeddingError, StoreError) as exc:
            job.read_seconds = time.perf_counter() - started - waited
            self._put(Event("fail", job, error=exc))
            return
        job.read_seconds = time.perf_counter() - started - waited
        if job.version and job.work.read:
            self._put(Event("end", job))

    def _chunks(self, job: Job, source: str, loader: Callable[[], LoadedDocument]) -> float:
        """Load, check and chunk the document, sending its events; the seconds waited."""
        check_name(source)
        if not self.ing.claims.claim(source, self.owner):
            return self._put(Event("skip", job, result=IngestResult(
                job.source, "skipped", reason="another upload is adding a document of this "
                "name right now; add it again once that one is done")))
        if self.cancelled.is_set():  # the run is over and may have given its names back
            self.ing.claims.release(source, self.owner)
            raise _Cancelled
        job.doc = loader()
        job.work.pages = job.doc.pages
        skipped = self._skip(job)
        if skipped is not None:
            return self._put(Event("skip", job, result=skipped))
        job.version = hashlib.sha256(f"{source}\0{job.doc.sha256}".encode()).hexdigest()[:32]
        waited = self._put(Event("begin", job))
        limit = self.ing.max_chunks_per_file
        for chunk in chunk_sections(
            self._sections(job), doc_id=source, version=job.version, source=source,
            count_tokens=self.ing.embedder.count_tokens,
            max_tokens=self.ing.chunk_tokens, overlap=self.ing.chunk_overlap,
        ):
            if job.result is not None:  # the run failed it meanwhile: read no further
                return waited
            if job.work.made >= limit:
                raise LoaderError(job.source, f"the file makes more than {limit} chunks (the "
                                  "limit, MAX_CHUNKS_PER_FILE); split it, or raise "
                                  "MAX_CHUNKS_PER_FILE")
            text = embedding_text(chunk)
            job.work.made += 1
            waited += self._put(Event("chunk", job, chunk, text, analyze(text)))
        job.work.read = True
        return waited

    def _sections(self, job: Job) -> Iterator[Section]:
        """The document's sections, reporting each page as it is read."""
        assert job.doc is not None
        for section in job.doc.sections:
            if section.page is not None and section.page != job.work.page:
                job.work.page = section.page
                self.tracker.report(job.work, "parsing")
            yield section

    def _skip(self, job: Job) -> IngestResult | None:
        """The result of a document that is not stored again, or None."""
        doc = job.doc
        assert doc is not None
        if job.source in self.sources:
            return IngestResult(job.source, "skipped", doc.pages, reason="listed twice")
        self.sources.add(job.source)
        existing = self.stored.get(job.source)
        twin = self.stored_by_sha.get(doc.sha256)
        job.replacing = existing is not None
        if existing is not None and existing.sha256 == doc.sha256:
            self.kept.backfill(existing, job.original)
            return IngestResult(job.source, "skipped", existing.pages, existing.chunks,
                                reason="unchanged")
        if twin is not None and twin.doc_id != job.source:
            return IngestResult(job.source, "skipped", twin.pages, twin.chunks,
                                reason=f"same content as {twin.source}")
        earlier = self.by_sha.setdefault(doc.sha256, job.source)
        if earlier != job.source:
            return IngestResult(job.source, "skipped", doc.pages,
                                reason=f"same content as {earlier}")
        return None
