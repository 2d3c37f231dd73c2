"""The answering pipeline against real Milvus Lite, the real model and a loopback gpt-oss server."""

from __future__ import annotations

from rag.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    NoticeEvent,
    QueryEvent,
    ReasoningEvent,
    SourcesEvent,
    ToolCallEvent,
)
from rag.pipeline import AskOptions
from rag.prompting import Turn, check_citations, cited_numbers
from rag.retrieval import Retriever
from tests.helpers import answer_pipeline, open_store
from tests.llm_server import (
    ECHO_REASONING,
    FakeGptOss,
    completion,
    content_stream,
    http_error,
    tool_call_stream,
)


def test_grounded_answer_stream(faq_retriever: Retriever, llm: FakeGptOss):
    events = list(answer_pipeline(faq_retriever, llm).ask("How does Milvus flush data?"))
    kinds = [type(e) for e in events]
    assert kinds[0] is SourcesEvent and kinds[-1] is DoneEvent
    assert QueryEvent not in kinds  # only a rewritten follow-up has a query event
    sources = events[0].sources
    assert [s.n for s in sources] == [1, 2, 3, 4]
    assert any("flush" in s.hit.heading.lower() for s in sources)
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningEvent))
    answer = "".join(e.text for e in events if isinstance(e, AnswerEvent))
    assert reasoning == ECHO_REASONING and ECHO_REASONING not in answer
    assert sources[0].hit.text.split()[0] in answer  # the model was given source [1]
    prompt = llm.requests[-1]["messages"]
    assert "[1] " in prompt[-1]["content"] and "cite" in prompt[0]["content"].lower()
    assert events[-1].citations == [1]
    assert {"retrieval", "first_token", "total"} <= events[-1].timings.keys()
    assert events[-1].usage and events[-1].usage["total_tokens"] > 0


def test_unknown_citations_are_flagged(faq_retriever: Retriever, llm: FakeGptOss):
    llm.script(content_stream(["Flushing seals segments [1][2]", " and compacts [9]."]))
    done = list(answer_pipeline(faq_retriever, llm).ask("How does Milvus flush data?"))[-1]
    assert isinstance(done, DoneEvent)
    assert done.citations == [1, 2] and done.unknown_citations == [9]


def test_citation_parsing():
    assert cited_numbers("a [1], b [2, 3] and [4-6] then [1]") == [1, 2, 3, 4, 5, 6]
    assert cited_numbers("no markers, [x] or [] here") == []


def test_follow_up_is_rewritten_and_reasoning_is_never_sent_back(faq_retriever: Retriever,
                                                                 llm: FakeGptOss):
    pipeline = answer_pipeline(faq_retriever, llm)
    first = list(pipeline.ask("Can I share an etcd instance among Milvus instances?"))
    answer = "".join(e.text for e in first if isinstance(e, AnswerEvent))
    llm.script(completion("Can I share a MinIO instance among multiple Milvus instances?",
                          reasoning="The user means MinIO."))
    history = [Turn("Can I share an etcd instance among Milvus instances?", answer)]
    events = list(pipeline.ask("And what about MinIO?", history))
    query = next(e for e in events if isinstance(e, QueryEvent))
    assert query.original == "And what about MinIO?"
    assert query.query == "Can I share a MinIO instance among multiple Milvus instances?"
    rewrite_request = llm.requests[-2]
    assert rewrite_request["reasoning_effort"] == "low" and not rewrite_request.get("stream")
    sources = next(e for e in events if isinstance(e, SourcesEvent)).sources
    assert "minio" in sources[0].hit.heading.lower()
    for request in llm.requests[-2:]:
        sent = " ".join(str(m.get("content")) for m in request["messages"])
        assert ECHO_REASONING not in sent and "The user means MinIO" not in sent


def test_agentic_search_numbers_sources_together(faq_retriever: Retriever, llm: FakeGptOss):
    events = list(answer_pipeline(faq_retriever, llm).ask("compare flush and compaction",
                                         options=AskOptions(agent=True, k=2)))
    first = next(e for e in events if isinstance(e, SourcesEvent)).sources
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert len(calls) == 1 and calls[0].name == "search_knowledge_base"
    assert calls[0].arguments["k"] == 3
    numbers = [s.n for s in first] + [s.n for s in calls[0].sources]
    known = {s.hit.chunk_id: s.n for s in first}
    for source in calls[0].sources:  # a chunk found again keeps its number
        assert source.n == known.get(source.hit.chunk_id, source.n)
    assert max(numbers) <= len({s.hit.chunk_id for s in first} |
                               {s.hit.chunk_id for s in calls[0].sources})
    assert llm.requests[0]["tools"][0]["function"]["name"] == "search_knowledge_base"
    assert any(m.get("role") == "tool" for m in llm.requests[-1]["messages"])
    assert isinstance(events[-1], DoneEvent) and events[-1].citations == [1]


