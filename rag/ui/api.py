"""The public API: /ingest, /search and /ask (also MCP tools when RAG_MCP is on).

Gradio builds each endpoint's description from its function: the docstring's Args, and the
annotations as types. So this module does not use `from __future__ import annotations` (Gradio
reads the return annotation as an object, not as a string).
"""

import inspect
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlencode

import gradio as gr
from gradio.data_classes import FileData

from rag.answer import Answer, AnswerDict
from rag.choices import Effort, Mode, Role
from rag.errors import ConfigError, RagError
from rag.pipeline import AskOptions
from rag.ui.render import link_citations
from rag.ui.services import CHAT_CONCURRENCY, INGEST_CONCURRENCY, Services

log = logging.getLogger(__name__)

MAX_K = 50
# /ask sends the whole answer so far with each update (Gradio's REST path, /call/ask, sends whole
# values; its queue protocol, used by gradio_client and the browser, sends diffs), so updates go
# out at most this often: a long answer costs a bounded number of updates per second, not one
# per token.
UPDATE_SECONDS = 0.1
F = TypeVar("F", bound=Callable[..., Any])


def _yields(item: Any) -> Callable[[F], F]:
    """Declare what a streaming endpoint yields as its return type: Gradio describes a
    function's outputs by its return annotation and does not look inside Iterator[...]."""

    def mark(fn: F) -> F:
        fn.__signature__ = inspect.signature(fn).replace(  # type: ignore[attr-defined]
            return_annotation=item)
        return fn

    return mark


def _api_error(exc: RagError) -> gr.Error:
    """A RagError as the caller sees it: the message only, no traceback in the console. A
    caller's mistake (ConfigError: a bad argument) is not logged; anything else is, once."""
    if not isinstance(exc, ConfigError):
        log.warning("API call failed: %s", exc)
    return gr.Error(str(exc), print_exception=False)


def _k(value: Any) -> int:
    try:
        return max(1, min(int(value), MAX_K))
    except (TypeError, ValueError):
        raise ConfigError(f"k must be a whole number from 1 to {MAX_K}, not {value!r}") from None


def _user(request: gr.Request | None) -> str | None:
    """The signed-in account of an API call (None without logins)."""
    return getattr(request, "username", None) or None


def register_api(services: Services) -> None:
    """Register the endpoints (inside the gr.Blocks context)."""
    gr.api(_ingest_endpoint(services), api_name="ingest", concurrency_limit=INGEST_CONCURRENCY,
           concurrency_id="ingest")
    gr.api(_search_endpoint(services), api_name="search", concurrency_limit=CHAT_CONCURRENCY,
           concurrency_id="search")
    gr.api(_ask_endpoint(services), api_name="ask", concurrency_limit=CHAT_CONCURRENCY,
           concurrency_id="chat")


def _ingest_endpoint(services: Services) -> Callable[..., list[dict]]:
    def ingest(files: list[FileData], request: gr.Request, kb: str = "") -> list[dict]:
        """Add documents (PDF, Markdown, plain text) to the knowledge base.

        Each file is stored under its original file name; a file whose content is already in
        the knowledge base is skipped, and a changed file replaces its earlier version. Over
        MCP, give each file as a string: a data URL with the file's name and its content in
        base64, e.g. "data:text/markdown;name=notes.md;base64,IyBOb3Rlcw==" (the name is
        required: it is the document's name, and its extension gives the type), or the URL of
        a file uploaded to this app, "http://HOST/gradio_api/file=PATH" (what POST
        /gradio_api/upload or Gradio's upload_file_to_gradio tool returns). Other addresses
        are not fetched; an item that is not an uploaded file fails alone.

        Args:
            files: The files to add: uploaded files, or (MCP) data URLs with a name=
                parameter, or URLs of files uploaded to this app.
            kb: The knowledge base to add them to; empty: the default one.

        Returns:
            Per file: source, status (added/replaced/skipped/failed), pages, chunks, reason.
        """
        try:
            done = services.ingest(list(files or []), user=_user(request), kb=kb or None)
        except RagError as exc:
            raise _api_error(exc) from exc
        return [r.to_dict() for r in done]

    return ingest


