"""The answering pipeline: a question in; query, sources, reasoning, answer and done events out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag.choices import Effort, Mode
from rag.claims import ClaimChecker
from rag.errors import LLMError, RagError
from rag.events import (
    AnswerEvent,
    Claim,
    DoneEvent,
    ErrorEvent,
    Event,
    NoticeEvent,
    QueryEvent,
    ReasoningEvent,
    Source,
    SourcesEvent,
    ToolCallEvent,
)
from rag.followups import (
    depends_on_history,
    fallback_query,
    parse_rewrite,
    rewrite_messages,
    rewrite_problem,
)
from rag.llm import (
    ContentDelta,
    LLMClient,
    ReasoningDelta,
    Retrying,
    ToolCall,
    ToolCallingUnsupported,
    ToolCallsReady,
    Usage,
    provider_streams_tool_calls,
)
from rag.prompting import (
    SEARCH_TOOL,
    Turn,
    agent_messages,
    answer_messages,
    check_citations,
    format_sources,
)
from rag.retrieval import Retriever

MAX_TOOL_ROUNDS = 4


@dataclass(frozen=True, slots=True)
class AskOptions:
    """Per-question choices; None means the pipeline's default. An effort or mode that is not
    one of rag.choices' ends the answer with an error event naming the choices."""

    effort: Effort | str | None = None
    k: int | None = None
    mode: Mode | str | None = None
    doc_ids: Sequence[str] | None = None
    agent: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved with a reply and its feedback)."""
        return {"effort": None if self.effort is None else str(self.effort), "k": self.k,
                "mode": None if self.mode is None else str(self.mode),
                "doc_ids": None if self.doc_ids is None else list(self.doc_ids),
                "agent": self.agent}


class _Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, round(time.perf_counter() - self.start, 4))


class AnswerPipeline:
    """Retrieves sources and streams a grounded, cited answer from the LLM."""

    def __init__(self, retriever: Retriever, llm: LLMClient | None, *, top_k: int = 5,
                 effort: Effort | str = Effort.MEDIUM, context_tokens: int = 8192,
                 max_output_tokens: int = 2048, llm_hint: str = "",
                 claims: ClaimChecker | None = None) -> None:
        """`claims` checks each sentence of a finished answer against its cited sources (the
        done event's `claims`); None leaves answers unchecked."""
        self.retriever = retriever
        self.claims = claims
        self.llm = llm
        self.top_k = top_k
        self.effort = Effort.from_str(effort)
        self.context_tokens = context_tokens
        self.max_output_tokens = max_output_tokens
        self.llm_hint = llm_hint or "Set OPENAI_BASE_URL, OPENAI_API_KEY and LLM_MODEL."

    def ask(self, question: str, history: Sequence[Turn] = (),
            options: AskOptions = AskOptions()) -> Iterator[Event]:
        """Answer a question; every failure ends the stream with an ErrorEvent."""
        timer = _Timer()
        try:
            yield from self._ask(question, history, options, timer)
        except RagError as exc:
            yield ErrorEvent(str(exc))

    def _ask(self, question: str, history: Sequence[Turn], options: AskOptions,
             timer: _Timer) -> Iterator[Event]:
        if not question.strip():
            yield ErrorEvent("Ask a question first.")
            return
        effort = Effort.from_str(options.effort) if options.effort else self.effort
        mode = Mode.from_str(options.mode) if options.mode else None
        if self.retriever.store.is_empty():
            yield ErrorEvent("The knowledge base is empty: upload documents first "
                             "(the Upload tab, or `rag ingest FILES`).")
            return
        query = question
        if history and self.llm is not None and depends_on_history(question):
            query = yield from self._rewrite(question, history)
        if query != question:
            yield QueryEvent(query=query, original=question)
        options = replace(options, effort=effort, mode=mode)
        hits = self.retriever.search(query, options.k or self.top_k, mode=mode,
                                     doc_ids=options.doc_ids)
        timer.mark("retrieval")
        sources = [Source(n, hit) for n, hit in enumerate(hits, start=1)]
        if self.llm is None:
            yield SourcesEvent(sources)
            yield ErrorEvent(f"No language model is configured, so here are the sources only. "
                             f"{self.llm_hint}")
            return
        yield from self._answer(question, history, sources, options, timer)

    def _answer(self, question: str, history: Sequence[Turn], sources: list[Source],
                options: AskOptions, timer: _Timer) -> Iterator[Event]:
        """Stream the answer from the sources (agentic search when asked and supported)."""
        assert self.llm is not None
        effort = str(options.effort or self.effort)
        notices: list[NoticeEvent] = []
        if options.agent and not provider_streams_tool_calls(self.llm.config.provider_name):
            notices.append(NoticeEvent(
                f"Agentic search is off for {self.llm.config.provider_name}: its streamed tool "
                "calls are unreliable. Answering from one search."))
            options = replace(options, agent=False)
        if options.agent:
            yield SourcesEvent(sources)
            yield from self._agent(question, history, sources, options, effort, timer)
            return
        messages, fitted = answer_messages(question, sources, history,
                                           context_tokens=self.context_tokens,
                                           max_output_tokens=self.max_output_tokens)
        if len(fitted) < len(sources):
            notices.append(NoticeEvent(f"Only {len(fitted)} of {len(sources)} sources fit the "
                                       "model's context window (LLM_CONTEXT_TOKENS)."))
        yield SourcesEvent(fitted)
        yield from notices
        answer, usage, _ = yield from self._stream(messages, effort, timer, tools=None)
        yield from self._done(answer, fitted, usage, timer)

    def _rewrite(self, question: str, history: Sequence[Turn]) -> Iterator[Event]:
        """A follow-up as a standalone query; the model's rewrite when it is one."""
        assert self.llm is not None
        try:
            text = self.llm.complete(rewrite_messages(question, history), effort="low")
        except LLMError as exc:
            query = fallback_query(question, history)
            yield NoticeEvent(f"Could not rewrite the follow-up question ({exc}); searching "
                              f"for it together with the question before it: {query}")
            return query
        rewrite = parse_rewrite(text)
        problem = rewrite_problem(rewrite, question, history)
        if problem is None:
            return rewrite
        query = fallback_query(question, history)
        yield NoticeEvent(f"The model's rewrite of the follow-up was not a search query "
                          f"({problem}); searching for it together with the question before "
                          f"it: {query}")
        return query

    def _stream(self, messages: list[dict], effort: str, timer: _Timer,
                tools: list[dict] | None) -> Iterator[Event]:
        """Stream one completion; returns (answer text, usage, tool calls)."""
        assert self.llm is not None
        parts: list[str] = []
        usage: dict[str, int] | None = None
        calls: list[ToolCall] = []
        for item in self.llm.stream_chat(messages, effort=effort, tools=tools):
            if isinstance(item, ReasoningDelta):
                timer.mark("first_token")
                yield ReasoningEvent(item.text)
            elif isinstance(item, ContentDelta):
                timer.mark("first_token")
                timer.mark("first_answer_token")
                parts.append(item.text)
                yield AnswerEvent(item.text)
            elif isinstance(item, ToolCallsReady):
                calls = list(item.calls)
            elif isinstance(item, Usage):
                usage = {"prompt_tokens": item.prompt_tokens,
                         "completion_tokens": item.completion_tokens,
                         "total_tokens": item.total_tokens}
            elif isinstance(item, Retrying):
                yield NoticeEvent(item.message)
        return "".join(parts), usage, calls

    def _agent(self, question: str, history: Sequence[Turn], sources: list[Source],
               options: AskOptions, effort: str, timer: _Timer) -> Iterator[Event]:
        messages: list[dict] = agent_messages(question, history,
                                              context_tokens=self.context_tokens)
        if sources:
            messages[-1]["content"] += ("\n\nFirst search results:\n\n"
                                        + format_sources(sources))
        by_chunk = {s.hit.chunk_id: s for s in sources}
        total: dict[str, int] = {}
        answer = ""
        for _round in range(MAX_TOOL_ROUNDS + 1):
            tools = [SEARCH_TOOL] if _round < MAX_TOOL_ROUNDS else None
            try:
                answer, usage, calls = yield from self._stream(messages, effort, timer, tools)
            except ToolCallingUnsupported as exc:
                yield NoticeEvent(f"{exc} Answering from the first search instead.")
                plain, _ = answer_messages(question, sources, history,
                                                context_tokens=self.context_tokens,
                                                max_output_tokens=self.max_output_tokens)
                answer, usage, _ = yield from self._stream(plain, effort, timer, tools=None)
                yield from self._done(answer, list(by_chunk.values()), usage, timer)
                return
            for key, value in (usage or {}).items():
                total[key] = total.get(key, 0) + value
            if not calls:
                break
            messages.append({"role": "assistant", "content": answer or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in calls]})
            for call in calls:
                found = self._run_tool(call, options, by_chunk)
                yield ToolCallEvent(call.name, call.arguments, found)
                content = format_sources(found) if found else "No results."
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        yield from self._done(answer, list(by_chunk.values()), total or None, timer)

    def _run_tool(self, call: ToolCall, options: AskOptions,
                  by_chunk: dict[str, Source]) -> list[Source]:
        if call.name != "search_knowledge_base":
            return []
        query = str(call.arguments.get("query", "")).strip()
        try:
            k = max(1, min(10, int(call.arguments.get("k") or self.top_k)))
        except (TypeError, ValueError):
            k = self.top_k
        found = []
        for hit in self.retriever.search(query, k, mode=options.mode, doc_ids=options.doc_ids):
            source = by_chunk.get(hit.chunk_id)
            if source is None:
                source = by_chunk[hit.chunk_id] = Source(len(by_chunk) + 1, hit)
            found.append(source)
        return found

    def _done(self, answer: str, sources: list[Source], usage: dict[str, int] | None,
              timer: _Timer) -> Iterator[Event]:
        """The claim check's notice if it failed, then the done event."""
        cited, unknown = check_citations(answer, sources)
        claims: list[Claim] = []
        if self.claims is not None and answer.strip():
            try:
                claims = self.claims.check(answer, sources)
            except RagError as exc:  # the answer stands; only its check is missing
                yield NoticeEvent(f"The claims of this answer were not checked: {exc}")
            timer.mark("claims")
        timer.mark("total")
        yield DoneEvent(citations=cited, unknown_citations=unknown, timings=dict(timer.marks),
                        usage=usage, claims=claims)
