"""Evaluation: metrics pinned to trec_eval, evidence matching, question files, `rag eval --qa`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import pytrec_eval

from rag.errors import ConfigError
from rag.evaluation import (
    BeirDataset,
    Question,
    letters_and_digits,
    load_questions,
    ndcg_at,
    qa_report,
    recall_at,
    run_mode,
)
from rag.evaluation.beir import best_chunk_order
from rag.schema import Hit
from tests.helpers import ROOT, SHARED, rag_command


def _hit(text: str, source: str = "a.pdf", page: int | None = None,
         page_end: int | None = None, doc_id: str | None = None) -> Hit:
    return Hit(chunk_id=text[:8], doc_id=doc_id or source, source=source, text=text, position=0,
               page=page, page_end=page_end, heading="", score=0.0)


def test_ndcg_and_recall_match_trec_eval_on_random_runs():
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(40)]
    qrels, runs, ours = {}, {}, {}
    for q in range(60):
        relevant = {d: rng.choice([1, 1, 2]) for d in rng.sample(docs, rng.randint(1, 6))}
        ranked = rng.sample(docs, 25)
        qid = f"q{q}"
        qrels[qid] = relevant
        runs[qid] = {d: float(100 - i) for i, d in enumerate(ranked)}  # distinct, descending
        ours[qid] = (ranked, relevant)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10"})
    reference = evaluator.evaluate(runs)
    for qid, (ranked, relevant) in ours.items():
        assert ndcg_at(ranked, relevant, 10) == pytest.approx(reference[qid]["ndcg_cut_10"],
                                                               abs=1e-9)
        assert recall_at(ranked, relevant, 10) == pytest.approx(reference[qid]["recall_10"],
                                                                abs=1e-9)


def test_beir_ranks_documents_by_their_best_chunk():
    hits = [_hit("x", doc_id="b"), _hit("y", doc_id="a"), _hit("z", doc_id="b")]
    assert best_chunk_order(hits) == ["b", "a"]


def test_beir_qrels_skip_the_header_and_crlf():
    dataset = BeirDataset(SHARED / "beir" / "scifact", "test")
    qrels = dataset.qrels()
    assert len(qrels) == 300
    assert sum(len(v) for v in qrels.values()) == 339
    with pytest.raises(ConfigError, match="No qrels"):
        BeirDataset(SHARED / "beir" / "scifact", "nope").qrels()


def test_letters_and_digits_ignores_case_punctuation_and_markup_in_any_script():
    assert letters_and_digits("The **index**, `HNSW`-based: 16 MB!") == "theindexhnswbased16mb"
    assert letters_and_digits("Résumé: 文档 №5") == "résumé文档5"
    assert letters_and_digits("ﬁle") == "file"  # case folding also unfolds the ligature


def test_a_hit_needs_the_whole_evidence_from_the_right_source_and_page():
    q = Question(id="1", question="?", evidence="Media must be degaussed twice.",
                 source="a.pdf", page=4)
    assert q.matches(_hit("Before: media  must be DEGAUSSED\ntwice. After.", page=4))
    assert q.matches(_hit("media must be degaussed twice", page=3, page_end=5))
    assert not q.matches(_hit("media must be degaussed", page=4))  # only part of the span
    assert not q.matches(_hit("media must be degaussed twice", page=5))  # wrong page
    assert not q.matches(_hit("media must be degaussed twice", page=None))
    assert not q.matches(_hit("media must be degaussed twice", source="b.pdf", page=4))
    loose = Question(id="2", question="?", evidence="degaussed twice")
    assert loose.matches(_hit("x degaussed twice", source="anything.md"))


def test_run_mode_records_the_rank_of_the_first_match_and_the_report_scores_it():
    questions = [
        Question(id="first", question="q1", evidence="alpha beta", kind="paraphrase"),
        Question(id="third", question="q2", evidence="gamma", kind="factoid"),
        Question(id="absent", question="q3", evidence="omega", kind="factoid"),
    ]
    ranked = {"q1": ["alpha beta", "x"], "q2": ["x", "y", "gamma delta"], "q3": ["x"]}
    seen_k = []

    def search(query: str, k: int) -> list[Hit]:
        seen_k.append(k)
        return [_hit(t) for t in ranked[query]]

    run = run_mode(search, questions, depth=30)
    assert run.ranks == {"first": 1, "third": 3, "absent": None}
    assert set(seen_k) == {30}
    report = qa_report(questions, {"hybrid": run}, depth=30)
    hybrid = report["modes"]["hybrid"]
    assert hybrid["hit@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert hybrid["hit@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert hybrid["mrr@10"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert hybrid["kinds"]["factoid"]["hit@5"] == 0.5
    assert {m["id"]: m["rank"] for m in hybrid["misses"]} == {"third": 3, "absent": None}


def test_load_questions_reads_optional_fields_and_names_bad_lines(tmp_path: Path):
    good = tmp_path / "q.jsonl"
    good.write_text('{"id": "a", "question": "Q?", "evidence": "E", "source": "s.pdf", '
                    '"page": 2, "kind": "factoid"}\n\n{"question": "R?", "evidence": "F"}\n',
                    encoding="utf-8")
    first, second = load_questions(good)
    assert (first.source, first.page, first.kind) == ("s.pdf", 2, "factoid")
    assert (second.id, second.source, second.page, second.kind) == ("3", None, None,
                                                                   "unspecified")
    cases = {
        '{"question": "Q"}': "'evidence' must be",
        '{"question": "Q", "evidence": "..."}': "'evidence' must be",
        '{"question": "Q", "evidence": "E", "page": 0}': "'page' must be",
        '{"question": "Q", "evidence": "E", "page": "3"}': "'page' must be",
        "[1, 2]": "expected a JSON object",
        "{not json": "not valid JSON",
    }
    for line, message in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(f'{{"question": "ok", "evidence": "ok"}}\n{line}\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=message) as info:
            load_questions(bad)
        assert "line 2" in str(info.value)
    twice = tmp_path / "twice.jsonl"
    twice.write_text(json.dumps({"id": "x", "question": "q", "evidence": "e"}) + "\n"
                     + json.dumps({"id": "x", "question": "r", "evidence": "f"}) + "\n")
    with pytest.raises(ConfigError, match="used twice"):
        load_questions(twice)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="no questions"):
        load_questions(empty)


def test_rag_eval_qa_end_to_end_on_separate_documents(tmp_path: Path):
    """`rag eval --qa --docs`: a real ingest into a temporary store, every mode, the misses."""
    questions = tmp_path / "q.jsonl"
    rows = [
        {"id": "etcd", "question": "What does etcd keep for Milvus, and where do entities go?",
         "evidence": "etcd stores Milvus module metadata; MinIO stores entities.",
         "source": "product_faq.md", "kind": "paraphrase"},
        {"id": "wrong-file", "question": "What does etcd keep for Milvus?",
         "evidence": "etcd stores Milvus module metadata", "source": "troubleshooting.md",
         "kind": "factoid"},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rag = rag_command(tmp_path, MILVUS_URI=str(tmp_path / "unused.db"))
    result = rag("eval", "--qa", str(questions), "--docs", str(ROOT / "assets" / "demo-docs"),
                 "--depth", "10", "--json")
    report = json.loads(result.stdout)
    assert report["questions"] == 2 and report["mode"] == "hybrid"
    assert set(report["modes"]) == {"dense", "bm25", "hybrid"}
    for mode in report["modes"].values():
        misses = {m["id"]: m["rank"] for m in mode["misses"]}
        assert misses["wrong-file"] is None  # the passage exists, but not in that file
        assert misses.get("etcd", 1) <= 3  # near the top in every mode
        assert mode["hit@5"] == 0.5 and mode["kinds"]["factoid"]["hit@5"] == 0.0
        assert mode["kinds"]["paraphrase"]["hit@5"] == 1.0
    assert not (tmp_path / "unused.db").exists()  # the configured knowledge base is untouched

    both = rag("eval", "--qa", str(questions), "--beir", str(tmp_path), ok=False)
    assert both.returncode == 2 and "exactly one of" in both.stderr