def _search_endpoint(services: Services) -> Callable[..., list[dict]]:
    s = services.settings
    default_mode = Mode.from_str(s.retrieval_mode)

    def search(request: gr.Request, query: str, k: int = s.top_k, mode: Mode = default_mode,
               documents: list[str] | None = None, kb: str = "") -> list[dict]:
        """Search the knowledge base and return the best-matching passages with their scores.

        Args:
            query: What to look for, in natural language or keywords.
            k: How many passages to return (1-50).
            mode: Ranking: "hybrid" (dense and BM25 fused), "dense" (cosine) or "bm25".
            documents: Document names to search in; empty or omitted searches them all.
            kb: The knowledge base to search; empty: the default one.

        Returns:
            Passages by rank: source, location (page, slide, sheet rows or heading path),
            page, heading, text, score, dense_score, bm25_score, sentence_score, rerank_score
            (null when no reranker ran).
        """
        try:
            services.require(_user(request), Role.VIEWER, kb or None)
            retriever = services.pipeline(kb or None).retriever
            hits = retriever.search(query, _k(k), mode=Mode.from_str(mode),
                                    doc_ids=list(documents or []) or None)
        except RagError as exc:
            raise _api_error(exc) from exc
        return [h.to_dict() for h in hits]

    return search


def _ask_endpoint(services: Services) -> Callable[..., Iterator[tuple[str, AnswerDict]]]:
    s = services.settings
    default_effort, default_mode = Effort.from_str(s.reasoning_effort), Mode.from_str(
        s.retrieval_mode)

    @_yields(tuple[str, AnswerDict])
    def ask(request: gr.Request, question: str, effort: Effort = default_effort,
            k: int = s.top_k, mode: Mode = default_mode, agent: bool = False,
            documents: list[str] | None = None,
            kb: str = "") -> Iterator[tuple[str, AnswerDict]]:
        """Answer a question from the knowledge base with gpt-oss, citing sources as [n].

        Streams the answer as it grows, at most ten updates a second. Each item is (answer so
        far, details); details holds
        the numbered sources (with cosine and BM25 scores) and, once the answer is complete,
        done=true with the cited source numbers and any citation that matches no source.

        Args:
            question: The question to answer.
            effort: Reasoning effort of gpt-oss: "low", "medium" or "high".
            k: How many sources to retrieve (1-50).
            mode: Retrieval mode: "hybrid", "dense" or "bm25".
            agent: If true, the model runs its own searches before answering.
            documents: Document names to search in; empty or omitted searches them all.
            kb: The knowledge base to answer from; empty: the default one.

        Returns:
            The answer so far, with [n] citations
            Details: query, sources, reasoning, searches, notices, error; once done,
            citations, claims (each sentence: text, cites, support, supported, reason),
            timings, and markdown (the answer with each [n] linked to its passage in the
            app's viewer).
        """
        try:
            services.require(_user(request), Role.VIEWER, kb or None)
            options = AskOptions(effort=Effort.from_str(effort), k=_k(k),
                                 mode=Mode.from_str(mode), agent=bool(agent),
                                 doc_ids=list(documents or []) or None)
        except RagError as exc:
            raise _api_error(exc) from exc
        answer = Answer(question)
        shown = 0.0  # when the last update went out
        try:
            for _ in answer.follow(services.pipeline(kb or None).ask(question, [], options)):
                now = time.monotonic()
                if now - shown >= UPDATE_SECONDS:
                    shown = now
                    yield answer.text, answer.to_dict()
        except RagError as exc:
            answer.fail(str(exc))
        answer.finish()
        yield answer.text, {**answer.to_dict(),
                            "markdown": viewer_markdown(answer, _base_url(request), kb)}

    return ask


def _base_url(request: gr.Request | None) -> str:
    """The app's address as the caller reached it ('' when unknown)."""
    inner = getattr(request, "request", None)
    return str(getattr(inner, "base_url", "") or "")


def viewer_markdown(answer: Answer, base_url: str, kb: str = "") -> str:
    """The answer with each [n] linked to its passage in the app's viewer
    (BASE?view=CHUNK&kb=NAME), for a chat bot or a page that shows the API's answer."""
    def href(n: int) -> str:
        query = {"view": answer.sources[n].hit.chunk_id, **({"kb": kb} if kb else {})}
        return f"<{base_url}?{urlencode(query)}>"

    return link_citations(answer.text, set(answer.sources), href)
