"""One settings object, read from the environment once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from rag.choices import Effort, Mode, RerankRuntime, Runtime
from rag.claims import EMBEDDING_THRESHOLD, RERANK_THRESHOLD
from rag.errors import ConfigError
from rag.fusion import Fusion

RERANK_OFF = ("none", "off")  # RERANKER values that turn reranking off explicitly
# Fields whose variable set to the empty string is a value (elsewhere it means the default).
EMPTY_IS_A_VALUE = frozenset({"files_dir"})
DEFAULT_FILES_DIR = "./data/files"


@dataclass(frozen=True)
class Settings:
    """Every knob of the app; the environment variable of each field is its upper-case name."""

    milvus_uri: str = "./data/milvus.db"
    milvus_token: str = ""
    milvus_collection: str = "knowledge_base"

    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_backend: str = "local"  # local | openai
    embedding_base_url: str = ""  # defaults to OPENAI_BASE_URL for the openai backend
    embedding_api_key: str = ""
    embedding_batch_size: int = 32
    embedding_runtime: str = "auto"  # auto | torch | onnx | onnx-int8 (local backend only)

    chunk_tokens: int = 200
    chunk_overlap: int = 40
    # Per-file limits: a file over one fails alone, with the limit and its setting named.
    max_file_mb: float = 100.0  # size of a file, checked before it is read
    max_pages: int = 2000  # pages of a PDF
    # content streams a PDF's text is parsed from, decoded, at every use (a stream shared by
    # 200 pages counts 200 times); the shared real PDFs hold at most 2.9 MB, 1.4 MB on a page
    max_pdf_content_mb: float = 64.0
    max_page_content_mb: float = 8.0
    max_chunks_per_file: int = 50000  # chunks of one file (an 18 MB text makes ~27,000)
    # a long ingest run seals its Milvus segment every this many chunks (0: once, at the end):
    # searches of unsealed chunks slow down as they grow (README, "Ingestion at scale")
    ingest_flush_chunks: int = 0
    ocr: bool = True  # read scanned PDF pages and images with Tesseract
    ocr_languages: str = "eng"  # Tesseract language codes, e.g. "eng+deu" (their data installed)

    retrieval_mode: str = "hybrid"
    top_k: int = 5
    fusion: str = "convex"  # convex | rrf: how hybrid search combines dense and BM25
    fusion_rrf_k: int = 60
    fusion_dense_weight: float = 1.0  # rrf: weight of the dense ranking (BM25's is 1)
    fusion_alpha: float = 0.5  # convex: share of the normalised cosine (BM25 gets the rest)
    fusion_sentences: float = 0.7  # convex: share of the best sentence's cosine; 0 turns it off

    reranker: str = ""  # model name or folder; empty: the packaged default if any; none: off
    reranker_backend: str = "local"  # local | http
    reranker_base_url: str = ""  # http backend: the server that answers POST {url}/rerank
    reranker_api_key: str = ""
    reranker_runtime: str = "auto"  # auto | torch | onnx (local backend only)
    rerank_candidates: int = 30  # fused hits the reranker scores (at least top-k)

    # The claim check (rag.claims): each sentence of an answer scored against its cited sources
    # by the reranker if one is on, else the embedder; below the threshold it is marked.
    # Thresholds calibrated by benchmarks/claims.py (see the README's claim-check table).
    claim_check: bool = True
    claim_threshold_embedding: float = EMBEDDING_THRESHOLD
    claim_threshold_rerank: float = RERANK_THRESHOLD

    openai_base_url: str = "http://localhost:11434/v1"
    openai_api_key: str = "ollama"
    llm_model: str = "gpt-oss:20b"
    llm_provider: str = ""  # empty: guessed from the URL (openrouter, ollama, vllm, ...)
    reasoning_effort: str = "medium"
    llm_context_tokens: int = 8192
    llm_max_output_tokens: int = 2048
    llm_timeout: float = 120.0
    llm_max_retries: int = 2
    # characters of answer, reasoning and tool calls one reply may stream (the server may
    # ignore max_tokens); beyond it the answer stops with an error
    llm_max_answer_chars: int = 200_000

    # The app's own data (accounts, conversations, feedback): SQLite by default, or a
    # SQLAlchemy URL such as postgresql+psycopg://user:password@host/db for several processes.
    database_url: str = "sqlite:///./data/app.db"
    # "user:password": one admin account. Logins are on when this is set or when the
    # database holds accounts (`rag users add`).
    rag_auth: str = ""
    # Beyond loopback the web app needs RAG_AUTH, unless this says so (or it is a Space).
    rag_allow_no_auth: bool = False
    gradio_server_name: str = "127.0.0.1"  # where the web app listens (Gradio's variable)
    space_id: str = ""  # set by Hugging Face Spaces: a public demo, served without a login
    rag_mcp: bool = False
    rag_demo_docs: str = ""  # folder loaded into an empty knowledge base on start
    # The original file of every stored document, kept so a reader can download it and the
    # viewer can show its pages: one folder per knowledge base (its collection name) under
    # this one. FILES_DIR= (empty) keeps no originals.
    files_dir: str = DEFAULT_FILES_DIR  # by default: `files` beside the Milvus Lite file

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every field from its upper-case environment variable, when set."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or (raw == "" and f.name not in EMPTY_IS_A_VALUE):
                continue
            values[f.name] = _parse(f.name, raw, type(getattr(cls, f.name)))
        return cls(**values).validated()

    def validated(self) -> Settings:
        """Return self, or raise ConfigError on a contradictory value."""
        Mode.from_str(self.retrieval_mode, what="RETRIEVAL_MODE")
        Effort.from_str(self.reasoning_effort, what="REASONING_EFFORT")
        if self.embedding_backend not in ("local", "openai"):
            raise ConfigError("EMBEDDING_BACKEND must be 'local' or 'openai'")
        Runtime.from_str(self.embedding_runtime, what="EMBEDDING_RUNTIME")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError("CHUNK_OVERLAP must be at least 0 and below CHUNK_TOKENS")
        if self.top_k < 1:
            raise ConfigError("TOP_K must be at least 1")
        self._validate_limits()
        if self.ingest_flush_chunks < 0:
            raise ConfigError("INGEST_FLUSH_CHUNKS must be 0 (flush once, at the end) or more")
        self._validate_fusion()
        self._validate_reranker()
        return self

    def _validate_limits(self) -> None:
        for name in ("max_file_mb", "max_pages", "max_chunks_per_file", "llm_max_answer_chars",
                     "max_pdf_content_mb", "max_page_content_mb"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.upper()} must be above 0")
        if not re.fullmatch(r"[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*", self.ocr_languages):
            raise ConfigError("OCR_LANGUAGES must be Tesseract language codes joined by +, "
                              "such as eng or eng+deu")

    def _validate_fusion(self) -> None:
        try:
            Fusion.from_str(self.fusion)
        except ValueError as exc:
            raise ConfigError(f"FUSION: {exc}") from None
        if self.fusion_rrf_k < 1 or self.fusion_dense_weight <= 0:
            raise ConfigError("FUSION_RRF_K must be at least 1 and FUSION_DENSE_WEIGHT above 0")
        if not 0 <= self.fusion_alpha <= 1:
            raise ConfigError("FUSION_ALPHA must be between 0 and 1")
        if not 0 <= self.fusion_sentences < 1:
            raise ConfigError("FUSION_SENTENCES must be at least 0 and below 1")

    def _validate_reranker(self) -> None:
        if self.reranker_backend not in ("local", "http"):
            raise ConfigError("RERANKER_BACKEND must be 'local' or 'http'")
        RerankRuntime.from_str(self.reranker_runtime, what="RERANKER_RUNTIME")
        if self.rerank_candidates < 1:
            raise ConfigError("RERANK_CANDIDATES must be at least 1")
        if self.reranker_backend != "http" or self.reranker.strip().lower() in RERANK_OFF:
            return
        if not self.reranker.strip():
            raise ConfigError("RERANKER_BACKEND=http needs RERANKER: the model name the rerank "
                              "server serves (or RERANKER=none to turn reranking off)")
        if not self.reranker_base_url.strip():
            raise ConfigError("RERANKER_BACKEND=http needs RERANKER_BASE_URL, e.g. "
                              "http://localhost:8000/v1 (vLLM) or http://localhost:8080 (TEI)")

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes).validated()


def _parse(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name.upper()} must be true or false, not {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(f"{name.upper()} must be a number, not {raw!r}") from None
    return raw
