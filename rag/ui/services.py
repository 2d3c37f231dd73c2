"""The app's services: one knowledge base and its answering pipeline, opened on first use;
the workspace (accounts, conversations, feedback) and who may do what."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag.choices import Role
from rag.errors import ConfigError, LLMError, LoaderError, RagError
from rag.ingest import IngestResult, Progress
from rag.kb import KnowledgeBase
from rag.llm import LLMClient, LLMConfig, ModelNotFound
from rag.pipeline import AnswerPipeline
from rag.redact import redact
from rag.schema import DocumentInfo
from rag.ui.tables import llm_card
from rag.ui.uploads import Upload, resolve
from rag.workspace import Access, Workspace

log = logging.getLogger(__name__)

STATUS_CHECK_TIMEOUT = 3.0
CHAT_CONCURRENCY = 8


class Services:
    """What the app's handlers and API call: ask, search, ingest, list, delete, check."""

    def __init__(self, kb: KnowledgeBase, workspace: Workspace,
                 admin: tuple[str, str] | None = None) -> None:
        self.kb = kb
        self.settings = kb.settings
        self.kb_name = kb.settings.milvus_collection
        self.workspace = workspace
        self.access = Access(workspace.accounts, admin)
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}  # the running ingest of each session

    def pipeline(self) -> AnswerPipeline:
        """The answering pipeline; the store and model are opened on the first call.

        With unusable LLM settings the knowledge base gives a sources-only pipeline, so
        search still works and every answer says what to configure.
        """
        with self._lock:  # sessions start together; the store is opened once
            return self.kb.pipeline

    def warm_up(self) -> None:
        """Open the store, load the embedding model and a local reranker now, so the first
        page and the first question are fast."""
        started = time.perf_counter()
        try:
            retriever = self.pipeline().retriever
            retriever.store.count_chunks()
            warm = getattr(retriever.reranker, "warm_up", None)  # local models only
            if warm is not None:
                warm()
        except RagError as exc:
            log.warning("The knowledge base is not available yet: %s", exc)
            return
        log.info("Knowledge base ready in %.1f s", time.perf_counter() - started)

    def documents(self) -> list[DocumentInfo]:
        """Every document in the knowledge base."""
        return self.pipeline().retriever.store.list_documents()

    def require(self, user: str | None, role: Role) -> None:
        """Raise AccessDenied unless the signed-in user (None: no login) has the role here."""
        self.access.require(user, self.kb_name, role)

    def ingest(self, files: list[Any], progress: Callable[[Progress], None] | None = None,
               session: str | None = None, user: str | None = None) -> list[IngestResult]:
        """Ingest uploaded files, one result per item in order: Gradio FileData, data URLs or
        upload URLs (rag.ui.uploads), each named by its original file name. An item that is
        not an uploaded file, or a file of another type, fails alone. A run of a `session`
        can be stopped at its next document boundary by stop_ingest(session). Needs the
        editor role."""
        self.require(user, Role.EDITOR)
        stop = threading.Event()
        if session is not None:
            self._stops[session] = stop
        try:
            return self._ingest(files, progress, stop)
        finally:
            if session is not None:
                self._stops.pop(session, None)

    def stop_ingest(self, session: str) -> bool:
        """Ask the session's running ingest to stop after its current file; False if none
        runs."""
        stop = self._stops.get(session)
        if stop is not None:
            stop.set()
        return stop is not None

    def _ingest(self, files: list[Any], progress: Callable[[Progress], None] | None,
                stop: threading.Event) -> list[IngestResult]:
        self.pipeline()
        with tempfile.TemporaryDirectory(prefix="rag-upload-") as scratch:
            items: list[Upload | IngestResult] = []
            for item in files:
                try:
                    items.append(resolve(item, Path(scratch)))
                except LoaderError as exc:
                    items.append(IngestResult(exc.source, "failed", reason=exc.reason))
            uploads = [(u.path, u.name) for u in items if isinstance(u, Upload)]
            done = iter(self.kb.ingestor.ingest_files(uploads, progress, stop=stop))
            return [next(done) if isinstance(u, Upload) else u for u in items]

    def delete(self, names: list[str], user: str | None = None) -> list[DocumentInfo]:
        """Delete documents by name (the editor role)."""
        self.require(user, Role.EDITOR)
        store = self.pipeline().retriever.store
        deleted = [store.delete_document(name) for name in names]
        store.flush()
        return deleted

    def check_llm(self) -> str:
        """HTML naming the LLM endpoint and model, and whether it answers (short timeout)."""
        try:
            config = LLMConfig.from_settings(self.settings)
        except ConfigError as exc:
            return llm_card("", "", "bad", "Not configured", str(exc))
        probe = LLMClient(replace(config, timeout=STATUS_CHECK_TIMEOUT, max_retries=0))
        where = f"{redact(config.base_url)} ({config.provider_name})"
        try:
            probe.check()
        except ModelNotFound as exc:
            return llm_card(config.model, where, "warn", "Reachable, model missing", str(exc))
        except LLMError as exc:
            return llm_card(config.model, where, "bad", "Not reachable",
                            f"{exc} Search still works; answers need OPENAI_BASE_URL, "
                            "OPENAI_API_KEY and LLM_MODEL.")
        return llm_card(config.model, where, "ok", "Reachable", "")
