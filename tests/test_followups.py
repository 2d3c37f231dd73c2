"""Follow-up questions: rewritten only when they lean on the conversation, rewrites checked.

The decision and the checks are pure functions, tested directly; the pipeline tests run on real
Milvus Lite, the real embedding model and the loopback gpt-oss server (tests/llm_server.py).
"""

from __future__ import annotations

import pytest

from rag.events import NoticeEvent, QueryEvent, SourcesEvent
from rag.followups import (
    REWRITE_ANSWER_CHARS,
    REWRITE_QUESTIONS,
    depends_on_history,
    fallback_query,
    parse_rewrite,
    rewrite_messages,
    rewrite_problem,
)
from rag.prompting import Turn
from rag.retrieval import Retriever
from tests.helpers import answer_pipeline
from tests.llm_server import FakeGptOss, completion

DEPENDS = [
    # back-references: pronouns, deixis, "the same", "there", "one"
    "Does it support GPU?",
    "What are its limits?",
    "what's the difference between them?",
    "What do they mean by segment?",
    "How do I change that value?",
    "What does that mean?",
    "Why is that?",
    "What does this mean?",
    "Does the same apply to partitions?",
    "What should I do there?",
    "Which one is faster?",
    "What should I use instead?",
    "Does Milvus support Windows too?",
    "What does [2] say about compaction?",
    "How long does it take?",
    "is it fast?",
    # ellipsis
    "what about the server?",
    "how about HNSW",
    "What about MinIO",
    "vs IVF_FLAT?",
    "On Windows?",
    "For a collection with ten million vectors and a GPU?",
    "Tell me more",
    "Could you elaborate?",
    # continuation words, any case, with or without a question mark
    "and for Windows?",
    "And the default?",
    "AND FOR WINDOWS",
    "WHAT ABOUT WINDOWS",
    "So how do I fix it?",
    "Then what?",
    "but why is flushing slow",
    "Also, can I shrink a collection",
    # very short, naming nothing
    "why?",
    "more",
    "example?",
    "Example",
    "Can you give an example?",
    "what is the default?",
    "Is there a limit?",
    "Which is better?",
    "GPU support?",
    "?",
    # other languages: a continuation word, or very short
    "Und für Windows?",
    "Et pour Windows ?",
    "Warum?",
    "为什么？",
]

SELF_CONTAINED = [
    "How does Milvus flush data?",
    "How do I install Milvus Lite?",
    "What is HNSW?",
    "Who maintains Milvus?",
    "HNSW vs IVF_FLAT",
    "Can I share a MinIO instance among multiple Milvus instances?",
    "Can I share an etcd instance among Milvus instances?",
    "How do I know if Milvus has started?",
    "What's the default index type in Milvus?",
    "What is the maximum dimension of a vector field in Milvus?",
    "Why does my search return fewer results than the limit I set?",
    "how do i configure the flush interval in milvus standalone",
    "In Milvus 2.4, how do I enable mmap?",
    "Should I use HNSW instead of IVF_FLAT?",
    "Are there any limits on the number of partitions per collection?",
    # "it", "that", "this", "there" that point to nothing earlier
    "Is it possible to run Milvus on Windows?",
    "How long does it take to build an HNSW index?",
    "Would it be better to use HNSW for 10 million vectors?",
    "Is it true that Milvus supports GPU indexes?",
    "Is there a way to know that Milvus has started?",
    "What is the index that supports range search?",
    "What does this error mean: collection not loaded",
    "what does `ERR_COLLECTION_NOT_LOADED` mean",
    # other languages with no English cues and more than a few words
    "Wie speichert Milvus Daten?",
    "Comment installer Milvus Lite sur Windows ?",
    "Was ist HNSW?",
    "Milvus如何刷新数据？",
]


@pytest.mark.parametrize("question", DEPENDS)
def test_questions_that_depend_on_the_conversation(question: str):
    assert depends_on_history(question) is True


@pytest.mark.parametrize("question", SELF_CONTAINED)
def test_questions_that_name_their_own_subject(question: str):
    assert depends_on_history(question) is False


def test_the_decision_table_is_big_and_balanced():
    assert len(DEPENDS) + len(SELF_CONTAINED) >= 30
    assert not set(DEPENDS) & set(SELF_CONTAINED)


