"""A private PostgreSQL server for the tests: `initdb` into a temporary directory.

The server listens only on a UNIX socket inside its own directory (no TCP
port, so nothing to collide with), with fsync off: the tests check what the
store does, not the disk. Each test gets a fresh database of its own
(`PostgresServer.create_database`), so tests neither see each other's rows
nor pay for a server each; one session starts one server, however many
suites use it. `create_store_database` copies a database migrated once
(CREATE DATABASE … TEMPLATE: 14 ms, and 5 ms to drop it, against 28 ms for
an empty database migrated anew; a TRUNCATE of every table, 6 ms, would
leave tests sharing one database and its sequences).

The binaries come from Debian's `postgresql` package (/usr/lib/postgresql/
<version>/bin); `.ci/run` installs it when `initdb` is missing. Without
them, `postgres_server` skips with that reason. PostgreSQL refuses to run
as root, so under root the server runs as the package's `postgres` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mailpush.store.pg_store import PostgresStore

__all__ = [
    "PostgresServer",
    "database_name",
    "find_postgres_bin",
    "postgres_server",
    "start_postgres",
]

#: The socket's port number (only its name: the server opens no TCP port).
SOCKET_PORT = 5432
START_TIMEOUT = 30.0
_SKIP = (
    "PostgreSQL binaries (initdb, postgres) not found: install the Debian package"
    " `postgresql` (.ci/run does when run as root) to run the PostgreSQL store tests"
)
_databases = itertools.count(1)
#: Server settings for the tests: what the store does matters, not the disk.
_NOT_DURABLE = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


@dataclass
class PostgresServer:
    """A running private server; `uri()` names a database on it as libpq reads it."""

    directory: Path
    process: subprocess.Popen[bytes]
    user: str
    #: The migrated database `create_store_database` copies (made on first use).
    _store_template: str | None = field(default=None, init=False)

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}&port={SOCKET_PORT}"

    def create_database(self, prefix: str = "mailpush", template: str | None = None) -> str:
        """A new database, empty or a copy of `template`; returns its URI."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(_databases)}"
        sql = f'CREATE DATABASE "{name}"'
        if template is not None:
            sql += f' TEMPLATE "{template}"'
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
        return self.uri(name)

    def create_store_database(self) -> str:
        """A new database holding the store's current schema (a copy of one migrated
        template: cheaper than migrating each test's database); returns its URI."""
        if self._store_template is None:
            from mailpush.store.pg_store import PostgresStore

            uri = self.create_database("mailpush_template")
            PostgresStore(uri).migrate()
            self._store_template = database_name(uri)
        return self.create_database(template=self._store_template)

    @contextlib.asynccontextmanager
    async def opened_store(self, setup: str = "") -> AsyncIterator[PostgresStore]:
        """A PostgresStore on a fresh store database (after the SQL `setup`, if any),
        opened; closed and its database dropped afterwards."""
        from mailpush.store.pg_store import PostgresStore

        uri = self.create_store_database()
        if setup:
            import psycopg

            with psycopg.connect(uri, autocommit=True) as admin:
                admin.execute(setup)  # type: ignore[arg-type]
        store = PostgresStore(uri)
        store.open()
        try:
            yield store
        finally:
            await asyncio.to_thread(store.close)
            self.drop_database(uri)

    def drop_database(self, uri: str) -> None:
        """Drop the database `uri` names, closing whatever connections are still open to it
        (a server a failed test left running)."""
        import psycopg

        with psycopg.connect(self.uri(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database_name(uri)}" WITH (FORCE)')  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: "smart" shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def database_name(uri: str) -> str:
    """The database a `PostgresServer.uri` names."""
    return uri.partition("@/")[2].partition("?")[0]


def find_postgres_bin() -> Path | None:
    """The directory holding initdb and postgres, newest version first; None if absent."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "postgres").exists():
            return directory
    return None


def start_postgres(bin_dir: Path, *, durable: bool = False) -> PostgresServer:
    """initdb a cluster in a new temporary directory and start a server on it.

    Tests run with fsync off (`durable=False`); benchmarks ask for PostgreSQL's
    defaults (fsync, synchronous_commit and full_page_writes on). Either way they
    are command-line settings, which ALTER SYSTEM cannot override.
    """
    directory = Path(tempfile.mkdtemp(prefix="mailpush-pg-"))
    data, socket_dir = directory / "data", directory / "socket"
    socket_dir.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        for path in (directory, socket_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    superuser = "postgres"
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", superuser,
         "--auth=trust", "--locale=C", "--encoding=UTF8", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(
        [*run_as, str(bin_dir / "postgres"), "-D", str(data), "-k", str(socket_dir),
         "-p", str(SOCKET_PORT), "-c", "listen_addresses=", "-c", "max_connections=200",
         *([] if durable else _NOT_DURABLE)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    server = PostgresServer(directory, process, superuser)
    deadline = time.monotonic() + START_TIMEOUT
    while not _accepts(server):
        if process.poll() is not None or time.monotonic() > deadline:
            text = (directory / "server.log").read_text(errors="replace")
            server.stop()
            raise RuntimeError(f"the test PostgreSQL server did not start:\n{text}")
        time.sleep(0.05)
    return server


def _accepts(server: PostgresServer) -> bool:
    import psycopg

    if not (server.socket_dir / f".s.PGSQL.{SOCKET_PORT}").exists():
        return False
    try:
        with psycopg.connect(server.uri(), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private server for the whole session; skips when PostgreSQL is not installed.

    Each conftest or module that imports this fixture gets an instance of its own
    from pytest; they all share one server (`_shared`), stopped when the last is
    torn down, so the session starts one server however many suites use it.
    """
    pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg (extra: postgresql)")
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip(_SKIP)
    if _shared.server is None or _shared.server.process.poll() is not None:
        _shared.server = start_postgres(bin_dir)
    server = _shared.server
    _shared.users += 1
    try:
        yield server
    finally:
        _shared.users -= 1
        if _shared.users == 0:
            _shared.server = None
            server.stop()


@dataclass
class _SharedServer:
    server: PostgresServer | None = None
    #: `postgres_server` instances set up and not yet torn down.
    users: int = 0


_shared = _SharedServer()
