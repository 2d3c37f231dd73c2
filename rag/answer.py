"""One answer, accumulated from the pipeline's event stream.

In the spirit of simonw/llm's `Response`: the pipeline yields typed events (rag.events); an
`Answer` applies each of them and knows what the answer is so far. Every front end (the web
chat, the `/ask` API, `rag ask`) folds the stream through it and only renders:

    answer = Answer(question)
    for event in answer.follow(pipeline.ask(question, history, options)):
        render(event, answer)

The rules of the fold live here and nowhere else: a rewritten follow-up changes the searched
query; sources are numbered once and keep their number when found again; a tool call resets
the answer (text the model wrote before searching again is kept as a draft step, not as part
of the answer); a stretch of reasoning ends at the next answer text, tool call, done or error;
citations come from the done event, or from the text while the answer still streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

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
from rag.prompting import Turn, check_citations


@dataclass(slots=True)
class Thought:
    """One stretch of the model's reasoning; `seconds` is set when it ends."""

    text: str
    started: float
    seconds: float | None = None


@dataclass(slots=True)
class Search:
    """One search made for the answer: the question's own (`tool` empty) or one the model ran.

    `original` is the question when the query is its rewrite (a follow-up made standalone);
    `sources` are the numbers of the sources it found; `pending` while it runs.
    """

    query: str
    sources: list[int] = field(default_factory=list)
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    original: str = ""
    pending: bool = False

    @property
    def rewritten(self) -> bool:
        """Whether the searched query differs from the question it came from."""
        return bool(self.original) and (self.query.strip().casefold()
                                        != self.original.strip().casefold())

    def to_dict(self) -> SearchDict:
        """JSON-ready form."""
        return {"query": self.query, "name": self.tool, "arguments": dict(self.arguments),
                "sources": list(self.sources), "original": self.original}


@dataclass(slots=True)
class Draft:
    """Answer text the model wrote before it searched again; not part of the answer."""

    text: str


Step = Thought | Search | Draft


class SearchDict(TypedDict):
    """A search in an answer's JSON form."""

    query: str
    name: str  # the tool the model called; empty for the question's own search
    arguments: dict[str, Any]
    sources: list[int]
    original: str  # the question, when query is its rewrite


class AnswerDict(TypedDict):
    """An answer's JSON form (the `/ask` details and the last line of `rag ask --json`)."""

    question: str
    query: str
    answer: str
    sources: list[dict[str, Any]]
    reasoning: str
    searches: list[SearchDict]
    notices: list[str]
    citations: list[int]
    unknown_citations: list[int]
    claims: list[dict[str, Any]]  # each sentence checked against its cited sources
    error: str | None
    done: bool
    timings: dict[str, float]
    usage: dict[str, int] | None


