"""Several ingest runs at once, fairly: the encoder taken in turns, one group at a time, and a
document name in the hands of one run at a time.

Runs of one process (several people's uploads, the API, MCP) each read their files in their own
thread, but the encoder works for one of them at a time: a run waits for its turn before each
group of chunks (Ingestor batch_size) and gives it back after, and turns go first come, first
served. A run that has just had its turn queues behind the runs that waited meanwhile, so
uploads take turns group by group: one person's thousand files do not hold back another's one.
The CPU is the process's, so ENCODER_TURNS is shared by every Ingestor that is not given its own.

Within a knowledge base (one Ingestor), a document name is claimed by the run that stores it;
another run that meets the same name meanwhile skips it, saying so, instead of storing it twice.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_REPORT_EVERY = 1.0  # seconds between position reports while a run waits


class Turns:
    """A first come, first served lock for the encoder, telling a waiter its place."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()  # tickets waiting, first first
        self._holder: int | None = None
        self._tickets = itertools.count()

    @contextmanager
    def turn(self, waiting: Callable[[int], None] | None = None) -> Iterator[None]:
        """Hold the encoder for the block. While others are ahead, `waiting(ahead)` is called
        with their number, whenever it changes."""
        ticket = next(self._tickets)
        with self._cond:
            self._queue.append(ticket)
            told = -1
            while self._holder is not None or self._queue[0] != ticket:
                ahead = self._queue.index(ticket) + (self._holder is not None)
                if waiting is not None and ahead != told:
                    told = ahead
                    self._cond.release()  # the report may take its time (a UI update)
                    try:
                        waiting(ahead)
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(timeout=_REPORT_EVERY)
            self._queue.popleft()
            self._holder = ticket
        try:
            yield
        finally:
            with self._cond:
                self._holder = None
                self._cond.notify_all()


ENCODER_TURNS = Turns()


class Claims:
    """Document names being stored by a run, one run per name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, object] = {}

    def claim(self, name: str, owner: object) -> bool:
        """Claim `name` for `owner`; False if another owner holds it (True again for its own)."""
        with self._lock:
            return self._owners.setdefault(name, owner) is owner

    def release(self, name: str, owner: object) -> None:
        """Give `name` back, if `owner` holds it."""
        with self._lock:
            if self._owners.get(name) is owner:
                del self._owners[name]

    def release_all(self, owner: object) -> None:
        """Give back every name `owner` holds."""
        with self._lock:
            for name in [n for n, o in self._owners.items() if o is owner]:
                del self._owners[name]
