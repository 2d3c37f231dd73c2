"""Logging for the command line and the web app: the console is for what an operator must act on.

Each entry point calls `configure_logging(level)` once, before pymilvus (and with it gRPC) is
imported: the `rag` command in its Typer callback, the web app at the top of its `main()`, and
before `rag.ui` or `rag.kb` are imported when the app is started some other way.

- Our own records (`rag.*`) and those of code that is not a library listed in LIBRARIES show at
  `level` and above, on stderr, as "LEVEL name: message".
- The libraries' records (pypdf's repair warnings, Milvus Lite's and pymilvus's logs, gRPC's
  server tracebacks, HTTP clients' request lines, model loaders, Python warnings) are debug
  chatter: they show only when `level` is DEBUG. What matters of them reaches the user as our
  own errors (a file's failure reason, a StoreError).
- gRPC's C core writes its own lines to stderr ("Received a GOAWAY with error code
  ENHANCE_YOUR_CALM and debug data equal to "too_many_pings"", logged at ERROR when Milvus
  Lite's in-process server turns down pymilvus's 10 s keepalive pings). grpcio 1.85 reads
  GRPC_VERBOSITY once, when it is imported, and only NONE silences that line; so it is set
  here (unless the environment sets it: GRPC_VERBOSITY=INFO and GRPC_TRACE=... still work for
  debugging gRPC), and setting it after the import has no effect.
"""

from __future__ import annotations

import logging
import os
import sys

LIBRARIES = (
    "pypdf", "grpc", "milvus_lite", "pymilvus", "httpx", "httpcore", "urllib3", "openai",
    "sentence_transformers", "transformers", "huggingface_hub", "onnxruntime", "filelock",
    "py.warnings", "faiss",
)
FORMAT = "%(levelname)s %(name)s: %(message)s"
_HANDLER = "rag-console"

log = logging.getLogger(__name__)


def is_library(name: str) -> bool:
    """Whether a logger belongs to one of LIBRARIES (or is a child of one)."""
    return any(name == lib or name.startswith(lib + ".") for lib in LIBRARIES)


class LibraryFilter(logging.Filter):
    """Passes a library's record only when the console shows debug records."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return self.level <= logging.DEBUG or not is_library(record.name)


def configure_logging(level: int | str = logging.WARNING) -> None:
    """Send records of `level` and above to stderr, libraries' only at DEBUG (see the module's
    docstring). Calling it again replaces the previous setup."""
    if isinstance(level, str):
        level = logging.getLevelNamesMapping()[level.upper()]
    debug = level <= logging.DEBUG
    os.environ.setdefault("GRPC_VERBOSITY", "INFO" if debug else "NONE")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setLevel(level)
    handler.addFilter(LibraryFilter(level))
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    if "grpc" in sys.modules:
        log.debug("grpc was imported before configure_logging: its C core's lines follow "
                  "GRPC_VERBOSITY=%s as it was then", os.environ.get("GRPC_VERBOSITY"))
