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
from rag.kb_set import KnowledgeBaseSet
from rag.llm import LLMClient, LLMConfig, ModelNotFound
from rag.pipeline import AnswerPipeline
from rag.redact import redact
from rag.schema import DocumentInfo
from rag.ui.tables import llm_card
from rag.ui.uploads import Upload, resolve
from rag.workspace import Access, Workspace
from rag.workspace.tables import ALL_KBS

log = logging.getLogger(__name__)

STATUS_CHECK_TIMEOUT = 3.0
CHAT_CONCURRENCY = 8
# uploads (web, API, MCP) running at once; they share the encoder in turns (rag.ingest.turns),
# and further ones wait in Gradio's queue, which shows their place
INGEST_CONCURRENCY = 4


class Services:
    """What the app's handlers and API call: ask, search, ingest, list, delete, check."""

    def __init__(self, kb: KnowledgeBase, workspace: Workspace,
                 admin: tuple[str, str] | None = None) -> None:
        self.kb = kb  # the default knowledge base (MILVUS_COLLECTION)
        self.settings = kb.settings
        self.workspace = workspace
        self.kbs = KnowledgeBaseSet(kb.settings, workspace.knowledge_bases(
            kb.settings.milvus_collection, kb.settings.embedding_model), default=kb)
        self.access = Access(workspace.accounts, admin)
        self._lock = threading.Lock()
        self._stops: dict[str, list[threading.Event]] = {}  # each session's running ingests

    @property
    def kb_name(self) -> str:
        """The default knowledge base's name."""
        return self.kbs.default_name

    def kb_label(self, kb: str | None) -> str:
        """The name of a knowledge base (None: the default); ConfigError if there is none."""
        return self.kbs.registry.get(kb).name

    def pipeline(self, kb: str | None = None) -> AnswerPipeline:
        """The answering pipeline; the store and model are opened on the first call.

        With unusable LLM settings the knowledge base gives a sources-only pipeline, so
        search still works and every answer says what to configure.
        """
        with self._lock:  # sessions start together; the store is opened once
            return self.kbs.open(kb).pipeline

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

    def documents(self, kb: str | None = None) -> list[DocumentInfo]:
        """Every document in a knowledge base (None: the default)."""
        return self.pipeline(kb).retriever.store.list_documents()

    def require(self, user: str | None, role: Role, kb: str | None = None) -> None:
        """Raise AccessDenied unless the signed-in user (None: no login) has the role in the
        knowledge base (None: the default; admin: in every one)."""
        self.access.require(user, ALL_KBS if role is Role.ADMIN else self.kb_label(kb), role)

    def ingest(self, files: list[Any], progress: Callable[[Progress], None] | None = None,
               session: str | None = None, user: str | None = None,
               kb: str | None = None) -> list[IngestResult]:
        """Ingest uploaded files, one result per item in order: Gradio FileData, data URLs or
        upload URLs (rag.ui.uploads), each named by its original file name. An item that is
        not an uploaded file, or a file of another type, fails alone. A run of a `session`
        can be stopped at its next document boundary by stop_ingest(session). Needs the
        editor role."""
        self.require(user, Role.EDITOR, kb)
        stop = threading.Event()
        if session is not None:
            self._stops.setdefault(session, []).append(stop)
        try:
            return self._ingest(self.kbs.open(kb), files, progress, stop)
        finally:
            if session is not None:
                running = self._stops.get(session, [])
                running.remove(stop)
                if not running:
                    self._stops.pop(session, None)

    def stop_ingest(self, session: str) -> bool:
        """Ask the session's running ingests to stop after their current file; False if none
        runs."""
        running = list(self._stops.get(session, []))
        for stop in running:
            stop.set()
        return bool(running)

    def _ingest(self, target: KnowledgeBase, files: list[Any],
                progress: Callable[[Progress], None] | None,
                stop: threading.Event) -> list[IngestResult]:
        with self._lock:  # the store is opened once, also when a chat opens it meanwhile
            target.pipeline  # noqa: B018
        with tempfile.TemporaryDirectory(prefix="rag-upload-") as scratch:
            items: list[Upload | IngestResult] = []
            for item in files:
                try:
                    items.append(resolve(item, Path(scratch)))
                except LoaderError as exc:
                    items.append(IngestResult(exc.source, "failed", reason=exc.reason))
            uploads = [(u.path, u.name) for u in items if isinstance(u, Upload)]
            done = iter(target.ingestor.ingest_files(uploads, progress, stop=stop))
            return [next(done) if isinstance(u, Upload) else u for u in items]

    def delete(self, names: list[str], user: str | None = None,
               kb: str | None = None) -> list[DocumentInfo]:
        """Delete documents by name (the editor role)."""
        self.require(user, Role.EDITOR, kb)
        target = self.kbs.open(kb)
        with self._lock:  # the store is opened once, also when a chat opens it meanwhile
            target.pipeline  # noqa: B018
        deleted = [target.delete_document(name) for name in names]
        target.store.flush()
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
