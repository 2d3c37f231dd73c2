"""Where an ingest run is: a fraction of the whole job, an ETA, and one line to show.

The job's work is shared among its files by size (every file also weighs a fixed
_FILE_OVERHEAD, so a folder of tiny files still moves). A file's own share is read from real
counts: the pages read of its pages (PDF), the chunks embedded and stored of its chunks. Its
number of chunks is known once it is read to the end; until then it is estimated from the share
of its pages read. The fraction never goes back and is exactly 1.0 when every file is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Stage = Literal["parsing", "waiting", "embedding", "storing", "done"]

# A file's work in stages, as measured by benchmarks.pipeline (README, "Ingestion at scale"):
# reading and chunking take a few percent of a file's time (PDFium's text extraction, Markdown,
# Word); of the rest the encoder takes about nine tenths and Milvus the remainder.
_READ_SHARE = 0.05
_EMBED_SHARE = 0.9
_BEFORE_COMMIT = 0.99  # the share of a file that is done before its commit
_FILE_OVERHEAD = 4096  # bytes a file weighs besides its size: opening, naming, committing
ETA_AFTER_FRACTION = 0.05  # an ETA is given once this much of the job is done ...
ETA_AFTER_SECONDS = 3.0  # ... and it has run this long


@dataclass(slots=True)
class Progress:
    """Where an ingest run is: file `index` of `total`, at `stage`.

    `chunks` of the file are stored and `embedded` embedded; `expected` is its number of
    chunks once it has been read to the end (None before). `page` of `pages` have been read
    (PDF). `fraction` (0..1) is over the whole job; `eta` the seconds left, once enough is done
    to tell. While `waiting`, `ahead` other ingest runs are before this one's turn at the
    encoder (rag.ingest.turns). `rate` is the job's chunks stored per second so far, and
    `files_done` how many of its files are done.
    """

    index: int
    total: int
    source: str
    stage: Stage
    chunks: int = 0
    page: int | None = None
    pages: int | None = None
    fraction: float = 0.0
    eta: float | None = None
    embedded: int = 0
    expected: int | None = None
    ahead: int = 0
    rate: float | None = None
    files_done: int = 0

    def describe(self) -> str:
        """One line: 'report.pdf (2/5): embedding 120/480 chunks · 1/5 files done · 36 chunks/s ·
        0:42 left' (file 2 is the one being read: the files before it may still be embedded)."""
        line = f"{self.source} ({self.index}/{self.total}): {self._doing()}"
        if self.files_done and self.total > 1 and self.stage != "done":
            line += f" · {self.files_done}/{self.total} files done"
        if self.rate is not None and self.stage != "waiting":
            line += f" · {self.rate:.0f} chunks/s"
        if self.eta is not None and self.fraction < 1.0:
            line += f" · {clock(self.eta)} left"
        return line

    def _doing(self) -> str:
        read = f"page {self.page}/{self.pages}" if self.pages and self.page else ""
        if self.stage == "parsing":
            return f"parsing {read}" if read else "parsing"
        if self.stage == "done":
            return "done"
        if self.stage == "waiting":
            runs = "upload" if self.ahead == 1 else "uploads"
            return f"waiting for its turn, {self.ahead} other {runs} first"
        of = f"/{self.expected}" if self.expected is not None else ""
        doing = f"{self.stage} {self.embedded}{of} chunks"
        return f"{doing} ({read} read)" if self.expected is None and read else doing


def clock(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on."""
    minutes, secs = divmod(max(round(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


ProgressCallback = Callable[[Progress], None]


@dataclass(slots=True, eq=False)
class FileWork:
    """The counts of one file's work that its share of the job is read from."""

    index: int
    source: str
    weight: float
    pages: int | None = None
    page: int | None = None  # pages read
    made: int = 0  # chunks cut so far
    embedded: int = 0
    stored: int = 0
    read: bool = False  # read to the end: `made` is its number of chunks
    credit: float = 0.0  # weight × the share of it that is done; never decreases
    counted: int = 0  # of `stored`, what the job's total has counted

    def expected(self) -> int | None:
        """Its number of chunks, once read to the end."""
        return self.made if self.read else None

    def share(self) -> float:
        """The share of this file's work that is done, below 1 until it is committed."""
        if self.read:
            read, expected = 1.0, float(self.made)
        elif self.pages and self.page:
            read = min(self.page / self.pages, 1.0)
            expected = self.made / read
        else:
            read, expected = 0.0, 0.0
        written = _EMBED_SHARE * self.embedded + (1 - _EMBED_SHARE) * self.stored
        done = min(written / expected, 1.0) if expected else 0.0
        return min(_READ_SHARE * read + (1 - _READ_SHARE) * done, _BEFORE_COMMIT)


class Tracker:
    """Turns the files' counts into Progress reports over the whole job."""

    def __init__(self, callback: ProgressCallback | None, sizes: list[int | None]) -> None:
        self.callback = callback
        self.weights = [_FILE_OVERHEAD + max(size or 0, 0) for size in sizes]
        self.total_weight = float(sum(self.weights)) or 1.0
        self.credited = 0.0
        self.finished = 0
        self.stored = 0  # chunks stored in the whole job
        self.fraction = 0.0
        self.started = time.perf_counter()
        self._lock = threading.Lock()  # the reader reports pages, the run chunks and results

    def work(self, index: int, source: str) -> FileWork:
        """The counts of file `index` (1-based)."""
        weight = self.weights[index - 1] if index <= len(self.weights) else _FILE_OVERHEAD
        return FileWork(index, source, weight)

    def report(self, work: FileWork, stage: Stage, ahead: int = 0) -> None:
        """Credit the file with what it has done, then report where the job is (`ahead`: the
        runs before this one at the encoder, while waiting)."""
        with self._lock:
            self._report(work, stage, ahead)

    def _report(self, work: FileWork, stage: Stage, ahead: int) -> None:
        if stage == "done":
            self.finished += 1
        credit = work.weight if stage == "done" else work.weight * work.share()
        if credit > work.credit:
            self.credited += credit - work.credit
            work.credit = credit
        self.stored += work.stored - work.counted
        work.counted = work.stored
        if self.callback is None:
            return
        total = max(len(self.weights), work.index)
        if self.finished >= total:
            self.fraction = 1.0
        else:
            self.fraction = max(self.fraction, min(self.credited / self.total_weight, 0.999))
        elapsed = time.perf_counter() - self.started
        rate = self.stored / elapsed if self.stored and elapsed >= ETA_AFTER_SECONDS else None
        self.callback(Progress(work.index, total, work.source, stage, work.stored, work.page,
                               work.pages, self.fraction, self.eta(), work.embedded,
                               work.expected(), ahead, rate, self.finished))

    def eta(self) -> float | None:
        """Seconds left at the pace so far, once enough is done to tell."""
        elapsed = time.perf_counter() - self.started
        if self.fraction >= 1.0:
            return 0.0
        if self.fraction < ETA_AFTER_FRACTION or elapsed < ETA_AFTER_SECONDS:
            return None
        return elapsed * (1 - self.fraction) / self.fraction
