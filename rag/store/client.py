"""pymilvus, imported here and nowhere else: opening a client, its errors as StoreError.

The other store modules take pymilvus's names from here, so the import below always runs first.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _import_pymilvus() -> None:
    """Import pymilvus without its import-time reading of MILVUS_URI.

    pymilvus parses MILVUS_URI when imported and rejects a Milvus Lite file path there, but that
    variable is ours (the URI of this app's store, a .db path by default); the store passes the
    URI to MilvusClient explicitly, so pymilvus never needs to see it.
    """
    saved = os.environ.pop("MILVUS_URI", None)
    try:
        import pymilvus  # noqa: F401
    finally:
        if saved is not None:
            os.environ["MILVUS_URI"] = saved


_import_pymilvus()

from milvus_lite.exceptions import DataDirLockedError  # noqa: E402
from pymilvus import DataType, Function, FunctionType, MilvusClient  # noqa: E402
from pymilvus.exceptions import MilvusException  # noqa: E402

from rag.errors import StoreError  # noqa: E402
from rag.redact import redact  # noqa: E402
from rag.store.filters import literal  # noqa: E402

__all__ = ["DataType", "Function", "FunctionType", "MilvusClient", "connect", "is_lite",
           "milvus", "query_all", "quiet_lite_server", "release"]

log = logging.getLogger(__name__)

QUERY_WINDOW = 16_384  # Milvus caps offset + limit of one query here
# Open clients of each Milvus Lite file (knowledge bases share one file's server)
_LITE_CLIENTS: Counter[str] = Counter()
_LITE_LOCK = threading.Lock()
_LITE_START_LOGGER = "milvus_lite.server_manager"
_ONE_PROCESS = ("A Milvus Lite file can be used by one process at a time; stop the other "
                "process, or run `milvus-lite server --host 127.0.0.1 --port 19530 --data-dir "
                "DIR` and set MILVUS_URI=http://127.0.0.1:19530 for every process.")


@contextmanager
def milvus(action: str) -> Iterator[None]:
    """Turn pymilvus exceptions into StoreError naming what we were doing."""
    try:
        yield
    except MilvusException as exc:
        raise StoreError(f"Milvus failed to {action}: {exc.message}") from exc


@contextmanager
def quiet_lite_server() -> Iterator[None]:
    """Milvus Lite's in-process gRPC server logs a traceback for AllocTimestamp, which it does
    not implement and pymilvus only probes for while creating a collection; keep it off the
    user's terminal."""
    grpc_logger = logging.getLogger("grpc._server")
    level = grpc_logger.level
    grpc_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        grpc_logger.setLevel(level)


def is_lite(uri: str) -> bool:
    """True for a Milvus Lite file path, False for a server URI."""
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


class _Demoted(logging.Filter):
    """Holds a library logger's records back, re-logging them here at debug level, and keeps
    the exception one of them carried (pymilvus reports only "Open local milvus failed")."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            self.failure = record.exc_info[1]
        log.debug("%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)
        return False


@contextmanager
def _demoted(logger_name: str) -> Iterator[_Demoted]:
    logger = logging.getLogger(logger_name)
    demoted = _Demoted()
    logger.addFilter(demoted)
    try:
        yield demoted
    finally:
        logger.removeFilter(demoted)


def connect(uri: str, token: str = "") -> MilvusClient:
    """A client of the Milvus at `uri` (a Lite file is created, with its folder, if missing).
    Clients of one Lite file share its in-process server, which runs until the last of them
    is released."""
    if not is_lite(uri):
        try:
            return MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
        except MilvusException as exc:
            raise StoreError(f"Cannot reach Milvus at {redact(uri)}: {redact(exc.message)}. "
                             "Check MILVUS_URI and MILVUS_TOKEN.") from exc
    Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    # Milvus Lite logs the failure of its in-process server with a full traceback (a locked
    # file is a DataDirLockedError); our error says it once, the traceback is for debugging.
    with _demoted(_LITE_START_LOGGER) as start:
        try:
            client = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
        except MilvusException as exc:
            failure = start.failure
            if isinstance(failure, DataDirLockedError):
                reason = "another process holds its lock. " + _ONE_PROCESS
            elif failure is not None:
                reason = f"{failure}"
            else:
                reason = f"{exc.message}. {_ONE_PROCESS}"
            raise StoreError(f"Cannot open the Milvus Lite database {uri}: {reason}") from exc
    with _LITE_LOCK:
        _LITE_CLIENTS[_lite_key(uri)] += 1
    return client


def release(client: MilvusClient, uri: str) -> None:
    """Close the client, and for Milvus Lite stop its server (releasing the file lock)."""
    client.close()
    if not is_lite(uri):
        return
    key = _lite_key(uri)
    with _LITE_LOCK:
        _LITE_CLIENTS[key] -= 1
        last = _LITE_CLIENTS[key] <= 0
        if last:
            del _LITE_CLIENTS[key]
    if last:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)


def _lite_key(uri: str) -> str:
    return str(Path(uri).expanduser().resolve())


def query_all(client: MilvusClient, collection: str, expr: str, fields: list[str],
              key: str) -> list[dict[str, Any]]:
    """Every row matching `expr`, however many; `key` is the collection's primary key."""
    rows = list(client.query(collection, filter=expr, output_fields=fields, limit=QUERY_WINDOW))
    if len(rows) < QUERY_WINDOW:
        return rows
    # More rows than one query window holds: page through them in primary-key order (what the
    # `iterator` flag asks of Milvus and Lite). pymilvus's query_iterator does the same but
    # splices the last key into its next filter unescaped, which breaks on a document name with
    # a quote; here the key goes in as a literal.
    fields = fields if key in fields else [*fields, key]
    rows, page_expr = [], expr
    while True:
        page = list(client.query(collection, filter=page_expr, output_fields=fields,
                                 limit=QUERY_WINDOW, iterator="True"))
        rows.extend(page)
        if len(page) < QUERY_WINDOW:
            return rows
        page_expr = f"{key} > {literal(page[-1][key])} and ({expr})"
