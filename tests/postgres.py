"""A throwaway PostgreSQL cluster for the tests, and the `database_url` fixture.

`postgres_cluster` runs Debian's PostgreSQL (`apt-get install postgresql`, done by .ci/run) with
initdb and pg_ctl in a temporary folder, listening on a Unix socket only (no TCP port), as the
`postgres` user when the tests run as root (PostgreSQL refuses to run as root). Without the
binaries the PostgreSQL cases skip, except in CI (CI=true), where they fail.

`database_url` is parametrized over SQLite and PostgreSQL: each test gets an empty database of
each kind.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class Cluster:
    """A running cluster: its socket folder, and a new database per `new_database()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.socket = folder / "socket"

    def start(self) -> None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            message = "PostgreSQL is not installed (apt-get install postgresql)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.socket.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.socket, "postgres")
        subprocess.run(_as_postgres([initdb, "-D", str(self.data), "-U", "postgres",
                                     "--auth=trust", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True)
        options = f"-k {self.socket} -c listen_addresses='' -c fsync=off"
        subprocess.run(_as_postgres([pg_ctl, "-D", str(self.data), "-o", options, "-w",
                                     "-l", str(self.folder / "log"), "start"]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        pg_ctl = _binary("pg_ctl")
        if pg_ctl and self.data.exists():
            subprocess.run(_as_postgres([pg_ctl, "-D", str(self.data), "-m", "immediate",
                                         "stop"]), capture_output=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket}"

    def new_database(self) -> str:
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(host=str(self.socket), user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster on a Unix socket, for the whole test session."""
    folder = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    cluster = Cluster(folder)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()
