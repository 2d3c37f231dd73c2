"""`rag users` and `rag feedback`: the web app's accounts, and the ratings of its replies.

Each command opens the app's database (DATABASE_URL) for its run and closes it. The workspace
package is imported inside the commands, so other `rag` commands do not load SQLAlchemy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.markup import escape
from rich.table import Table

from rag.choices import Choice, Role
from rag.cli_render import err, exit_on_error, out
from rag.errors import ConfigError
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.workspace import Account, Accounts, FeedbackItem, Workspace

users_app = typer.Typer(help="Accounts of the web app and their roles per knowledge base.",
                        no_args_is_help=True)
feedback_app = typer.Typer(help="Thumbs up and down given in the web app, and their export "
                           "as `rag eval --qa` questions.", no_args_is_help=True)

ALL_KBS = "*"  # rag.workspace.tables.ALL_KBS, not imported here (it loads SQLAlchemy)


class Rating(Choice):
    """Which ratings a feedback command shows."""

    UP = "up"
    DOWN = "down"
    ALL = "all"


RATING_VALUE = {Rating.UP: 1, Rating.DOWN: -1, Rating.ALL: None}

KbOption = Annotated[str, typer.Option(
    "--kb", help="Knowledge base ('*': every knowledge base).")]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from the first line of standard input "
    "(for scripts) instead of asking twice.")]
RatingOption = Annotated[Rating, typer.Option(case_sensitive=False, help="Which ratings.")]
FeedbackKb = Annotated[str | None, typer.Option(
    "--kb", help="Only this knowledge base's feedback (default: every one).")]


@contextmanager
def workspace() -> Iterator[Workspace]:
    """The app's database for one command; RagErrors become a clean message and exit code 1."""
    opened = None
    try:
        with exit_on_error():
            from rag.workspace import Workspace

            opened = Workspace(Settings.from_env().database_url)
            yield opened
    finally:
        if opened is not None:
            opened.close()


def read_password(from_stdin: bool) -> str:
    """A new password: the first line of standard input, or typed twice without echo (asked
    again while it is too short or the two differ)."""
    from rag.workspace.accounts import check_password

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ConfigError("No password on standard input: --password-stdin reads it from "
                              "the first line (e.g. printf '%s\\n' \"$PASSWORD\" | rag ...).")
        return check_password(line)
    while True:
        password = typer.prompt("Password", hide_input=True)
        try:
            check_password(password)
        except ConfigError as exc:
            err.print(f"{escape(str(exc))} Try again.", highlight=False)
            continue
        if typer.prompt("Repeat the password", hide_input=True) == password:
            return password
        err.print("The two passwords differ. Try again.", highlight=False)


def _checked_kb(kb: str) -> str:
    from rag.workspace.accounts import check_name

    return check_name(kb, "A knowledge-base name")


def _ensure_free(accounts: Accounts, name: str) -> None:
    """ConfigError if the name is taken (checked before the password is asked for)."""
    try:
        accounts.get(name)
    except ConfigError:
        return
    raise ConfigError(f"An account named {name.strip()!r} already exists: change its password "
                      f"with `rag users passwd`, its role with `rag users grant`.")


def roles_text(account: Account) -> str:
    """'admin in *, editor in docs': the every-knowledge-base grant first."""
    kbs = sorted(account.roles, key=lambda kb: (kb != ALL_KBS, kb))
    return ", ".join(f"{account.roles[kb].value} in {kb}" for kb in kbs)