HISTORY = [Turn("Can I share an etcd instance among Milvus instances?",
                "Yes, you can share an etcd instance among multiple Milvus instances by giving "
                "each one its own root path [1]. Milvus keeps its metadata in etcd under the "
                "rootPath prefix, so separate prefixes keep the instances apart [2].")]
FOLLOW_UP = "And what about MinIO?"
FALLBACK = "Can I share an etcd instance among Milvus instances? And what about MinIO?"


@pytest.mark.parametrize("rewrite", [
    "Can I share a MinIO instance among multiple Milvus instances?",  # restates the answer's frame
    "How do I share MinIO between Milvus instances? Which bucket settings apply?",
    "share MinIO bucket between Milvus instances",
])
def test_a_real_query_passes(rewrite: str):
    assert rewrite_problem(rewrite, FOLLOW_UP, HISTORY) is None


@pytest.mark.parametrize(("rewrite", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    ("MinIO can be shared among Milvus instances [1].", "source numbers"),
    ("Share MinIO between instances [2, 3]", "source numbers"),
    ("I'm sorry, but I can't help with that.", "refusal"),
    ("As an AI, I would search for MinIO sharing", "refusal"),
    ("MinIO sharing " * 12, "far longer"),
    ("x" * 301, "far longer"),
    ("Yes, MinIO can be shared among Milvus instances.", "answer"),
    ("MinIO can be shared. Give each instance its own bucket. Milvus reads its data from it.",
     "answer"),
    ("MinIO sharing\nEach Milvus instance needs its own bucket", "several lines"),
    ("Milvus keeps its metadata in etcd under the rootPath prefix, so separate prefixes", "copied"),
])
def test_a_bad_rewrite_is_rejected(rewrite: str, reason: str):
    problem = rewrite_problem(rewrite, FOLLOW_UP, HISTORY)
    assert problem is not None and reason in problem


def test_parse_rewrite_drops_labels_and_quotes():
    assert parse_rewrite('Here is the standalone query:\n"Can MinIO be shared?"\n') == (
        "Can MinIO be shared?")
    assert parse_rewrite("**Search query:** share MinIO") == "share MinIO"
    assert parse_rewrite("  `MinIO sharing`  ") == "MinIO sharing"
    assert parse_rewrite("first line\nsecond line") == "first line\nsecond line"


def test_fallback_is_the_question_after_what_it_builds_on():
    install = [Turn("how do I install Milvus Lite?", "With pip [1].")]
    assert fallback_query("and for Windows?", install) == (
        "how do I install Milvus Lite? and for Windows?")
    # the previous question is itself a follow-up: the one it builds on comes first
    chain = [*install, Turn("and for Mac?", "Also with pip [1]."), Turn("why?", "Wheels [2].")]
    assert fallback_query("and for Windows?", chain[:2]) == (
        "how do I install Milvus Lite? and for Mac? and for Windows?")
    assert fallback_query("and for Windows?", chain) == (
        "how do I install Milvus Lite? why? and for Windows?")


def test_rewrite_prompt_is_tight():
    history = [Turn(f"Question {n} about Milvus segments?", f"Answer {n} [1]. " + "word " * 300)
               for n in range(6)]
    messages = rewrite_messages("and why?", history)
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"].lower()
    assert "search query" in system and "do not answer" in system
    lines = messages[1]["content"].splitlines()
    asked = [line for line in lines if line.startswith("User: Question")]
    assert asked == [f"User: Question {n} about Milvus segments?"
                     for n in range(6 - REWRITE_QUESTIONS, 6)]
    excerpt = [line for line in lines if line.startswith("Assistant")]
    assert len(excerpt) == 1 and "Answer 5" in excerpt[0] and "[1]" not in excerpt[0]
    assert len(excerpt[0].split(": ", 1)[1]) <= REWRITE_ANSWER_CHARS + 2
    assert lines[-1] == "User: and why?"
    assert len(messages[1]["content"]) < 800


# --- the pipeline, against real Milvus Lite and the loopback gpt-oss server -----------------

def _searched(events: list, retriever: Retriever, query: str) -> None:
    """The sources given to the model are exactly what searching `query` finds."""
    sources = next(e for e in events if isinstance(e, SourcesEvent)).sources
    assert [s.hit.chunk_id for s in sources] == [h.chunk_id for h in retriever.search(query, 4)]


