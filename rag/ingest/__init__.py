"""Ingestion: load, chunk, embed and store files; each file is all-or-nothing.

Chunks of consecutive files share embedding groups, so many small files cost no more to encode
than one big one. A file becomes visible only when all its chunks are stored (see rag.store).
Progress is reported for every page read and every encoder batch, as a share of the whole job
(rag.ingest.progress).

Documents are named by one rule, whichever way they come in (`rag ingest`, a web upload, the
API), rag.loading.document_name: a file found inside a folder that was given is named by its
path relative to that folder ("reference/index.md"); a file given by itself is named by its
file name ("index.md").
"""

from rag.ingest.ingestor import DocumentSource, Ingestor
from rag.ingest.progress import Progress, ProgressCallback, Stage
from rag.ingest.results import IngestResult, Status, check_name, displayable, embedding_text
from rag.loading import FoundFiles, document_name, find_files

__all__ = ["DocumentSource", "FoundFiles", "IngestResult", "Ingestor", "Progress",
           "ProgressCallback", "Stage", "Status", "check_name", "displayable", "document_name",
           "embedding_text", "find_files"]
