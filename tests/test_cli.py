"""The `rag` command end to end: real Milvus Lite, real model, loopback gpt-oss server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import MILVUS_DOCS, PDFS, ROOT, SHARED, RagCommand, rag_command
from tests.helpers import json_lines as _lines
from tests.llm_server import FakeGptOss, echo_quote


@pytest.fixture
def run(tmp_path: Path, llm: FakeGptOss) -> RagCommand:
    """`rag` on tmp_path/kb.db, answering from the loopback gpt-oss server; output piped."""
    return rag_command(tmp_path, OPENAI_BASE_URL=llm.base_url, OPENAI_API_KEY="test")


def test_ingest_search_docs_rm(run, tmp_path: Path):
    broken = PDFS / "edge-truncated-nist-sp800-145.pdf"
    result = run("ingest", "--json", str(MILVUS_DOCS / "faq"), str(broken), ok=False)
    assert result.returncode == 1  # one file failed, the rest went in
    by_source = {r["source"]: r for r in _lines(result.stdout)}
    assert by_source[broken.name]["status"] == "failed" and by_source[broken.name]["reason"]
    assert "startxref" not in result.stderr  # pypdf's repair warnings are debug logging
    assert "Traceback" not in result.stderr
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


def test_piped_tables_keep_names_whole_and_lines_unwrapped(run, tmp_path: Path):
    kb = tmp_path / "kb"
    guide = kb / "userGuide" / "manage-indexes"
    guide.mkdir(parents=True)
    shutil.copy(MILVUS_DOCS / "faq" / "product_faq.md", guide / "index-vector-fields.md")
    shutil.copy(PDFS / "nist-sp800-145-cloud-definition-7p.pdf", kb)
    (kb / "diagram.gif").write_bytes(b"GIF89a")
    ingested = run("ingest", str(kb)).stdout
    assert "2 added; 1 file of other types (.gif) skipped" in ingested
    listed = run("docs").stdout
    for table in (ingested, listed):
        lines = table.splitlines()
        assert any("userGuide/manage-indexes/index-vector-fields.md" in line for line in lines)
        assert any("nist-sp800-145-cloud-definition-7p.pdf" in line for line in lines)
        assert "…" not in table
    found = run("search", "-k", "2", "What is the NIST definition of cloud computing?").stdout
    assert "nist-sp800-145-cloud-definition-7p.pdf · p. " in found
    assert len(max(found.splitlines(), key=len)) > 200  # a hit's text is one line, not wrapped

    narrow = run("docs", COLUMNS="90").stdout  # a terminal's width: the path's middle goes
    assert "userGuide/…/index-vector-fields.md" in narrow
    assert "nist-sp800-145-cloud-definition-7p.pdf" in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 90


def test_ask_renders_the_answer_then_the_sources(run):
    run("ingest", str(PDFS / "nist-sp800-145-cloud-definition-7p.pdf"))
    result = run("ask", "What are the essential characteristics of cloud computing?")
    assert "Thinking…" in result.stderr
    answer, _, table = result.stdout.partition("Sources")
    assert "[1]" in answer and table
    row = next(line for line in table.splitlines() if "[1]" in line)
    assert "nist-sp800-145-cloud-definition-7p.pdf" in row and "yes" in row
    # then each cited passage under its number, document and page, in full
    _, _, cited = table.partition("Cited passages")
    head = next(line for line in cited.splitlines() if line.startswith("[1] "))
    assert re.fullmatch(r"\[1\] nist-sp800-145-cloud-definition-7p\.pdf · pp?\. [\d-]+.*", head)
    passage = cited.split(head, 1)[1].strip().split("\n")[0].strip()
    assert len(passage) > 100


def test_choices_come_from_the_enums(run):
    run("ingest", str(MILVUS_DOCS / "faq" / "product_faq.md"))
    bad = run("search", "--mode", "fuzzy", "etcd?", ok=False)
    assert bad.returncode == 2 and "fuzzy" in bad.stderr
    assert all(mode in bad.stderr for mode in ("hybrid", "dense", "bm25"))
    [found] = _lines(run("search", "--json", "--mode", "BM25", "-k", "2", "etcd?").stdout)
    assert found["hits"] and all(h["dense_score"] is None for h in found["hits"])
    effort = run("ask", "--effort", "extreme", "etcd?", ok=False)
    assert effort.returncode == 2 and "low" in effort.stderr and "high" in effort.stderr


def test_library_chatter_is_debug_logging(run):
    broken = str(PDFS / "edge-truncated-nist-sp800-145.pdf")
    quiet = run("ingest", broken, ok=False)
    verbose = run("-v", "ingest", broken, ok=False)
    assert quiet.returncode == verbose.returncode == 1
    assert "pypdf" not in quiet.stderr and "pypdf" in verbose.stderr


PINGS = textwrap.dedent("""
    import sys, time
    if sys.argv[1] == "configured":
        from rag.logs import configure_logging
        configure_logging("INFO")
    from concurrent import futures
    import grpc
    # A server that turns down a second ping without data, as Milvus Lite's does pymilvus's.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=[
        ("grpc.http2.max_ping_strikes", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 600_000)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
        ("grpc.keepalive_time_ms", 200), ("grpc.keepalive_permit_without_calls", True),
        ("grpc.http2.max_pings_without_data", 0)])
    grpc.channel_ready_future(channel).result(timeout=10)
    time.sleep(25)
