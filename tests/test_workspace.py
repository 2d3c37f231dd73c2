"""The app's own database on SQLite and on a real PostgreSQL cluster: migrations, accounts and
roles, conversations kept per owner, feedback and its export as evaluation questions."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import inspect, text

from rag.answer import Answer
from rag.choices import Role
from rag.errors import AccessDenied, ConfigError, WorkspaceError
from rag.evaluation import load_questions
from rag.events import AnswerEvent, DoneEvent, QueryEvent, ReasoningEvent, Source, SourcesEvent
from rag.schema import Hit
from rag.workspace import Access, Workspace, answer_from_record, answer_record, as_question
from rag.workspace.db import parse_url


def _hit(n: int, text_: str, page: int | None = None) -> Source:
    return Source(n, Hit(f"c{n}", "guide.pdf", "guide.pdf", text_, n, page, page,
                         "Setup > Ports", 0.5 + n / 10, 0.7, 3.1))


def _answered(question: str = "Which port does Milvus use?") -> Answer:
    answer = Answer(question)
    events = [QueryEvent("milvus default port", question),
              SourcesEvent([_hit(1, "Milvus listens on port 19530 by default for gRPC.", 4),
                            _hit(2, "The web UI is served on port 9091.", 5)]),
              ReasoningEvent("The first source says 19530."),
              AnswerEvent("Milvus uses port 19530 [1]."),
              DoneEvent([1], [], {"total": 1.5}, {"total_tokens": 42})]
    for event in events:
        answer.apply(event)
    return answer


@pytest.fixture
def workspace(database_url: str):
    ws = Workspace(database_url)
    yield ws
    ws.close()


def test_migrations_create_the_tables_once(database_url: str) -> None:
    first = Workspace(database_url)
    tables = set(inspect(first.db.engine).get_table_names())
    assert {"users", "grants", "conversations", "messages", "feedback",
            "alembic_version"} <= tables
    first.close()
    again = Workspace(database_url)  # a second open upgrades nothing and loses nothing
    with again.db.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    again.close()


def test_accounts_hash_passwords_and_check_them(workspace: Workspace) -> None:
    accounts = workspace.accounts
    accounts.add("anna", "correct horse", Role.EDITOR)
    accounts.add("bob", "battery staple", Role.VIEWER, kb="team")
    with workspace.db.engine.connect() as c:
        stored = c.execute(text("SELECT password_hash FROM users WHERE name='anna'")).scalar()
    assert stored.startswith("$argon2") and "correct horse" not in stored
    assert accounts.verify("anna", "correct horse")
    assert not accounts.verify("anna", "battery staple")
    assert not accounts.verify("nobody", "correct horse")
    with pytest.raises(ConfigError, match="already exists"):
        accounts.add("anna", "another password", Role.VIEWER)
    with pytest.raises(ConfigError, match="at least 8"):
        accounts.add("carl", "short", Role.VIEWER)
    with pytest.raises(ConfigError, match="colon"):
        accounts.add("a:b", "long enough", Role.VIEWER)
    accounts.set_password("anna", "new password")
    assert accounts.verify("anna", "new password") and not accounts.verify("anna",
                                                                            "correct horse")
    assert [a.name for a in accounts.list()] == ["anna", "bob"]
    accounts.remove("bob")
    assert [a.name for a in accounts.list()] == ["anna"]
    with pytest.raises(ConfigError, match="No account"):
        accounts.remove("bob")


def test_roles_per_knowledge_base(workspace: Workspace) -> None:
    accounts = workspace.accounts
    accounts.add("vera", "viewer pass", Role.VIEWER)
    accounts.add("ed", "editor pass", Role.VIEWER)
    accounts.grant("ed", Role.EDITOR, kb="docs")
    access = Access(accounts, admin=("root", "admin pass"))
    assert access.logins
    assert access.login("root", "admin pass") and not access.login("root", "wrong pass")
    assert access.role("ed", "docs") is Role.EDITOR
    assert access.role("ed", "other") is Role.VIEWER
    assert access.role("root", "any") is Role.ADMIN
    access.require("ed", "docs", Role.EDITOR)
    with pytest.raises(AccessDenied, match=r"vera is a viewer .*needs the editor role"):
        access.require("vera", "docs", Role.EDITOR)
    with pytest.raises(AccessDenied, match="Sign in first"):
        access.require(None, "docs", Role.VIEWER)


def test_without_accounts_or_admin_everyone_is_admin(workspace: Workspace) -> None:
    access = Access(workspace.accounts)
    assert not access.logins
    assert access.role(None, "docs") is Role.ADMIN


def test_conversations_are_their_owners_only(workspace: Workspace) -> None:
    convs = workspace.conversations
    mine = convs.create("user:anna", "kb")
    theirs = convs.create("user:bob", "kb")
    answer = _answered()
    convs.add_reply("user:anna", mine.id, answer.question, answer_record(answer), {"k": 5})
    listed = convs.list("user:anna")
    assert [c.id for c in listed] == [mine.id]
    assert listed[0].title == "Which port does Milvus use?" and listed[0].replies == 1
    assert [c.id for c in convs.list("user:bob")] == [theirs.id]
    for call in (lambda: convs.replies("user:bob", mine.id),
                 lambda: convs.rename("user:bob", mine.id, "stolen"),
                 lambda: convs.delete("user:bob", mine.id)):
        with pytest.raises(ConfigError, match="No such conversation"):
            call()
    assert convs.rename("user:anna", mine.id, "  Ports  ").title == "Ports"
    convs.delete("user:anna", mine.id)
    assert convs.list("user:anna") == []


def test_a_saved_answer_comes_back_as_it_was(workspace: Workspace) -> None:
    convs = workspace.conversations
    conv = convs.create("browser:x", "kb")
    answer = _answered()
    convs.add_reply("browser:x", conv.id, answer.question, answer_record(answer), {"k": 5})
    saved = convs.replies("browser:x", conv.id)[0]
    back = answer_from_record(saved.answer)
    assert back.to_dict() == answer.to_dict()
    assert back.answered and back.turn() == answer.turn()
    assert [type(s).__name__ for s in back.steps] == ["Search", "Thought"]
    assert saved.settings == {"k": 5}


def test_replace_last_reply(workspace: Workspace) -> None:
    convs = workspace.conversations
    conv = convs.create("browser:x", "kb")
    for q in ("first?", "second?"):
        convs.add_reply("browser:x", conv.id, q, answer_record(_answered(q)), {})
    convs.replace_last("browser:x", conv.id)
    convs.add_reply("browser:x", conv.id, "second, edited?",
                    answer_record(_answered("second, edited?")), {})
    assert [r.question for r in convs.replies("browser:x", conv.id)] == ["first?",
                                                                         "second, edited?"]


def test_feedback_exports_as_questions_rag_eval_reads(workspace: Workspace, tmp_path) -> None:
    log = workspace.feedback
    record = answer_record(_answered())
    up = log.record(owner="user:anna", kb="kb", rating=1, note="", answer=record, settings={})
    down = log.record(owner="user:anna", kb="kb", rating=-1, note="", answer=record,
                      settings={"mode": "hybrid"})
    log.set_note(down, "served on port 9091")
    bare = log.record(owner="user:anna", kb="kb", rating=-1, note=" ", answer=record,
                      settings={})
    with pytest.raises(ConfigError):
        log.record(owner="x", kb="kb", rating=0, note="", answer=record, settings={})
    items = {i.id: i for i in log.list()}
    rows = {i: as_question(item) for i, item in items.items()}
    assert rows[up][0] == {"id": f"feedback-{up}", "question": "Which port does Milvus use?",
                           "evidence": "Milvus listens on port 19530 by default for gRPC.",
                           "source": "guide.pdf", "page": 4, "kind": "feedback-up"}
    assert rows[down][0]["evidence"] == "served on port 9091"
    assert rows[bare][0] is None and "no note" in rows[bare][1]
    path = tmp_path / "feedback.jsonl"

    path.write_text("".join(json.dumps(r) + "\n" for r, _ in rows.values() if r))
    questions = load_questions(path)
    assert [q.kind for q in questions] == ["feedback-up", "feedback-down"]
    assert questions[0].matches(_hit(1, "Milvus listens on port 19530 by default for gRPC.",
                                     4).hit)


def test_concurrent_writers_lose_nothing(workspace: Workspace) -> None:
    convs = workspace.conversations
    ids = [convs.create(f"user:u{i}", "kb").id for i in range(5)]
    errors: list[BaseException] = []

    def chat(i: int) -> None:
        try:
            for n in range(8):
                record = answer_record(_answered(f"q{n}"))
                convs.add_reply(f"user:u{i}", ids[i], f"q{n}", record, {})
                workspace.feedback.record(owner=f"user:u{i}", kb="kb", rating=1, note="",
                                          answer=record, settings={})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert all(len(convs.replies(f"user:u{i}", ids[i])) == 8 for i in range(5))
    assert len(workspace.feedback.list()) == 40


def test_bad_urls_and_unreachable_servers_say_what_to_fix(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        parse_url("not a url")
    with pytest.raises(ConfigError, match="SQLite or PostgreSQL"):
        parse_url("mysql://u@h/db")
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(WorkspaceError, match="Check DATABASE_URL") as info:
        Workspace(f"postgresql://someone:secret@/nodb?host={tmp_path}&connect_timeout=2")
    assert "secret" not in str(info.value)
