"""The `rag` command end to end: real Milvus Lite, real model, loopback gpt-oss server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MILVUS_DOCS, PDFS, ROOT, SHARED
from tests.llm_server import FakeGptOss, echo_quote


@pytest.fixture
def run(tmp_path: Path, llm: FakeGptOss):
    env = {**os.environ, "MILVUS_URI": str(tmp_path / "kb.db"), "OPENAI_BASE_URL": llm.base_url,
           "OPENAI_API_KEY": "test", "LLM_MODEL": "gpt-oss-20b", "PYTHONPATH": str(ROOT)}

    def _run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True,
                                text=True, env=env, timeout=600, cwd=tmp_path)
        if ok:
            assert result.returncode == 0, result.stderr[-2000:]
        return result

    return _run


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_ingest_search_docs_rm(run, tmp_path: Path):
    broken = PDFS / "edge-truncated-nist-sp800-145.pdf"
    result = run("ingest", "--json", str(MILVUS_DOCS / "faq"), str(broken), ok=False)
    assert result.returncode == 1  # one file failed, the rest went in
    by_source = {r["source"]: r for r in _lines(result.stdout)}
    assert by_source[broken.name]["status"] == "failed" and by_source[broken.name]["reason"]
    assert {by_source[f]["status"] for f in ("product_faq.md", "operational_faq.md")} == {"added"}

    table = run("ingest", str(MILVUS_DOCS / "faq")).stdout
    assert "skipped" in table and "4 skipped" in table

    found = _lines(run("search", "--json", "-k", "3", "Can I share an etcd instance?",
                       "How do I know if Milvus has started?").stdout)
    assert [q["query"] for q in found] == ["Can I share an etcd instance?",
                                           "How do I know if Milvus has started?"]
    for query in found:
        assert len(query["hits"]) == 3
        hit = query["hits"][0]
        assert {"source", "page", "heading", "text", "score", "dense_score",
                "bm25_score"} <= hit.keys()
        assert hit["page"] is None and hit["heading"]
    assert "etcd" in found[0]["hits"][0]["heading"]

    listed = _lines(run("docs", "--json").stdout)
    assert sorted(d["source"] for d in listed) == sorted(
        p.name for p in (MILVUS_DOCS / "faq").glob("*.md"))
    assert "deleted troubleshooting.md" in run("rm", "troubleshooting.md").stdout
    missing = run("rm", "troubleshooting.md", ok=False)
    assert missing.returncode == 1 and "No document named" in missing.stderr
    assert len(_lines(run("docs", "--json").stdout)) == len(listed) - 1


def test_ask_streams_json_events_in_order(run, llm: FakeGptOss):
    run("ingest", str(PDFS / "nist-sp800-145-cloud-definition-7p.pdf"))
    events = _lines(run("ask", "--json", "--effort", "high",
                        "What are the essential characteristics of cloud computing?").stdout)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert "reasoning" in kinds and "answer" in kinds
    assert kinds.index("reasoning") < kinds.index("answer")
    sources = events[0]["sources"]
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert {"n", "source", "page", "heading", "text", "score", "dense_score",
            "bm25_score"} <= sources[0].keys()
    answer = "".join(e["text"] for e in events if e["type"] == "answer")
    assert echo_quote(sources[0]["text"]) in answer  # the model saw source [1]
    reasoning = "".join(e["text"] for e in events if e["type"] == "reasoning")
    assert reasoning and reasoning not in answer
    assert events[-1]["citations"] == [1] and events[-1]["unknown_citations"] == []
    assert llm.requests[-1]["reasoning_effort"] == "high"


def test_ask_with_unreachable_llm_fails_clearly_but_shows_sources(run, tmp_path: Path):
    run("ingest", str(PDFS / "pysample-libreoffice-1page.pdf"))
    env_run = subprocess.run(
        [sys.executable, "-m", "rag", "ask", "--json", "What is this about?"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "MILVUS_URI": str(tmp_path / "kb.db"), "PYTHONPATH": str(ROOT),
             "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "LLM_MODEL": "gpt-oss-20b"})
    assert env_run.returncode == 1
    events = _lines(env_run.stdout)
    assert events[0]["type"] == "sources" and events[0]["sources"]
    assert events[-1]["type"] == "error" and "OPENAI_BASE_URL" in events[-1]["message"]


def test_ask_on_an_empty_knowledge_base(run):
    result = run("ask", "--json", "anything?", ok=False)
    assert result.returncode == 1
    assert "empty" in _lines(result.stdout)[-1]["message"]


def test_eval_on_a_small_beir_dataset(run, tmp_path: Path):
    source = SHARED / "beir" / "scifact"
    qrels = (source / "qrels" / "test.tsv").read_text().splitlines()
    judged = [line.split("\t") for line in qrels[1:21]]
    wanted_docs = {row[1].strip() for row in judged}
    wanted_queries = {row[0].strip() for row in judged}
    small = tmp_path / "scifact-small"
    (small / "qrels").mkdir(parents=True)
    with (source / "corpus.jsonl").open() as src, (small / "corpus.jsonl").open("w") as dst:
        for n, line in enumerate(src):
            if n < 150 or json.loads(line)["_id"] in wanted_docs:
                dst.write(line)
    with (source / "queries.jsonl").open() as src, (small / "queries.jsonl").open("w") as dst:
        dst.writelines(line for line in src if json.loads(line)["_id"] in wanted_queries)
    (small / "qrels" / "test.tsv").write_text("\n".join(qrels[:21]) + "\n")

    report = json.loads(run("eval", "--beir", str(small), "--split", "test", "--json").stdout)
    assert report["mode"] == "hybrid" and report["ndcg@10"] == report["hybrid"]["ndcg@10"]
    for mode in ("dense", "bm25", "hybrid"):
        assert report[mode]["queries"] == len(wanted_queries)
        assert 0.3 < report[mode]["ndcg@10"] <= 1.0
        assert report[mode]["recall@100"] >= report[mode]["recall@10"]