def _utc(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The login name.")],
    role: Annotated[Role, typer.Option(case_sensitive=False, help="Its role.")] = Role.VIEWER,
    kb: KbOption = ALL_KBS,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add an account (logins to the web app are on once one exists)."""
    from rag.workspace.accounts import check_name

    with workspace() as ws:
        name, kb = check_name(name), _checked_kb(kb)
        _ensure_free(ws.accounts, name)
        account = ws.accounts.add(name, read_password(password_stdin), role, kb=kb)
    _say(f"added {account.name} ({roles_text(account)})")


@users_app.command("passwd")
def users_passwd(name: Annotated[str, typer.Argument(help="The account.")],
                 password_stdin: PasswordStdin = False) -> None:
    """Set an account's password."""
    with workspace() as ws:
        account = ws.accounts.get(name)
        ws.accounts.set_password(account.name, read_password(password_stdin))
    _say(f"changed the password of {account.name}")


@users_app.command("rm")
def users_rm(name: Annotated[str, typer.Argument(help="The account.")],
             yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
             ) -> None:
    """Remove an account and its roles (its saved conversations stay)."""
    with workspace() as ws:
        account = ws.accounts.get(name)
        if not yes:
            typer.confirm(f"Remove the account {account.name} ({roles_text(account)})?",
                          abort=True)
        ws.accounts.remove(account.name)
    _say(f"removed {account.name}")


@users_app.command("grant")
def users_grant(name: Annotated[str, typer.Argument(help="The account.")],
                role: Annotated[Role, typer.Argument(case_sensitive=False, help="The role.")],
                kb: KbOption = ALL_KBS) -> None:
    """Give an account a role in a knowledge base (replacing its role there)."""
    with workspace() as ws:
        account = ws.accounts.grant(name, role, kb=_checked_kb(kb))
    _say(f"{account.name}: {roles_text(account)}")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON line per account.")] = False) -> None:
    """List the accounts and their roles."""
    with workspace() as ws:
        accounts = ws.accounts.list()
    if as_json:
        for a in accounts:
            created = a.created_at.replace(tzinfo=UTC).isoformat() if a.created_at else None
            _json_line(sys.stdout, {"name": a.name, "created_at": created,
                                    "roles": {kb: r.value for kb, r in a.roles.items()}})
        return
    if not accounts:
        _say("No accounts: the web app has no logins unless RAG_AUTH is set. Add one with "
             "`rag users add NAME`.")
        return
    table = Table("name", "roles", "created (UTC)")
    for a in accounts:
        table.add_row(escape(a.name), escape(roles_text(a)), _utc(a.created_at))
    out.print(table)


@feedback_app.command("list")
def feedback_list(kb: FeedbackKb = None, rating: RatingOption = Rating.ALL) -> None:
    """List the ratings given in the web app, oldest first."""
    with workspace() as ws:
        items = ws.feedback.list(kb=kb, rating=RATING_VALUE[rating])
    if not items:
        _say("No feedback yet: ratings appear here once replies are rated in the web app.")
        return
    table = Table("id", "rating", "question", "note", "when (UTC)")
    for item in items:
        table.add_row(str(item.id), "up" if item.rating > 0 else "down", escape(item.question),
                      escape(item.note), _utc(item.created_at))
    out.print(table)


@feedback_app.command("export")
def feedback_export(
    to: Annotated[Path | None, typer.Option(
        "--out", help="The JSON Lines file to write (default: standard output).")] = None,
    rating: RatingOption = Rating.ALL,
    kb: FeedbackKb = None,
) -> None:
    """Write the ratings as `rag eval --qa` questions: a thumbs-down's evidence is its note (the
    passage that should have been found), a thumbs-up's the opening of the source it cited."""
    with workspace() as ws:
        items = ws.feedback.list(kb=kb, rating=RATING_VALUE[rating])
        rows = _questions(items)
        if to is None:
            _write_lines(sys.stdout, rows)
        else:
            _write_file(to, rows)
    skipped = len(items) - len(rows)
    noun = "question" if len(rows) == 1 else "questions"
    err.print(f"wrote {len(rows)} {noun} ({skipped} skipped)", markup=False, highlight=False)


def _questions(items: list[FeedbackItem]) -> list[dict[str, Any]]:
    """The questions the items make; each item that makes none is reported on stderr."""
    from rag.workspace import as_question

    rows = []
    for item in items:
        row, reason = as_question(item)
        if row is None:
            err.print(f"skipped: {reason}", markup=False, highlight=False)
        else:
            rows.append(row)
    return rows


def _write_file(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        with path.open("w", encoding="utf-8") as file:
            _write_lines(file, rows)
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror or exc}") from None


def _write_lines(file: TextIO, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        _json_line(file, row)


def _json_line(file: TextIO, data: object) -> None:
    file.write(json.dumps(data, ensure_ascii=False) + "\n")
    file.flush()
