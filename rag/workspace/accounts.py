"""Accounts: names, Argon2 password hashes (argon2-cffi) and a role per knowledge base."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.choices import Role
from rag.errors import ConfigError, WorkspaceError
from rag.workspace.db import Database
from rag.workspace.tables import ALL_KBS, NAME_LENGTH, Grant, User

MIN_PASSWORD = 8


@dataclass(frozen=True, slots=True)
class Account:
    """An account as listed: its name, its role in each knowledge base ('*': all)."""

    name: str
    roles: dict[str, Role] = field(default_factory=dict)
    created_at: datetime | None = None

    def role_in(self, kb: str) -> Role | None:
        """The account's role in a knowledge base: the higher of its own and the '*' grant."""
        held = [r for k, r in self.roles.items() if k in (kb, ALL_KBS)]
        return max(held, key=list(Role).index) if held else None


def check_name(name: str, what: str = "An account name") -> str:
    """A name stripped of surrounding spaces; ConfigError if empty, too long, or holding a
    control character or a colon (HTTP Basic logins split at the first colon)."""
    name = name.strip()
    if not name or len(name) > NAME_LENGTH:
        raise ConfigError(f"{what} must be 1 to {NAME_LENGTH} characters.")
    if ":" in name or any(unicodedata.category(c).startswith("C") for c in name):
        raise ConfigError(f"{what} may not hold a colon or a control character: {name!r}")
    return name


def check_password(password: str) -> str:
    """The password, if it is long enough."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"A password must be at least {MIN_PASSWORD} characters.")
    return password


class Accounts:
    """The accounts in the app's database."""

    def __init__(self, db: Database, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash("not an account's password")

    def add(self, name: str, password: str, role: Role, kb: str = ALL_KBS) -> Account:
        """Create an account with one grant; ConfigError if the name is taken."""
        name, kb = check_name(name), _kb(kb)
        hashed = self.hasher.hash(check_password(password))
        with self.db.session() as s:
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise ConfigError(f"An account named {name!r} already exists.")
            user = User(name=name, password_hash=hashed)
            user.grants.append(Grant(kb=kb, role=Role.from_str(role).value))
            s.add(user)
        return self.get(name)

    def get(self, name: str) -> Account:
        """One account; ConfigError if there is none of that name."""
        with self.db.session() as s:
            return _account(self._user(s, name))

    def list(self) -> list[Account]:
        """Every account, by name."""
        with self.db.session() as s:
            return [_account(u) for u in s.scalars(select(User).order_by(User.name))]

    def exist(self) -> bool:
        """Whether any account exists (logins are on when one does)."""
        with self.db.session() as s:
            return s.scalar(select(User.id).limit(1)) is not None

    def remove(self, name: str) -> None:
        """Delete an account and its grants (its conversations stay until deleted)."""
        with self.db.session() as s:
            s.delete(self._user(s, name))

    def set_password(self, name: str, password: str) -> None:
        """Replace an account's password."""
        hashed = self.hasher.hash(check_password(password))
        with self.db.session() as s:
            self._user(s, name).password_hash = hashed

    def grant(self, name: str, role: Role, kb: str = ALL_KBS) -> Account:
        """Give an account a role in a knowledge base (replacing its role there)."""
        role, kb = Role.from_str(role), _kb(kb)
        with self.db.session() as s:
            user = self._user(s, name)
            held = next((g for g in user.grants if g.kb == kb), None)
            if held is None:
                user.grants.append(Grant(kb=kb, role=role.value))
            else:
                held.role = role.value
        return self.get(name)

    def verify(self, name: str, password: str) -> bool:
        """Whether the password is the account's (a missing account costs the same time)."""
        with self.db.session() as s:
            hashed = s.scalar(select(User.password_hash).where(User.name == name.strip()))
        try:
            return self.hasher.verify(hashed or self._dummy, password) and hashed is not None
        except (VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _user(session: Session, name: str) -> User:
        user = session.scalar(select(User).where(User.name == name.strip()))
        if user is None:
            raise ConfigError(f"No account is named {name!r}.")
        return user


def _kb(kb: str) -> str:
    return kb if kb == ALL_KBS else check_name(kb, "A knowledge-base name")


def _account(user: User) -> Account:
    try:
        roles = {g.kb: Role.from_str(g.role) for g in user.grants}
    except ConfigError as exc:
        raise WorkspaceError(f"The account {user.name!r} has an unknown role: {exc}") from None
    return Account(user.name, roles, user.created_at)