@dataclass(slots=True)
class Answer:
    """An answer as far as its event stream has come."""

    question: str = ""
    query: str = ""  # what was searched: the question, or its rewrite
    text: str = ""
    sources: dict[int, Source] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    error: str | None = None
    done: bool = False  # the stream has ended (answered, failed or stopped)
    timings: dict[str, float] = field(default_factory=dict)
    usage: dict[str, int] | None = None
    final: DoneEvent | None = None  # the done event, once the answer is complete
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.query = self.query or self.question

    # -- the fold ------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Fold one event into the answer."""
        match event:
            case QueryEvent(query=query, original=original):
                self.question = self.question or original
                self.query = query
                self.steps.append(Search(query, original=original, pending=True))
            case SourcesEvent(sources=sources):
                self.sources.update({s.n: s for s in sources})
                search = self._question_search()
                search.sources.extend(s.n for s in sources if s.n not in search.sources)
                search.pending = False
            case ReasoningEvent(text=text):
                thought = self._open_thought()
                if thought is None:
                    thought = Thought("", self.clock())
                    self.steps.append(thought)
                thought.text += text
            case AnswerEvent(text=text):
                self._close_thought()
                self.text += text
            case ToolCallEvent(name=name, arguments=arguments, sources=sources):
                self._tool_call(name, arguments, sources)
            case NoticeEvent(message=message):
                self.notices.append(message)
            case DoneEvent():
                self._settle()
                self.final = event
                self.timings, self.usage = dict(event.timings), event.usage
            case ErrorEvent(message=message):
                self._settle()
                self.error = message

    def follow(self, events: Iterable[Event]) -> Iterator[Event]:
        """Apply each event, then pass it on: for front ends that render as it grows."""
        for event in events:
            self.apply(event)
            yield event

    def fail(self, message: str) -> None:
        """End the answer with an error that did not come from the stream (an edge's catch)."""
        self.apply(ErrorEvent(message))

    def finish(self) -> None:
        """Mark the stream as ended (it was stopped, or ran out without a done event)."""
        self._settle()

    def _tool_call(self, name: str, arguments: dict[str, Any], found: list[Source]) -> None:
        self._close_thought()
        if self.text:  # the rule: a tool call resets the answer
            self.steps.append(Draft(self.text))
            self.text = ""
        for source in found:
            self.sources.setdefault(source.n, source)
        query = str(arguments.get("query", "")).strip() or name
        self.steps.append(Search(query, [s.n for s in found], tool=name,
                                 arguments=dict(arguments)))

    def _question_search(self) -> Search:
        for step in self.steps:
            if isinstance(step, Search) and not step.tool:
                return step
        search = Search(self.query)
        self.steps.append(search)
        return search

    def _open_thought(self) -> Thought | None:
        last = self.steps[-1] if self.steps else None
        return last if isinstance(last, Thought) and last.seconds is None else None

    def _close_thought(self) -> None:
        thought = self._open_thought()
        if thought is not None:
            thought.seconds = self.clock() - thought.started

    def _settle(self) -> None:
        """The stream ended: nothing is still thinking or searching."""
        self._close_thought()
        for search in self.searches:
            search.pending = False
        self.done = True

    # -- what it knows -------------------------------------------------------------------

    @property
    def thinking(self) -> bool:
        """Whether the model is reasoning right now."""
        return self._open_thought() is not None

    @property
    def reasoning(self) -> str:
        """All the reasoning so far (never part of the answer)."""
        return "".join(step.text for step in self.steps if isinstance(step, Thought))

    @property
    def searches(self) -> list[Search]:
        """Every search made, in order: the question's own first, then the model's."""
        return [step for step in self.steps if isinstance(step, Search)]

    @property
    def listed(self) -> list[Source]:
        """The sources by number."""
        return [self.sources[n] for n in sorted(self.sources)]

    @property
    def citations(self) -> list[int]:
        """Source numbers the answer cites (live while it streams, final once done)."""
        if self.final is not None:
            return list(self.final.citations)
        return check_citations(self.text, self.listed)[0]

    @property
    def unknown_citations(self) -> list[int]:
        """Cited numbers that match no source."""
        if self.final is not None:
            return list(self.final.unknown_citations)
        return check_citations(self.text, self.listed)[1]

    @property
    def claims(self) -> list[Claim]:
        """The answer's sentences, each checked against its cited sources (once done)."""
        return list(self.final.claims) if self.final is not None else []

    @property
    def answered(self) -> bool:
        """Complete, without an error, with text."""
        return self.final is not None and self.error is None and bool(self.text.strip())

    def turn(self) -> Turn | None:
        """The exchange for the chat's history (follow-ups), once answered; else None."""
        return Turn(self.question, self.text) if self.answered else None

    def sources_of(self, search: Search) -> list[Source]:
        """The sources a search found."""
        return [self.sources[n] for n in search.sources if n in self.sources]

    def to_dict(self) -> AnswerDict:
        """JSON-ready form, for the API and `rag ask --json`."""
        return {"question": self.question, "query": self.query, "answer": self.text,
                "sources": [s.to_dict() for s in self.listed], "reasoning": self.reasoning,
                "searches": [s.to_dict() for s in self.searches],
                "notices": list(self.notices), "citations": self.citations,
                "unknown_citations": self.unknown_citations,
                "claims": [c.to_dict() for c in self.claims], "error": self.error,
                "done": self.done, "timings": dict(self.timings), "usage": self.usage}
