"""The answer accumulator over real event streams: the pipeline on Milvus Lite and the FAQ pages,
answering from the loopback gpt-oss server, and hand-written sequences for the exact rules."""

from __future__ import annotations

import json

from rag.answer import Answer, Draft, Search, Thought
from rag.events import (
    AnswerEvent,
    DoneEvent,
    NoticeEvent,
    ReasoningEvent,
    Source,
    SourcesEvent,
    ToolCallEvent,
)
from rag.pipeline import AskOptions
from rag.prompting import Turn
from rag.retrieval import Retriever
from rag.schema import Hit
from tests.helpers import answer_pipeline, open_store
from tests.llm_server import ECHO_REASONING, SSE, FakeGptOss, completion, tool_call_stream

QUESTION = "How does Milvus flush data?"


def _fold(question: str, events) -> Answer:
    answer = Answer(question)
    for _ in answer.follow(events):
        pass
    return answer


def _hit(n: int, text: str = "text") -> Hit:
    return Hit(chunk_id=f"c{n}", doc_id="a.md", source="a.md", text=text, position=n, page=None,
               page_end=None, heading="Intro", score=1.0 / n, dense_score=0.5, bm25_score=2.0,
               rank=n)


def test_a_grounded_answer_from_the_pipeline(faq_retriever: Retriever, llm: FakeGptOss):
    events = list(answer_pipeline(faq_retriever, llm).ask(QUESTION))
    answer = _fold(QUESTION, events)
    sources = next(e for e in events if isinstance(e, SourcesEvent)).sources
    assert answer.done and answer.error is None and answer.answered
    assert answer.text == "".join(e.text for e in events if isinstance(e, AnswerEvent))
    assert answer.text.startswith("According to [1]")
    assert answer.reasoning == ECHO_REASONING and ECHO_REASONING not in answer.text
    assert [s.n for s in answer.listed] == [s.n for s in sources] == [1, 2, 3, 4]
    assert answer.citations == [1] and answer.unknown_citations == []
    assert answer.query == QUESTION
    [search] = answer.searches  # the question's own search, as asked
    assert search.query == QUESTION and not search.tool and not search.rewritten
    assert search.sources == [1, 2, 3, 4]
    thought = next(s for s in answer.steps if isinstance(s, Thought))
    assert thought.seconds is not None and thought.seconds >= 0 and not answer.thinking
    assert {"retrieval", "first_token", "total"} <= answer.timings.keys()
    assert answer.usage and answer.usage["total_tokens"] > 0
    assert answer.turn() == Turn(QUESTION, answer.text)
    data = answer.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready as it is
    assert data["answer"] == answer.text and data["done"] is True
    assert [s["n"] for s in data["sources"]] == [1, 2, 3, 4]
    assert data["sources"][0]["text"] == sources[0].hit.text
    assert data["searches"] == [{"query": QUESTION, "name": "", "arguments": {},
                                 "sources": [1, 2, 3, 4], "original": ""}]


def test_a_rewritten_follow_up_is_the_searched_query(faq_retriever: Retriever, llm: FakeGptOss):
    question = "And what about MinIO?"
    rewrite = "Can I share a MinIO instance among multiple Milvus instances?"
    llm.script(completion(rewrite, reasoning="The user means MinIO."))
    history = [Turn("Can I share an etcd instance among Milvus instances?", "Yes [1].")]
    answer = _fold(question, answer_pipeline(faq_retriever, llm).ask(question, history))
    assert answer.question == question and answer.query == rewrite
    [search] = answer.searches
    assert search.rewritten and search.original == question and search.query == rewrite
    assert search.sources and search.sources == sorted(answer.sources)
    assert answer.to_dict()["query"] == rewrite
    assert answer.turn() == Turn(question, answer.text)  # history keeps the user's question


