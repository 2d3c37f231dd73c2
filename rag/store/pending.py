"""The cache of pending versions (those searches must skip) of a Milvus Lite collection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path


class PendingCache:
    """The versions hidden by pending markers in one Lite collection, shared by every store on
    it in this process. One process owns a Lite file, so the list changes only through those
    stores, and each of their document writes forgets it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: list[str] | None = None
        self._generation = 0

    def get(self, read: Callable[[], list[str]]) -> list[str]:
        """The cached versions, or those `read` returns (kept unless a write began meanwhile)."""
        with self._lock:
            versions, generation = self._versions, self._generation
        if versions is None:
            versions = read()
            with self._lock:
                if generation == self._generation:  # no write began meanwhile
                    self._versions = versions
        return versions

    def forget(self) -> None:
        """Drop the cached versions: a document row is being written."""
        with self._lock:
            self._generation += 1
            self._versions = None


_LITE_CACHES: dict[tuple[str, str], PendingCache] = {}
_LITE_CACHES_LOCK = threading.Lock()


def lite_cache(uri: str, collection: str) -> PendingCache:
    """The one cache of this Lite file's collection in this process."""
    key = (str(Path(uri).expanduser().resolve()), collection)
    with _LITE_CACHES_LOCK:
        return _LITE_CACHES.setdefault(key, PendingCache())