""")


def test_grpc_goaway_lines_stay_off_the_console(tmp_path: Path):
    """grpcio's C core logs the GOAWAY ... too_many_pings line at ERROR; configure_logging
    (called before grpc is imported) keeps it off stderr. The plain run shows the line is
    really produced."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    env["PYTHONPATH"] = str(ROOT)
    runs = {mode: subprocess.Popen([sys.executable, "-c", PINGS, mode], env=env, cwd=tmp_path,
                                   stderr=subprocess.PIPE, text=True)
            for mode in ("plain", "configured")}
    stderr = {mode: process.communicate(timeout=120)[1] for mode, process in runs.items()}
    assert "too_many_pings" in stderr["plain"]
    assert "too_many_pings" not in stderr["configured"] and "GOAWAY" not in stderr["configured"]


def test_ask_with_a_malformed_stream_line_ends_with_an_error_event(run, llm: FakeGptOss):
    """Issue 12, item 5: `data: {not json` from the server was a JSONDecodeError traceback."""
    from tests.llm_server import raw_stream

    run("ingest", str(MILVUS_DOCS / "faq" / "product_faq.md"))
    llm.script(raw_stream(["{not json"], before=["Milvus is "]))
    result = run("ask", "--json", "What is Milvus?", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    events = _lines(result.stdout)
    assert [e["type"] for e in events][-2:] == ["answer", "error"]
    message = events[-1]["message"]
    assert f"The LLM server at {llm.base_url} sent a malformed stream line" in message
    assert "'{not json'" in message and "OPENAI_BASE_URL" in message

    llm.script(raw_stream(['{"choices": [{"delta": {"content": 5}}]}']))
    plain = run("ask", "What is Milvus?", ok=False)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "error: The LLM server at" in plain.stderr
    assert "unexpected shape (choices[0].delta.content: expected text, got 5)" in plain.stderr


def test_ingest_sync_removes_the_documents_whose_files_are_gone(run, tmp_path: Path):
    kb = tmp_path / "kb"
    kb.mkdir()
    for name in ("product_faq.md", "operational_faq.md"):
        shutil.copy(MILVUS_DOCS / "faq" / name, kb / name)
    run("ingest", str(kb))
    (kb / "operational_faq.md").unlink()
    plain = run("ingest", str(kb)).stdout  # without --sync nothing is removed
    assert "removed" not in plain
    assert len(_lines(run("docs", "--json").stdout)) == 2
    synced = run("ingest", "--sync", str(kb)).stdout
    assert "removed 1 document whose files are gone: operational_faq.md" in synced
    assert [d["source"] for d in _lines(run("docs", "--json").stdout)] == ["product_faq.md"]
    as_json = _lines(run("ingest", "--sync", "--json", str(kb)).stdout)
    assert [r["status"] for r in as_json] == ["skipped"]  # nothing more to remove


def test_ctrl_c_stops_an_ingest_at_a_document_boundary_and_a_rerun_finishes_it(
        run, tmp_path: Path):
    import signal
    import time

    kb = tmp_path / "docs"
    kb.mkdir()
    for path in sorted(MILVUS_DOCS.rglob("*.md"))[:80]:
        shutil.copy(path, kb / f"{path.parent.name}-{path.name}")
    env = {**os.environ, "MILVUS_URI": str(tmp_path / "kb.db"), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "rag", "ingest", "--json", str(kb)],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "kb.db").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the store opens after the Ctrl-C handler is in place
    time.sleep(8)  # well into the run
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 130, stderr[-2000:]
    assert "stopping after the current file" in stderr and "run the same command" in stderr
    results = _lines(stdout)
    assert len(results) == 80
    added = {r["source"] for r in results if r["status"] == "added"}
    assert {r["status"] for r in results} <= {"added", "skipped"}
    assert any(r["reason"].startswith("not reached") for r in results)
    docs = {d["source"]: d for d in _lines(run("docs", "--json").stdout)}
    assert set(docs) == added  # every document begun was finished; nothing half-stored
    rerun = _lines(run("ingest", "--json", str(kb)).stdout)
    assert {r["source"] for r in rerun if r["status"] == "added"} == \
        {r["source"] for r in results} - added
    assert len(_lines(run("docs", "--json").stdout)) == 80


def test_a_killed_ingest_resumes_with_what_is_left(run, tmp_path: Path):
    """kill -9 in the middle of a folder: the rerun stores the rest, skips what is stored as
    unchanged, and every document ends whole."""
    import signal
    import time

    kb = tmp_path / "docs"
    kb.mkdir()
    for path in sorted(MILVUS_DOCS.rglob("*.md"))[:60]:
        shutil.copy(path, kb / f"{path.parent.name}-{path.name}")
    env = {**os.environ, "MILVUS_URI": str(tmp_path / "kb.db"), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "rag", "ingest", str(kb)], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "kb.db").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(12)  # well into the run: some files stored, the rest not yet
    assert child.poll() is None, "the ingest ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    rerun = _lines(run("ingest", "--json", str(kb)).stdout)
    assert len(rerun) == 60
    statuses = {r["status"] for r in rerun}
    assert statuses <= {"added", "skipped"}
    assert all(r["reason"] == "unchanged" for r in rerun if r["status"] == "skipped")
    assert "added" in statuses  # the files not reached before the kill
    docs = _lines(run("docs", "--json").stdout)
    assert len(docs) == 60
    again = _lines(run("ingest", "--json", str(kb)).stdout)
    assert {r["status"] for r in again} == {"skipped"}  # now nothing is left to do