def test_agentic_search_records_each_search_and_resets_the_answer(faq_retriever: Retriever,
                                                                  llm: FakeGptOss):
    call = tool_call_stream(["search_knowledge_base"], ['{"query": "compaction", ', '"k": 2}'])
    llm.script(SSE([{"content": "Let me look that up. "}, *call.deltas],
                   finish_reason="tool_calls"))
    events = list(answer_pipeline(faq_retriever, llm).ask(
        "compare flush and compaction", options=AskOptions(agent=True, k=2)))
    assert any(isinstance(e, AnswerEvent) and e.text == "Let me look that up. " for e in events)
    answer = _fold("compare flush and compaction", events)
    # the text before the tool call is a draft, not the answer
    assert "Let me look that up." not in answer.text
    assert answer.text.startswith("According to [1]")
    drafts = [s for s in answer.steps if isinstance(s, Draft)]
    assert [d.text for d in drafts] == ["Let me look that up. "]
    first, tool = answer.searches
    assert not first.tool and first.sources == [1, 2]
    assert tool.tool == "search_knowledge_base" and tool.query == "compaction"
    assert tool.arguments == {"query": "compaction", "k": 2}
    found = next(e for e in events if isinstance(e, ToolCallEvent)).sources
    assert tool.sources == [s.n for s in found] and answer.sources_of(tool) == found
    assert set(answer.sources) == {1, 2} | {s.n for s in found}
    steps = [type(s) for s in answer.steps]
    assert steps.index(Draft) < steps.index(Search, 1)  # the draft came before the search
    assert answer.to_dict()["searches"][1]["name"] == "search_knowledge_base"
    assert answer.citations == [1] and answer.done


def test_an_error_mid_stream_keeps_the_partial_answer_and_sources(faq_retriever: Retriever,
                                                                  llm: FakeGptOss):
    llm.script(SSE([{"reasoning": "Hm."}, {"content": "Flushing seals "}],
                   error={"message": "upstream overloaded", "type": "server_error"},
                   finish_reason=None))
    answer = _fold(QUESTION, answer_pipeline(faq_retriever, llm).ask(QUESTION))
    assert answer.done and answer.error
    assert answer.text == "Flushing seals "
    assert answer.sources and answer.final is None and not answer.answered
    assert answer.turn() is None  # a failed answer is not history for follow-ups
    assert not answer.thinking
    data = answer.to_dict()
    assert data["error"] == answer.error and data["done"] is True and data["timings"] == {}


def test_the_fold_rules_on_a_written_sequence():
    ticks = iter([10.0, 12.5, 20.0, 21.0])
    answer = Answer("What is it?", clock=lambda: next(ticks))
    one, two, three = (Source(n, _hit(n)) for n in (1, 2, 3))
    answer.apply(SourcesEvent([one, two]))
    answer.apply(NoticeEvent("Only 2 of 3 sources fit."))
    answer.apply(ReasoningEvent("Let me "))
    answer.apply(ReasoningEvent("think."))
    assert answer.thinking and answer.reasoning == "Let me think."
    answer.apply(AnswerEvent("It is [2] and [9]"))
    assert not answer.thinking
    assert answer.steps[1] == Thought("Let me think.", 10.0, 2.5)
    # live citations while it streams
    assert answer.citations == [2] and answer.unknown_citations == [9]
    # a tool call resets the answer; a source found again keeps its number
    answer.apply(ToolCallEvent("search_knowledge_base", {"query": "  "}, [two, three]))
    assert answer.text == "" and answer.steps[2] == Draft("It is [2] and [9]")
    assert answer.searches[1].query == "search_knowledge_base"  # no query: the tool's name
    assert answer.sources == {1: one, 2: two, 3: three}
    answer.apply(ReasoningEvent("Again."))
    answer.apply(AnswerEvent("Both [1][3]."))
    assert answer.steps[4] == Thought("Again.", 20.0, 1.0)
    answer.apply(DoneEvent(citations=[1, 3], unknown_citations=[], timings={"total": 3.0}))
    assert answer.done and answer.answered and answer.citations == [1, 3]
    assert answer.notices == ["Only 2 of 3 sources fit."]
    assert answer.reasoning == "Let me think.Again."


def test_an_error_at_the_edge_and_a_stopped_stream():
    answer = Answer("Why?")
    answer.fail("The knowledge base is locked by another process.")
    assert answer.done and answer.error.startswith("The knowledge base is locked")
    assert answer.searches == [] and answer.to_dict()["sources"] == []
    stopped = Answer("Why?")
    stopped.apply(ReasoningEvent("Hm"))
    stopped.finish()
    assert stopped.done and not stopped.thinking and stopped.error is None
    assert stopped.turn() is None


def test_an_empty_knowledge_base_is_an_error_without_sources(tmp_path, embedder,
                                                             llm: FakeGptOss):
    store = open_store(tmp_path / "empty.db", embedder)
    try:
        pipeline = answer_pipeline(Retriever(store, embedder), llm)
        answer = _fold("anything?", pipeline.ask("anything?"))
    finally:
        store.close()
    assert answer.error and "empty" in answer.error
    assert answer.sources == {} and answer.searches == [] and answer.query == "anything?"
