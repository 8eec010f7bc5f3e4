"""Run a test suite once per store backend: SQLite, and PostgreSQL on the private server.

The suites that exercise the store through a front end or the dispatcher
(tests/lmtp, tests/imap, tests/dispatch) take `store_backend`, parametrized
`sqlite` / `postgresql`, in their conftest: it feeds the store they open,
or the `mailpush_store` line of the configuration a server reads (the
`make_server` here, which wraps tests/conftest.py's). Each
PostgreSQL run gets a database of its own (a copy of one migrated template,
`PostgresServer.create_store_database`), dropped afterwards, on the one
server of the test session; where PostgreSQL is not installed those runs skip
with the reason `postgres_server` gives (docs/postgresql.md#tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mailpush.store import SqliteStore
from mailpush.store.open_store import SQLITE_STORE_FILE

from .postgres import PostgresServer

if TYPE_CHECKING:
    from mailpush.store.open_store import ConfiguredStore

__all__ = ["BACKENDS", "StoreBackend", "make_server", "store", "store_backend"]

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class StoreBackend:
    """One test's database: an SQLite file, or a PostgreSQL database (`uri`)."""

    name: str
    #: The SQLite file: the one a server configured by `tests.conftest.write_config`
    #: keeps in its data directory (unused with PostgreSQL).
    path: Path
    #: The PostgreSQL database's URI; None for SQLite.
    uri: str | None = None

    def config(self) -> str:
        """Configuration lines choosing this store (none for SQLite in `mailpush_data_dir`)."""
        return "" if self.uri is None else f"mailpush_store = {self.uri}\n"

    def open_store(self, *, mailbox_count_limit: int = 0) -> ConfiguredStore:
        """A new store instance on this database, opened: one more process or node."""
        store: ConfiguredStore
        if self.uri is None:
            store = SqliteStore(self.path, fsync="never", mailbox_count_limit=mailbox_count_limit)
        else:
            from mailpush.store.pg_store import PostgresStore

            store = PostgresStore(self.uri, mailbox_count_limit=mailbox_count_limit)
        store.open()
        return store


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    """The backend of this run; a PostgreSQL database is made for the test and dropped after."""
    path = tmp_path / "data" / SQLITE_STORE_FILE
    if request.param == "sqlite":
        yield StoreBackend("sqlite", path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    uri = server.create_store_database()
    try:
        yield StoreBackend("postgresql", path, uri)
    finally:
        server.drop_database(uri)


@pytest.fixture
def make_server(
    store_backend: StoreBackend, make_server: Callable[..., Any]
) -> Callable[..., Any]:
    """tests/conftest.py's `make_server`, with this run's store in the configuration.

    A conftest that imports it overrides the root one for its directory.
    """

    def start(extra: str = "") -> Any:
        return make_server(store_backend.config() + extra)

    return start


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[ConfiguredStore]:
    """This run's store, opened; closed after the test."""
    opened = store_backend.open_store()
    try:
        yield opened
    finally:
        await asyncio.to_thread(opened.close)
