"""`rag kb` and `rag --kb NAME`: several knowledge bases in one Milvus Lite file, listed in a
real SQLite database, driven through the real `rag` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, UNREACHABLE_LLM, json_lines, rag_command

NOTES_MD = """\
# Team notes

The quokka festival is held in Perth every March, with marmalade tasting.
"""
QUERY = "When is the quokka festival?"


def _sources(run, *words: str) -> list[str]:
    """The sources of the hits of a `rag [words] search --json` run."""
    [found] = json_lines(run(*words, "search", "--json", "-k", "3", QUERY).stdout)
    return [hit["source"] for hit in found["hits"]]


def _answering(cwd: Path, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`rag ARGS` as `rag_command(cwd)` runs it, with `answer` on standard input."""
    env = {**os.environ, "MILVUS_URI": str(cwd / "kb.db"), "PYTHONPATH": str(ROOT),
           "OPENAI_BASE_URL": UNREACHABLE_LLM, "DATABASE_URL": f"sqlite:///{cwd / 'app.db'}"}
    return subprocess.run([sys.executable, "-m", "rag", *args], input=answer,
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def _collections(uri: Path) -> list[str]:
    from pymilvus import MilvusClient

    client = MilvusClient(str(uri))
    try:
        return client.list_collections()
    finally:
        client.close()


def test_a_named_knowledge_base_from_create_to_rm(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(NOTES_MD, encoding="utf-8")
    run = rag_command(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}")

    created = run("kb", "create", "Team notes").stdout
    assert "created Team notes (embedding model all-MiniLM-L6-v2)" in created
    assert "rag --kb 'Team notes' ingest" in created
    again = run("kb", "create", "Team notes", ok=False)
    assert again.returncode == 1
    assert "error: A knowledge base named 'Team notes' already exists" in again.stderr

    ingested = json_lines(run("--kb", "Team notes", "ingest", "--json", "notes.md").stdout)
    assert [(r["source"], r["status"]) for r in ingested] == [("notes.md", "added")]
    assert _sources(run, "--kb", "Team notes") == ["notes.md"]
    assert _sources(run) == []  # the default knowledge base does not hold it

    listed = json_lines(run("kb", "list", "--json").stdout)
    assert [(kb["name"], kb["default"], kb["documents"]) for kb in listed] == [
        ("knowledge_base", True, 0), ("Team notes", False, 1)]
    team = listed[1]
    assert team["embedding_model"] == "all-MiniLM-L6-v2"
    assert team["collection"].startswith("kb_") and team["created_at"].endswith("+00:00")
    table = run("kb", "list").stdout
    assert "knowledge_base (default)" in table and "Team notes" in table

    assert "renamed Team notes to Shared notes" in run(
        "kb", "rename", "Team notes", "Shared notes").stdout
    assert _sources(run, "--kb", "Shared notes") == ["notes.md"]
    gone = run("--kb", "Team notes", "docs", ok=False)
    assert gone.returncode == 1
    assert ("error: No knowledge base is named 'Team notes'. The list: knowledge_base, "
            "Shared notes." in gone.stderr)

    kept = _answering(tmp_path, "n\n", "kb", "rm", "Shared notes")
    assert kept.returncode == 1
    assert "Delete the knowledge base Shared notes and its 1 document?" in kept.stdout
    assert _sources(run, "--kb", "Shared notes") == ["notes.md"]
    removed = _answering(tmp_path, "y\n", "kb", "rm", "Shared notes")
    assert removed.returncode == 0, removed.stderr[-2000:]
    assert "deleted the knowledge base Shared notes" in removed.stdout
    after = run("--kb", "Shared notes", "search", QUERY, ok=False)
    assert after.returncode == 1
    assert "error: No knowledge base is named 'Shared notes'. The list: knowledge_base." in (
        after.stderr)
    assert [kb["name"] for kb in json_lines(run("kb", "list", "--json").stdout)] == [
        "knowledge_base"]
    assert not [c for c in _collections(tmp_path / "kb.db") if c.startswith(team["collection"])]


def test_refusals_are_clean_errors(tmp_path: Path) -> None:
    run = rag_command(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}")
    run("kb", "create", "docs")

    default = run("kb", "rm", "knowledge_base", "--yes", ok=False)
    assert default.returncode == 1
    assert ("error: 'knowledge_base' is the default knowledge base (MILVUS_COLLECTION) and "
            "cannot be deleted" in default.stderr)
    unknown = run("--kb", "nope", "search", QUERY, ok=False)
    assert unknown.returncode == 1
    assert "error: No knowledge base is named 'nope'. The list: knowledge_base, docs." in (
        unknown.stderr)
    assert "Traceback" not in default.stderr + unknown.stderr
    missing = run("kb", "rename", "nope", "other", ok=False)
    assert missing.returncode == 1 and "No knowledge base is named 'nope'" in missing.stderr
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "q", "evidence": "e"}\n', encoding="utf-8")
    both = run("--kb", "docs", "eval", "--qa", str(questions), "--docs", str(tmp_path),
               ok=False)  # --docs builds its own database: --kb cannot apply, and says so
    assert both.returncode == 1 and "cannot also use one" in both.stderr


def test_without_kb_the_sql_database_is_not_opened(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(NOTES_MD, encoding="utf-8")
    run = rag_command(tmp_path, DATABASE_URL="mysql://nobody@nowhere/db")
    run("ingest", "notes.md")
    assert _sources(run) == ["notes.md"]
    refused = run("--kb", "docs", "docs", ok=False)
    assert refused.returncode == 1
    assert "error: DATABASE_URL must be SQLite or PostgreSQL" in refused.stderr
