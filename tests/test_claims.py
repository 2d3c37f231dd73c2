"""The claim check: each sentence of an answer scored against the sources it cites.

The loopback gpt-oss server returns crafted answers over a real PDF's real chunks (the real
embedder scores them); the check must mark exactly the unsupported sentences, in the done
event, the answer's JSON, the chat's Markdown (an underline with its reason) and a saved
conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer import Answer
from rag.claims import EMBEDDING_THRESHOLD, ClaimChecker, claim_spans
from rag.embedding import LocalEmbedder
from rag.events import AnswerEvent, DoneEvent, Source
from rag.ingest import Ingestor
from rag.pipeline import AnswerPipeline
from rag.retrieval import Retriever
from rag.schema import Hit
from rag.ui.claim_marks import CLOSE, OPEN
from rag.ui.render import chat_messages
from rag.workspace.records import answer_from_record, answer_record
from tests.helpers import CLOUD_PDF, answer_pipeline
from tests.llm_server import FakeGptOss, reasoning_answer

QUESTION = "What are the essential characteristics of cloud computing?"
SELF_SERVICE = "on-demand self-service"


def _hit(chunk_id: str, text: str) -> Hit:
    return Hit(chunk_id=chunk_id, doc_id="d", source="d", text=text, position=0, page=None,
               page_end=None, heading="", score=0.0)


def test_claim_spans_take_prose_sentences_only():
    answer = ("Milvus stores vectors in collections [1]. It builds indexes on them [2].\n"
              "\n# Summary\n"
              "- HNSW is a graph index for fast search [1]\n"
              "```python\nclient.search(collection_name='x')  # not a claim\n```\n"
              "Do you want to know more about this?\n"
              "Yes.\n"
              "The documents do not say how much memory it needs.")
    spans = [answer[a:b] for a, b in claim_spans(answer)]
    assert spans == ["Milvus stores vectors in collections [1].",
                     "It builds indexes on them [2].",
                     "HNSW is a graph index for fast search [1]"]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder
          ) -> tuple[Retriever, list[Source]]:
    from tests.helpers import open_store

    folder: Path = tmp_path_factory.mktemp("claims")
    store = open_store(folder / "milvus.db", embedder)
    Ingestor(store, embedder).ingest_paths([CLOUD_PDF])
    retriever = Retriever(store, embedder)
    sources = [Source(n, h) for n, h in enumerate(retriever.search(QUESTION, 4), start=1)]
    return retriever, sources


def _numbers(sources: list[Source]) -> tuple[int, int]:
    """The source holding the self-service definition, and the one least like it."""
    holder = next(s.n for s in sources if SELF_SERVICE in s.hit.text.lower())
    others = [s for s in sources if SELF_SERVICE not in s.hit.text.lower()]
    assert others, "the test needs a source that does not define self-service"
    return holder, others[-1].n


def test_crafted_answers_are_marked_exactly(cloud: tuple[Retriever, list[Source]],
                                            embedder: LocalEmbedder, llm: FakeGptOss):
    retriever, sources = cloud
    good, other = _numbers(sources)
    supported = (f"A consumer can unilaterally provision computing capabilities, such as "
                 f"server time and network storage, without human interaction with each "
                 f"service provider [{good}].")
    unsupported = (f"The cloud model was invented by a Dutch railway company in 1912 to "
                   f"schedule its steam trains [{good}].")
    wrong_marker = (f"On-demand self-service means consumers provision server time and "
                    f"storage automatically, without talking to the provider [{other}].")
    uncited = "Cloud computing also lowers the electricity bill of every household."
    unknown = "Broad network access reaches capabilities over the network [9]."
    text = " ".join([supported, unsupported, wrong_marker, uncited, unknown])
    llm.script(reasoning_answer(["Let me answer."], [text]))
    pipeline: AnswerPipeline = answer_pipeline(retriever, llm)
    pipeline.claims = ClaimChecker(embedder)
    answer = Answer(QUESTION)
    events = list(answer.follow(pipeline.ask(QUESTION)))
    done = events[-1]
    assert isinstance(done, DoneEvent), events[-1]
    by_text = {c.text: c for c in done.claims}
    assert list(by_text) == [supported, unsupported, wrong_marker, uncited, unknown]
    verdicts = {text: c.supported for text, c in by_text.items()}
    assert verdicts == {supported: True, unsupported: False, wrong_marker: False,
                        uncited: False, unknown: False}
    assert by_text[supported].support >= EMBEDDING_THRESHOLD > by_text[unsupported].support
    assert by_text[wrong_marker].cites == [other]
    assert by_text[uncited].reason == "no citation" and by_text[uncited].support is None
    assert "[9]" in by_text[unknown].reason and "matches no source" in by_text[unknown].reason
    assert "does not support it" in by_text[unsupported].reason
    # the JSON the API and `rag ask --json` give
    data = answer.to_dict()["claims"]
    assert [c["supported"] for c in data] == [True, False, False, False, False]
    assert set(data[0]) >= {"text", "cites", "support", "supported"}
    _check_chat_marks(answer, [supported], [unsupported, wrong_marker, uncited, unknown])
    # a saved conversation shows them as they were checked
    again = answer_from_record(answer_record(answer))
    assert [c.supported for c in again.claims] == [c.supported for c in answer.claims]
    assert chat_messages(again)[-1] == chat_messages(answer)[-1]


def _check_chat_marks(answer: Answer, good: list[str], bad: list[str]) -> None:
    content = chat_messages(answer)[-1]["content"]
    assert content.count("<span class='rag-unsupported'") == len(bad)
    for sentence in bad:  # each marked sentence sits inside its own span
        words = sentence.split()[:4]
        before = content[:content.index(" ".join(words))]
        assert before.rstrip().endswith("'>"), sentence
    for sentence in good:
        start = content.index(" ".join(sentence.split()[:4]))
        assert not content[:start].rstrip().endswith("'>")
    assert "title='Not checked against a source: this sentence cites none.'" in content


def test_marks_cannot_be_forged_by_the_answer(embedder: LocalEmbedder):
    text = (f"Here is a {OPEN}forged{CLOSE} mark and <span class='rag-unsupported'>raw html"
            f"</span> in an answer without citations at all.")
    answer = Answer("q")
    answer.apply(AnswerEvent(text))
    answer.apply(DoneEvent([], [], {}, None, ClaimChecker(embedder).check(text, [])))
    content = chat_messages(answer)[-1]["content"]
    assert OPEN not in content and CLOSE not in content
    assert content.count("<span class='rag-unsupported'") == 1  # ours, around the sentence
    assert "&lt;span class='rag-unsupported'>raw html" in content


def test_reranker_scores_when_configured(embedder: LocalEmbedder):
    class Overlap:  # a tiny lexical "reranker": shared words over claim words, as a logit
        def score(self, query: str, texts: list[str]) -> list[float]:
            words = set(query.lower().split())
            return [4 * len(words & set(t.lower().split())) / len(words) - 2 for t in texts]

    checker = ClaimChecker(embedder, Overlap())
    sources = [Source(1, _hit("a", "milvus builds hnsw indexes for fast vector search"))]
    claims = checker.check("Milvus builds HNSW indexes for fast vector search [1]. "
                           "Bananas grow on tall trees in warm places [1].", sources)
    assert checker.scorer == "reranker"
    assert [c.supported for c in claims] == [True, False]
    assert all(0 <= c.support <= 1 for c in claims)
