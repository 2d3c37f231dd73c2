"""Split sections into overlapping, token-bounded chunks along the text's own structure.

Two modules: `grouping` (which sections are chunked together, the chunks' ids, pages and
headings, the final token check) and `packing` (one text packed into chunks of whole units).
"""

from rag.chunking.grouping import chunk_id, chunk_sections
from rag.chunking.packing import TokenCounter

__all__ = ["TokenCounter", "chunk_id", "chunk_sections"]
