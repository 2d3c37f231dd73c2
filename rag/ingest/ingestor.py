"""The Ingestor: files, folders or (name, loader) pairs into stored, searchable chunks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path

from rag.embedding import Embedder
from rag.errors import LoaderError
from rag.files import FileStore
from rag.ingest.originals import Original
from rag.ingest.progress import ProgressCallback, Tracker
from rag.ingest.reader import Reader
from rag.ingest.results import IngestResult, displayable
from rag.ingest.run import Run
from rag.ingest.turns import ENCODER_TURNS, Claims, Turns
from rag.loading import Limits, LoadedDocument, find_files, load, parse
from rag.schema import DocumentInfo
from rag.store import MilvusStore

DocumentSource = tuple[str, Callable[[], LoadedDocument]]
NOT_REACHED = "not reached: the run was stopped before this file; add it again"
_SERVER_GRACE = 3600.0  # seconds before a file no stored version owns is a leftover (server)


class Ingestor:
    """Turns files into stored, searchable chunks."""

    def __init__(self, store: MilvusStore, embedder: Embedder, *, chunk_tokens: int = 200,
                 chunk_overlap: int = 40, batch_size: int = 256, max_file_mb: float = 100.0,
                 max_pages: int = 2000, max_chunks_per_file: int = 50000,
                 max_pdf_content_mb: float = 64.0, max_page_content_mb: float = 8.0,
                 ocr: bool = True, ocr_languages: str = "eng",
                 files: FileStore | None = None, turns: Turns | None = None,
                 flush_chunks: int = 0) -> None:
        """`batch_size` chunks are embedded and stored together. They go to the encoder in its
        own batches, longest first, so a larger group pads less (ONNX fp32: 26 chunks/s in
        groups of 32, 34 in groups of 256) and progress still moves batch by batch.

        A file larger than `max_file_mb` (checked before it is read), a PDF of more than
        `max_pages` pages or with more page content to parse than `max_pdf_content_mb` MB
        in all or `max_page_content_mb` MB on a page, or a file of more than
        `max_chunks_per_file` chunks fails alone, with the limit and its setting named
        (rag.settings: MAX_FILE_MB, MAX_PAGES, MAX_PDF_CONTENT_MB, MAX_PAGE_CONTENT_MB,
        MAX_CHUNKS_PER_FILE). With `ocr`, scanned pages and images are read by Tesseract in
        `ocr_languages` (OCR, OCR_LANGUAGES); without it they fail alone, saying so.

        With `files`, every stored document that came with an original (a file, an e-mail's
        attachment) keeps it there, committed with it (rag.ingest.originals); a document
        whose original cannot be kept fails alone, with the reason.

        Runs of this ingestor may go at once (several uploads): each reads its files in its own
        thread and takes `turns` (by default the process's ENCODER_TURNS) for each group it
        embeds, so they share the encoder group by group; a document name is stored by one run
        at a time (rag.ingest.turns).

        A run flushes the store once at its end, and with `flush_chunks` also after each
        commit that brings the chunks stored since the last flush to that many: Milvus
        searches chunks that are not flushed yet more slowly as they grow, which chats during a
        long ingest feel."""
        self.flush_chunks = flush_chunks
        self.store = store
        self.turns = turns or ENCODER_TURNS
        self.claims = Claims()
        self.embedder = embedder
        self.files = files
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.batch_size = batch_size
        self.max_file_mb = max_file_mb
        self.max_chunks_per_file = max_chunks_per_file
        # about 2.5 characters per token (numbers, short cells): a table's rows are grouped so
        # that each group, led by the header row, fits one chunk
        self.limits = Limits(max_pages=max_pages, max_pdf_content_mb=max_pdf_content_mb,
                             max_page_content_mb=max_page_content_mb,
                             table_chars=chunk_tokens * 5 // 2, ocr=ocr,
                             ocr_languages=ocr_languages)

    def ingest_paths(self, paths: Iterable[Path | str],
                     progress: ProgressCallback | None = None) -> list[IngestResult]:
        """Ingest files and folders (recursively, documents only: see find_files); a bad file
        fails alone."""
        return self.ingest_files(find_files(paths).files, progress=progress)

    def ingest_files(self, files: Iterable[tuple[Path, str]],
                     progress: ProgressCallback | None = None,
                     stop: threading.Event | None = None) -> list[IngestResult]:
        """Ingest (path, document name) pairs, the names from document_name; a file of another
        type fails alone with the reason. Progress weighs the files by size."""
        documents: list[DocumentSource] = []
        sizes: list[int | None] = []
        originals: list[Original | None] = []
        for path, source in files:
            documents.append((source, partial(load, path, source, max_file_mb=self.max_file_mb,
                                              limits=self.limits)))
            sizes.append(_size(path))
            originals.append(path)
            for name, data in self._attachments(path, source):
                documents.append((name, partial(parse, data, name, name, self.limits)))
                sizes.append(len(data))
                originals.append(data)
        return self.ingest_documents(documents, progress=progress, sizes=sizes, stop=stop,
                                     originals=originals)

    def remove_missing(self, names: Iterable[str]) -> list[DocumentInfo]:
        """Delete every document that is not one of `names` (nor an attachment of one of
        them, "mail.eml/..."): the knowledge base then mirrors those files (`--sync`).
        Returns what was deleted; flushes once. With `files`, the deleted documents' original
        files go too, and so do files that no stored document's version owns (left by an
        ingest or a delete that was cut short; on a Milvus server only those an hour old,
        as another process may be ingesting)."""
        keep = set(names)
        stored = self.store.list_documents()
        gone = [d for d in stored
                if d.source not in keep and d.source.rsplit("/", 1)[0] not in keep]
        deleted = []
        for d in gone:
            deleted.append(self.store.delete_document(d.doc_id))
            if self.files is not None:
                self.files.remove(d.doc_id)
        if deleted:
            self.store.flush()
        if self.files is not None:
            gone_ids = {d.doc_id for d in gone}
            self.files.sweep({d.doc_id: d.meta["version"] for d in stored
                              if d.doc_id not in gone_ids},
                             older_than=0.0 if self.store.is_lite else _SERVER_GRACE)
        return deleted

    def _attachments(self, path: Path, source: str) -> list[tuple[str, bytes]]:
        """An e-mail's attachments that a reader takes, each named after the mail
        ("mail.eml/report.pdf"): they are documents of their own. A mail that cannot be read
        has none here; its own load then fails with the reason."""
        if path.suffix.lower() not in (".eml",):
            return []
        size = _size(path)
        if size is None or size > self.max_file_mb * (1 << 20):
            return []
        from rag.formats.email import attachments

        try:
            found = attachments(path.read_bytes(), source)
        except (OSError, LoaderError):
            return []
        return [(f"{source}/{name}", data) for name, data in found]

    def ingest_documents(self, documents: Iterable[DocumentSource],
                         progress: ProgressCallback | None = None,
                         sizes: Sequence[int | None] | None = None,
                         stop: threading.Event | None = None,
                         originals: Sequence[Original | None] | None = None,
                         ) -> list[IngestResult]:
        """Ingest (source, loader) pairs in order, then flush; returns one result per document.
        `sizes` (bytes) weigh the documents in the progress fractions; without them they weigh
        alike. Once `stop` is set, the run ends at the next document boundary: the documents
        begun are finished and stored, the rest are skipped as NOT_REACHED (running the same
        ingest again does what is left). `originals` (one per document, None for none: a
        file's path or the content itself) are kept in `files` with the documents stored."""
        documents = list(documents)
        if sizes is not None and len(sizes) != len(documents):
            raise ValueError(f"{len(sizes)} sizes for {len(documents)} documents")
        if originals is not None and len(originals) != len(documents):
            raise ValueError(f"{len(originals)} originals for {len(documents)} documents")
        kept = list(originals or [None] * len(documents))
        run = Run(self, Tracker(progress, list(sizes or [None] * len(documents))))
        reader = Reader(self, run.tracker, documents, kept, run.originals, stop, owner=run)
        try:
            run.consume(reader)
        except BaseException:
            reader.cancel()
            run.abort_open()  # a second Ctrl-C or a crash: nothing half-stored stays visible
            raise
        finally:
            self.claims.release_all(run)
        self.store.flush()
        return run.results() + [IngestResult(displayable(source), "skipped", reason=NOT_REACHED)
                                for source, _ in documents[reader.reached:]]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None  # load() reports why
