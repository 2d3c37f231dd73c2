"""`rag users` and `rag feedback` on real databases (SQLite, and PostgreSQL where installed),
and a feedback export read by a real `rag eval --qa` run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from rag.answer import Answer
from rag.cli import app
from rag.events import AnswerEvent, DoneEvent, QueryEvent, Source, SourcesEvent
from rag.schema import Hit
from rag.workspace import Workspace, answer_record
from tests.helpers import ROOT, json_lines, rag_command

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PORTS_MD = """\
# Ports

Milvus listens on port 19530 by default for gRPC clients.

The web UI is served on port 9091 and shows the health of the cluster.
"""


def _rag(url: str, *args: str, input: str | None = None) -> Result:
    """`rag ARGS` in this process, on the database at `url`; the output without colours."""
    result = CliRunner().invoke(app, list(args), input=input, env={"DATABASE_URL": url})
    result.plain_out = ANSI.sub("", result.stdout)  # type: ignore[attr-defined]
    result.plain_err = ANSI.sub("", result.stderr)  # type: ignore[attr-defined]
    return result


def _verify(url: str, name: str, password: str) -> bool:
    ws = Workspace(url)
    try:
        return ws.accounts.verify(name, password)
    finally:
        ws.close()


def test_users_add_list_grant_passwd_rm(database_url: str) -> None:
    url = database_url
    added = _rag(url, "users", "add", "anna", "--role", "editor", "--password-stdin",
                 input="correct horse\n")
    assert added.exit_code == 0, added.stderr
    assert "added anna (editor in *)" in added.plain_out
    assert _verify(url, "anna", "correct horse") and not _verify(url, "anna", "wrong horse")

    again = _rag(url, "users", "add", "anna", "--password-stdin", input="another one\n")
    assert again.exit_code == 1
    assert "error: An account named 'anna' already exists" in again.plain_err
    short = _rag(url, "users", "add", "bob", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.plain_err
    empty = _rag(url, "users", "add", "bob", "--password-stdin", input="")
    assert empty.exit_code == 1 and "No password on standard input" in empty.plain_err
    bad_role = _rag(url, "users", "add", "bob", "--role", "owner", "--password-stdin",
                    input="long enough\n")
    assert bad_role.exit_code == 2 and "viewer" in bad_role.stderr
    ws = Workspace(url)
    assert [a.name for a in ws.accounts.list()] == ["anna"]  # nothing refused was stored
    ws.close()

    # typed twice without echo; a short one and a mistyped repeat are asked again
    typed = _rag(url, "users", "add", "bob", "--kb", "team",
                 input="short\nbattery staple\nbattery stapel\nbattery staple\nbattery staple\n")
    assert typed.exit_code == 0, typed.stderr
    assert "at least 8 characters. Try again." in typed.plain_err
    assert "The two passwords differ" in typed.plain_err
    assert "battery" not in typed.stdout + typed.stderr  # hidden input is not echoed
    assert _verify(url, "bob", "battery staple")

    listed = _rag(url, "users", "list").plain_out
    assert re.search(r"anna\s*│\s*editor in \*\s*│\s*\d{4}-\d\d-\d\d \d\d:\d\d", listed)
    assert re.search(r"bob\s*│\s*viewer in team\s*│", listed)

    granted = _rag(url, "users", "grant", "bob", "ADMIN", "--kb", "team")
    assert granted.exit_code == 0 and "bob: admin in team" in granted.plain_out
    _rag(url, "users", "grant", "bob", "viewer")
    rows = {r["name"]: r for r in json_lines(_rag(url, "users", "list", "--json").stdout)}
    assert rows["bob"]["roles"] == {"team": "admin", "*": "viewer"}
    assert rows["anna"]["roles"] == {"*": "editor"}
    assert rows["anna"]["created_at"].endswith("+00:00")
    assert "admin in team" in _rag(url, "users", "list").plain_out

    changed = _rag(url, "users", "passwd", "anna", "--password-stdin", input="new password\n")
    assert changed.exit_code == 0 and "changed the password of anna" in changed.plain_out
    assert _verify(url, "anna", "new password") and not _verify(url, "anna", "correct horse")
    missing = _rag(url, "users", "passwd", "carl", "--password-stdin", input="long enough\n")
    assert missing.exit_code == 1 and "error: No account is named 'carl'" in missing.plain_err

    kept = _rag(url, "users", "rm", "bob", input="n\n")
    assert kept.exit_code == 1 and "Remove the account bob" in kept.stdout
    assert _verify(url, "bob", "battery staple")
    assert _rag(url, "users", "rm", "bob", input="y\n").exit_code == 0
    removed = _rag(url, "users", "rm", "anna", "--yes")
    assert removed.exit_code == 0 and "removed anna" in removed.plain_out
    assert not _verify(url, "anna", "new password")
    assert "No accounts" in _rag(url, "users", "list").plain_out
    assert _rag(url, "users", "list", "--json").stdout == ""


def test_a_bad_database_url_is_a_clean_error() -> None:
    result = _rag("mysql://u@h/db", "users", "list")
    assert result.exit_code == 1
    assert "error: DATABASE_URL must be SQLite or PostgreSQL" in result.plain_err


def _source(n: int, source: str, text: str) -> Source:
    return Source(n, Hit(f"c{n}", source, source, text, n, None, None, "Ports", 0.5, 0.7, 3.1))


def _answered(question: str, text: str, sources: list[Source]) -> dict:
    answer = Answer(question)
    for event in (QueryEvent(question, question), SourcesEvent(sources), AnswerEvent(text),
                  DoneEvent([1], [], {"total": 1.0}, None)):
        answer.apply(event)
    return answer_record(answer)


def _record_feedback(url: str) -> dict[str, int]:
    """Four ratings: a thumbs-up citing ports.md, a thumbs-down whose note is a phrase of
    ports.md, a thumbs-down without a note, a thumbs-up citing nothing."""
    cited = [_source(1, "ports.md", "Milvus listens on port 19530 by default for gRPC "
                                    "clients."),
             _source(2, "ports.md", "The web UI is served on port 9091.")]
    ws = Workspace(url)
    log = ws.feedback
    ids = {
        "up": log.record(owner="user:anna", kb="docs", rating=1, note="", settings={},
                         answer=_answered("Which port does Milvus listen on for gRPC?",
                                          "Port 19530 [1].", cited)),
        "down": log.record(owner="user:anna", kb="docs", rating=-1,
                           note="served on port 9091", settings={},
                           answer=_answered("Which port serves the web UI?",
                                            "Port 19530 [1].", cited)),
        "bare": log.record(owner="user:anna", kb="docs", rating=-1, note="  ", settings={},
                           answer=_answered("What is etcd for?", "No idea.", cited)),
        "uncited": log.record(owner="browser:x", kb="other", rating=1, note="", settings={},
                              answer=_answered("Hello?", "Hello.", cited)),
    }
    ws.close()
    return ids


def test_feedback_list_and_export_read_by_rag_eval(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    ids = _record_feedback(url)

    listed = _rag(url, "feedback", "list").plain_out
    assert re.search(rf"{ids['down']}\s*│\s*down\s*│\s*Which port serves the web UI\?\s*│"
                     r"\s*served on port 9091\s*│\s*\d{4}-", listed)
    downs = _rag(url, "feedback", "list", "--rating", "down", "--kb", "docs").plain_out
    assert "Which port serves" in downs and "What is etcd for?" in downs
    assert "Which port does Milvus" not in downs and "Hello?" not in downs

    out = tmp_path / "f.jsonl"
    exported = _rag(url, "feedback", "export", "--out", str(out))
    assert exported.exit_code == 0, exported.stderr
    rows = json_lines(out.read_text(encoding="utf-8"))
    assert rows == [
        {"id": f"feedback-{ids['up']}", "question": "Which port does Milvus listen on for gRPC?",
         "evidence": "Milvus listens on port 19530 by default for gRPC clients.",
         "source": "ports.md", "kind": "feedback-up"},
        {"id": f"feedback-{ids['down']}", "question": "Which port serves the web UI?",
         "evidence": "served on port 9091", "kind": "feedback-down"}]
    assert exported.stdout == ""
    stderr = exported.plain_err
    assert (f"skipped: feedback {ids['bare']} (thumbs down) has no note naming the passage"
            in stderr)
    assert f"skipped: feedback {ids['uncited']} (thumbs up) cites no source" in stderr
    assert stderr.strip().endswith("wrote 2 questions (2 skipped)")

    to_stdout = _rag(url, "feedback", "export", "--rating", "down", "--kb", "docs")
    assert [r["id"] for r in json_lines(to_stdout.stdout)] == [f"feedback-{ids['down']}"]
    assert to_stdout.plain_err.strip().endswith("wrote 1 question (1 skipped)")

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ports.md").write_text(PORTS_MD, encoding="utf-8")
    shutil.copy(ROOT / "assets" / "demo-docs" / "product_faq.md", docs)
    rag = rag_command(tmp_path, MILVUS_URI=str(tmp_path / "unused.db"))
    report = json.loads(rag("eval", "--qa", str(out), "--docs", str(docs), "--depth", "10",
                            "--json").stdout)
    assert report["questions"] == 2
    for mode in report["modes"].values():
        for kind in ("feedback-up", "feedback-down"):
            assert mode["kinds"][kind]["questions"] == 1
            assert mode["kinds"][kind]["hit@5"] == 1.0
        assert {m["id"] for m in mode["misses"]} <= {f"feedback-{i}" for i in ids.values()}


def test_account_commands_do_not_load_the_knowledge_base(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        from rag.cli import app
        app(["users", "list"], standalone_mode=False)
        assert "pymilvus" not in sys.modules, "pymilvus was imported"
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