def test_agentic_search_falls_back_on_ollama(faq_retriever: Retriever, llm: FakeGptOss):
    events = list(answer_pipeline(faq_retriever, llm, provider="ollama").ask(
        "compare flush and compaction", options=AskOptions(agent=True)))
    assert any(isinstance(e, NoticeEvent) and "ollama" in e.message.lower() for e in events)
    assert not any(isinstance(e, ToolCallEvent) for e in events)
    assert "tools" not in llm.requests[-1] and isinstance(events[-1], DoneEvent)


def test_broken_streamed_tool_call_falls_back(faq_retriever: Retriever, llm: FakeGptOss):
    llm.script(tool_call_stream(["search_knowledge_base"], ['{"query": "flu', "sh"]))
    events = list(answer_pipeline(faq_retriever, llm).ask("How does flushing work?",
                                         options=AskOptions(agent=True)))
    assert any(isinstance(e, NoticeEvent) and "first search" in e.message for e in events)
    assert isinstance(events[-1], DoneEvent)
    assert "".join(e.text for e in events if isinstance(e, AnswerEvent))


def test_llm_errors_keep_sources_visible(faq_retriever: Retriever, llm: FakeGptOss):
    llm.script(http_error(401, "Incorrect API key provided", type="invalid_request_error",
                          code="invalid_api_key"))
    events = list(answer_pipeline(faq_retriever, llm).ask("How does Milvus flush data?"))
    assert isinstance(events[0], SourcesEvent) and events[0].sources
    assert isinstance(events[-1], ErrorEvent) and "OPENAI_API_KEY" in events[-1].message


def test_sources_fit_the_context_budget(faq_retriever: Retriever, llm: FakeGptOss):
    pipeline = answer_pipeline(faq_retriever, llm, context_tokens=900)
    events = list(pipeline.ask("How does Milvus flush data?", options=AskOptions(k=8)))
    notice = next(e for e in events if isinstance(e, NoticeEvent))
    assert "fit" in notice.message
    sources = next(e for e in events if isinstance(e, SourcesEvent)).sources
    assert 1 <= len(sources) < 8
    sent = " ".join(m["content"] for m in llm.requests[-1]["messages"])
    assert len(sent) // 3 < 900 - 512


def test_empty_knowledge_base(tmp_path, embedder, llm: FakeGptOss):
    store = open_store(tmp_path / "empty.db", embedder)
    try:
        events = list(answer_pipeline(Retriever(store, embedder), llm).ask("anything?"))
    finally:
        store.close()
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)
    assert "empty" in events[0].message and llm.requests == []


def test_check_citations_against_sources(faq_retriever: Retriever):
    from rag.events import Source

    hits = faq_retriever.search("flush", k=2)
    sources = [Source(n, h) for n, h in enumerate(hits, start=1)]
    assert check_citations("x [1] y [3]", sources) == ([1], [3])


def test_an_unknown_effort_or_mode_ends_the_stream_naming_the_choices(faq_retriever: Retriever,
                                                                      llm: FakeGptOss):
    pipeline = answer_pipeline(faq_retriever, llm)
    [error] = list(pipeline.ask("How does Milvus flush data?", options=AskOptions(effort="max")))
    assert isinstance(error, ErrorEvent)
    assert error.message == "effort must be one of low, medium or high, not 'max'"
    [error] = list(pipeline.ask("How does Milvus flush data?", options=AskOptions(mode="fuzzy")))
    assert isinstance(error, ErrorEvent) and "mode must be one of hybrid, dense or bm25" in (
        error.message)
    assert llm.requests == []
    events = list(pipeline.ask("How does Milvus flush data?",
                               options=AskOptions(effort="LOW", mode="BM25")))
    assert isinstance(events[-1], DoneEvent)  # case does not matter
    assert llm.requests[-1]["reasoning_effort"] == "low"
    assert all(s.hit.dense_score is None for s in events[0].sources)  # BM25 only


def test_unusable_llm_settings_give_sources_only_for_every_front_end(faq_retriever: Retriever,
                                                                     tmp_path):
    from rag.kb import KnowledgeBase
    from rag.settings import Settings

    kb = KnowledgeBase(Settings(milvus_uri=str(tmp_path / "unused.db"), llm_model=""))
    kb.retriever = faq_retriever  # the FAQ store, already filled
    assert kb.pipeline.llm is None
    events = list(kb.pipeline.ask("How does Milvus flush data?"))
    assert [type(e) for e in events] == [SourcesEvent, ErrorEvent]
    assert events[0].sources
    assert "sources only" in events[1].message and "LLM_MODEL" in events[1].message