def test_a_self_contained_follow_up_is_searched_as_asked(faq_retriever: Retriever, llm: FakeGptOss):
    question = "How does Milvus flush data?"
    events = list(answer_pipeline(faq_retriever, llm).ask(question, HISTORY))
    assert len(llm.requests) == 1 and llm.requests[0]["stream"]  # the answer; no rewrite
    assert not any(isinstance(e, QueryEvent | NoticeEvent) for e in events)
    _searched(events, faq_retriever, question)
    sent = [m["content"] for m in llm.requests[0]["messages"]]
    assert HISTORY[0].question in sent  # the answer still sees the conversation


def test_a_dependent_follow_up_is_rewritten(faq_retriever: Retriever, llm: FakeGptOss):
    rewrite = "Can I share a MinIO instance among multiple Milvus instances?"
    llm.script(completion(rewrite, reasoning="The user now asks about MinIO."))
    events = list(answer_pipeline(faq_retriever, llm).ask(FOLLOW_UP, HISTORY))
    request = llm.requests[0]
    assert not request.get("stream") and request["reasoning_effort"] == "low"
    prompt = request["messages"][-1]["content"]
    assert f"User: {HISTORY[0].question}" in prompt and prompt.endswith(f"User: {FOLLOW_UP}")
    query = next(e for e in events if isinstance(e, QueryEvent))
    assert (query.query, query.original) == (rewrite, FOLLOW_UP)
    assert not any(isinstance(e, NoticeEvent) for e in events)
    _searched(events, faq_retriever, rewrite)
    assert "minio" in next(e for e in events if isinstance(e, SourcesEvent)
                           ).sources[0].hit.heading.lower()
    assert "The user now asks" not in str(llm.requests[1]["messages"])


def test_raw_harmony_reasoning_never_becomes_the_query(faq_retriever: Retriever, llm: FakeGptOss):
    llm.script(completion("<|channel|>analysis<|message|>They asked about etcd before, so "
                          "MinIO sharing.<|end|><|start|>assistant<|channel|>final<|message|>"
                          "Can Milvus instances share one MinIO?<|return|>"))
    events = list(answer_pipeline(faq_retriever, llm).ask(FOLLOW_UP, HISTORY))
    query = next(e for e in events if isinstance(e, QueryEvent))
    assert query.query == "Can Milvus instances share one MinIO?"


@pytest.mark.parametrize(("reply", "reason"), [
    ("Yes. Milvus instances can share one MinIO when each uses its own bucket [1]. "
     "Set minio.bucketName per instance [2].", "source numbers"),
    ("Milvus keeps its metadata in etcd under the rootPath prefix, so separate prefixes keep "
     "the instances apart", "copied the previous answer"),
])
def test_an_answer_instead_of_a_query_falls_back(faq_retriever: Retriever, llm: FakeGptOss,
                                                 reply: str, reason: str):
    llm.script(completion(reply))
    events = list(answer_pipeline(faq_retriever, llm).ask(FOLLOW_UP, HISTORY))
    notices = [e.message for e in events if isinstance(e, NoticeEvent)]
    assert len(notices) == 1 and reason in notices[0] and FALLBACK in notices[0]
    query = next(e for e in events if isinstance(e, QueryEvent))
    assert (query.query, query.original) == (FALLBACK, FOLLOW_UP)
    _searched(events, faq_retriever, FALLBACK)
    assert events.index(next(e for e in events if isinstance(e, QueryEvent))) < events.index(
        next(e for e in events if isinstance(e, SourcesEvent)))


def test_a_rewrite_with_only_reasoning_falls_back(faq_retriever: Retriever, llm: FakeGptOss):
    llm.script(completion("<|channel|>analysis<|message|>Still thinking about MinIO",
                          finish_reason="length"))
    events = list(answer_pipeline(faq_retriever, llm).ask(FOLLOW_UP, HISTORY))
    notice = next(e for e in events if isinstance(e, NoticeEvent))
    assert "LLM_MAX_OUTPUT_TOKENS" in notice.message
    assert next(e for e in events if isinstance(e, QueryEvent)).query == FALLBACK
    _searched(events, faq_retriever, FALLBACK)
