"""Several knowledge bases: the workspace's list of them, each opened on first use.

Every knowledge base has its own Milvus collections (in the same Milvus: the Lite file or the
server of MILVUS_URI) and its own embedding-model record; those on the same model share one
loaded embedder. Deleting a knowledge base drops its collections, then its folder of original
files (FILES_DIR/<collection>).
"""

from __future__ import annotations

import threading

from rag.kb import KnowledgeBase
from rag.settings import Settings
from rag.workspace.kbs import KBInfo, KnowledgeBases


class KnowledgeBaseSet:
    """The knowledge bases of one app or command, opened lazily and closed together."""

    def __init__(self, settings: Settings, registry: KnowledgeBases,
                 default: KnowledgeBase | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self._lock = threading.Lock()
        self._open: dict[str, KnowledgeBase] = {}  # by collection
        if default is not None:
            self._open[default.settings.milvus_collection] = default

    @property
    def default_name(self) -> str:
        """The name of the default knowledge base (MILVUS_COLLECTION's)."""
        return self.registry.get(None).name

    def list(self) -> list[KBInfo]:
        """Every knowledge base, the default first."""
        return self.registry.list()

    def open(self, name: str | None = None) -> KnowledgeBase:
        """A knowledge base by name (None: the default), opened on first use."""
        info = self.registry.get(name)
        with self._lock:
            kb = self._open.get(info.collection)
            if kb is None:
                settings = self.settings.with_(milvus_collection=info.collection,
                                               embedding_model=info.embedding_model)
                kb = KnowledgeBase(settings)
                self._share_embedder(kb)
                self._open[info.collection] = kb
            return kb

    def _share_embedder(self, kb: KnowledgeBase) -> None:
        for other in self._open.values():
            if ("embedder" in other.__dict__
                    and other.settings.embedding_model == kb.settings.embedding_model):
                kb.embedder = other.embedder
                return

    def create(self, name: str, embedding_model: str | None = None) -> KBInfo:
        """A new knowledge base (by default on the configured embedding model)."""
        return self.registry.create(name, embedding_model or self.settings.embedding_model)

    def rename(self, name: str, new: str) -> KBInfo:
        """Give a knowledge base a new name (its collections stay)."""
        return self.registry.rename(name, new)

    def remove(self, name: str) -> KBInfo:
        """Delete a knowledge base: its collections, its original files, its conversations and
        its grants."""
        info = self.registry.get(name)
        if info.collection == self.registry.default:
            return self.registry.remove(name)  # refused, with the reason
        kb = self.open(info.name)
        kb.store.drop()
        if kb.files is not None:
            kb.files.drop()
        with self._lock:
            self._open.pop(info.collection, None)
        kb.close()
        return self.registry.remove(info.name)

    def close(self) -> None:
        """Close every opened knowledge base."""
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for kb in opened:
            kb.close()
