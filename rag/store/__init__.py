"""The Milvus store: chunks with dense and BM25 vectors, and the documents they belong to.

- `client`: pymilvus (imported only there), connecting, its errors as StoreError.
- `filters`: filter expressions, every value escaped by `literal`.
- `schema`: the two collections, their rows (sizes checked), the embedding-model check.
- `collections`: the opened collections and the calls every part makes on them.
- `pending`: the Lite cache of the versions searches skip.
- `reading`: documents, counts, the visibility filter and the searches.
- `versions`: the write-then-switch protocol that keeps a document from showing half-stored.
- `milvus_store`: `MilvusStore`, all of the above, recovering leftovers on open.
"""

from rag.store.milvus_store import MilvusStore
from rag.store.schema import MAX_HEADING, MAX_NAME_BYTES, MAX_TEXT, ChunkTooLongError

__all__ = ["MAX_HEADING", "MAX_NAME_BYTES", "MAX_TEXT", "ChunkTooLongError", "MilvusStore"]
