"""The knowledge base: settings wired into an embedder, a store, an ingestor and a retriever."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from rag.claims import ClaimChecker
from rag.embedding import Embedder, make_embedder
from rag.errors import ConfigError
from rag.files import FileStore
from rag.fusion import Fusion
from rag.ingest import Ingestor
from rag.llm import LLMClient, LLMConfig
from rag.pipeline import AnswerPipeline
from rag.rerank import Reranker, make_reranker
from rag.retrieval import Retriever
from rag.schema import DocumentInfo
from rag.settings import DEFAULT_FILES_DIR, Settings
from rag.store import MilvusStore
from rag.store.client import is_lite


class KnowledgeBase:
    """One knowledge base, built from settings; parts are created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def embedder(self) -> Embedder:
        """The configured embedding model."""
        s = self.settings
        return make_embedder(backend=s.embedding_backend, model=s.embedding_model,
                             batch_size=s.embedding_batch_size, runtime=s.embedding_runtime,
                             base_url=s.embedding_base_url or s.openai_base_url,
                             api_key=s.embedding_api_key or s.openai_api_key)

    @cached_property
    def store(self) -> MilvusStore:
        """The Milvus collections, opened and loaded."""
        s = self.settings
        return MilvusStore(s.milvus_uri, token=s.milvus_token, collection=s.milvus_collection,
                           embedding_model=self.embedder.name, dimension=self.embedder.dimension)

    @cached_property
    def files(self) -> FileStore | None:
        """The documents' kept original files (FILES_DIR/<collection>), or None when
        FILES_DIR is empty (no originals are kept). Left at its default, FILES_DIR is the
        `files` folder beside the Milvus Lite file (./data/files beside ./data/milvus.db), so
        a knowledge base in another folder keeps its files with it."""
        s = self.settings
        if not s.files_dir:
            return None
        root = Path(s.files_dir)
        if s.files_dir == DEFAULT_FILES_DIR and is_lite(s.milvus_uri):
            root = Path(s.milvus_uri).parent / "files"
        return FileStore(root / s.milvus_collection)

    @cached_property
    def ingestor(self) -> Ingestor:
        """Turns files into stored chunks."""
        s = self.settings
        return Ingestor(self.store, self.embedder, chunk_tokens=s.chunk_tokens,
                        chunk_overlap=s.chunk_overlap, max_file_mb=s.max_file_mb,
                        max_pages=s.max_pages, max_chunks_per_file=s.max_chunks_per_file,
                        max_pdf_content_mb=s.max_pdf_content_mb,
                        max_page_content_mb=s.max_page_content_mb, ocr=s.ocr,
                        ocr_languages=s.ocr_languages, files=self.files,
                        flush_chunks=s.ingest_flush_chunks)

    @cached_property
    def reranker(self) -> Reranker | None:
        """The configured reranker, or None when reranking is off (a local model loads lazily)."""
        s = self.settings
        return make_reranker(backend=s.reranker_backend, model=s.reranker,
                             base_url=s.reranker_base_url, api_key=s.reranker_api_key,
                             runtime=s.reranker_runtime)

    @cached_property
    def retriever(self) -> Retriever:
        """Finds chunks for a query."""
        s = self.settings
        return Retriever(self.store, self.embedder, mode=s.retrieval_mode,
                         fusion=Fusion.from_str(s.fusion), rrf_k=s.fusion_rrf_k,
                         dense_weight=s.fusion_dense_weight, alpha=s.fusion_alpha,
                         sentences=s.fusion_sentences,
                         reranker=self.reranker, rerank_candidates=s.rerank_candidates)

    @cached_property
    def pipeline(self) -> AnswerPipeline:
        """Retrieval plus the configured LLM, streaming cited answers.

        When the LLM settings are unusable (no model, no URL, an unknown provider) the
        pipeline answers with the sources only, and every answer says what to set: search
        works without a language model, in the web app and on the command line alike.
        """
        s = self.settings
        try:
            llm: LLMClient | None = LLMClient(LLMConfig.from_settings(s),
                                              max_answer_chars=s.llm_max_answer_chars)
            hint = ""
        except ConfigError as exc:
            llm, hint = None, str(exc)
        return AnswerPipeline(self.retriever, llm, top_k=s.top_k, effort=s.reasoning_effort,
                              context_tokens=s.llm_context_tokens,
                              max_output_tokens=s.llm_max_output_tokens, llm_hint=hint,
                              claims=self.claims)

    @cached_property
    def claims(self) -> ClaimChecker | None:
        """Checks each sentence of an answer against its cited sources (CLAIM_CHECK)."""
        s = self.settings
        if not s.claim_check:
            return None
        return ClaimChecker(self.embedder, self.reranker,
                            embedding_threshold=s.claim_threshold_embedding,
                            rerank_threshold=s.claim_threshold_rerank)

    def delete_document(self, doc_id: str) -> DocumentInfo:
        """Delete a document: its chunks and record (DocumentNotFoundError if there is no
        such document), then its kept original files. Returns what was deleted; the caller
        flushes the store."""
        info = self.store.delete_document(doc_id)
        if self.files is not None:
            self.files.remove(doc_id)
        return info

    def close(self) -> None:
        """Release the store and the reranker's connections, if they were opened."""
        if "store" in self.__dict__:
            self.store.close()
        close = getattr(self.__dict__.get("reranker"), "close", None)
        if close is not None:
            close()
