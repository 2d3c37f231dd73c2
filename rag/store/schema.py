"""The two collections (chunks, documents), their rows, and the embedding-model check.

Field sizes are Milvus VARCHAR `max_length`s, in bytes of UTF-8. A row that does not fit is
refused here with the document's name, never cut to fit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.errors import ModelMismatchError, StoreError
from rag.redact import redact
from rag.schema import Chunk
from rag.sentences import MAX_PACKED, pack
from rag.store.client import DataType, Function, FunctionType, MilvusClient, milvus
from rag.store.filters import equals

META_ID = "__meta__"  # the documents collection's row naming the embedding model
PENDING = "pending"
ACTIVE = "active"
MAX_TEXT = 65_535  # bytes of a chunk's text, and of its analysed (BM25) text
MAX_HEADING = 2048  # bytes of a chunk's heading path
MAX_NAME_BYTES = 1000  # a document name; doc_id fields hold 1024 (chunks) and 1100 bytes
CHUNK_FIELDS = ["doc_id", "source", "text", "heading", "page", "page_end", "position"]
SENTENCES = "sentences"  # the field of packed sentence vectors (collections made since 2026-12)
DOC_FIELDS = [
    "doc_id", "state", "version", "sha256", "source", "kind", "pages", "chunks", "added_at", "meta",
]


def create_chunks(client: MilvusClient, name: str, dimension: int,
                  bm25: dict[str, float]) -> None:
    """The chunks collection: text, a dense vector, and a BM25 vector made by Milvus."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("source", DataType.VARCHAR, max_length=1024)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT)
    schema.add_field("lexical", DataType.VARCHAR, max_length=MAX_TEXT, enable_analyzer=True,
                     analyzer_params={"type": "standard"})
    schema.add_field("heading", DataType.VARCHAR, max_length=MAX_HEADING)
    schema.add_field("page", DataType.INT64, nullable=True)
    schema.add_field("page_end", DataType.INT64, nullable=True)
    schema.add_field("position", DataType.INT64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    schema.add_field("sentences", DataType.VARCHAR, max_length=MAX_PACKED)  # rag.sentences
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                 input_field_names=["lexical"], output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index("dense", index_type="AUTOINDEX", metric_type="COSINE")
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                    params=dict(bm25))
    client.create_collection(name, schema=schema, index_params=index)


def create_documents(client: MilvusClient, name: str, embedding_model: str,
                     dimension: int) -> None:
    """The documents collection, with its metadata row naming the embedding model."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=1100)
    schema.add_field("state", DataType.VARCHAR, max_length=16)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("sha256", DataType.VARCHAR, max_length=64)
    schema.add_field("source", DataType.VARCHAR, max_length=1024)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("pages", DataType.INT64, nullable=True)
    schema.add_field("chunks", DataType.INT64)
    schema.add_field("added_at", DataType.DOUBLE)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector field
    index = client.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    meta = {"embedding_model": embedding_model, "dimension": dimension}
    with milvus("record the embedding model"):
        client.upsert(name, [document_row(META_ID, state="meta", version="", sha256="",
                                          source="", kind="", pages=None, chunks=0, meta=meta)])


def check_model(client: MilvusClient, uri: str, documents: str, embedding_model: str,
                dimension: int) -> None:
    """Raise unless the collection was built with this embedding model."""
    with milvus(f"read {documents}"):
        rows = client.query(documents, filter=equals("doc_id", META_ID), output_fields=["meta"])
    if not rows:
        raise StoreError(f"Collection {documents} has no metadata row; it was not made by this "
                         "app. Set MILVUS_COLLECTION to another name.")
    meta = rows[0]["meta"]
    if (meta.get("embedding_model"), meta.get("dimension")) != (embedding_model, dimension):
        raise ModelMismatchError(
            f"The knowledge base in {redact(uri)} was built with embedding model "
            f"'{meta.get('embedding_model')}' ({meta.get('dimension')} dimensions), but "
            f"EMBEDDING_MODEL is '{embedding_model}' ({dimension}). Set EMBEDDING_MODEL back, "
            "or use another MILVUS_COLLECTION and ingest again."
        )


def document_row(doc_id: str, *, state: str, version: str, sha256: str, source: str, kind: str,
                 pages: int | None, chunks: int, meta: dict[str, Any],
                 added_at: float | None = None) -> dict[str, Any]:
    """A row of the documents collection (a document, a marker, or the metadata row)."""
    return {"doc_id": doc_id, "state": state, "version": version, "sha256": sha256,
            "source": source, "kind": kind, "pages": pages, "chunks": chunks,
            "added_at": time.time() if added_at is None else added_at, "meta": meta,
            "unused": [0.0, 0.0]}


class ChunkTooLongError(StoreError):
    """Chunks of these documents do not fit their fields; nothing of the batch was written."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(problems.values()))
        self.doc_ids = tuple(problems)  # the documents at fault; the others of the batch are not


def _too_long(chunk: Chunk, lexical: str) -> str | None:
    """Why the chunk does not fit, or None."""
    for field, value, limit in (("text", chunk.text, MAX_TEXT),
                                ("analysed text", lexical, MAX_TEXT),
                                ("heading", chunk.heading_path, MAX_HEADING)):
        size = len(value.encode("utf-8"))
        if size > limit:
            return (f"{chunk.source}: chunk {chunk.position} has a {field} of {size:,} bytes, "
                    f"more than the {limit:,} a chunk can store; split that passage in the file "
                    "(a chunk so large is one long run of characters without spaces)")
    return None


def oversized(chunks: Sequence[Chunk], lexical: Sequence[str]) -> dict[str, str]:
    """Why chunks do not fit their fields, by document id (the first problem of each)."""
    problems: dict[str, str] = {}
    for chunk, lex in zip(chunks, lexical, strict=True):
        if chunk.doc_id not in problems and (problem := _too_long(chunk, lex)):
            problems[chunk.doc_id] = problem
    return problems


def chunk_rows(chunks: Sequence[Chunk], vectors: np.ndarray, lexical: Sequence[str],
               versions: Sequence[str], sentences: Sequence[np.ndarray] | None = None
               ) -> list[dict[str, Any]]:
    """Rows of the chunks collection; ChunkTooLongError names documents whose chunks do not
    fit (they are refused, never cut). With `sentences` (each chunk's sentence vectors) the
    rows carry them packed (for a collection that has the field)."""
    if not len(chunks) == len(vectors) == len(lexical) == len(versions):
        raise ValueError("chunks, vectors, lexical texts and versions must match in length")
    problems = oversized(chunks, lexical)
    if problems:
        raise ChunkTooLongError(problems)
    rows = [{"id": c.id, "doc_id": c.doc_id, "version": ver, "source": c.source, "text": c.text,
             "lexical": lex, "heading": c.heading_path, "page": c.page, "page_end": c.page_end,
             "position": c.position, "dense": vec.tolist()}
            for c, vec, lex, ver in zip(chunks, vectors, lexical, versions, strict=True)]
    if sentences is not None:
        if len(sentences) != len(rows):
            raise ValueError("one array of sentence vectors per chunk")
        for row, own in zip(rows, sentences, strict=True):
            row["sentences"] = pack(own)
    return rows
