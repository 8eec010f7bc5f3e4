"""An IMAP server (and an LMTP server sharing its store) on loopback, with real users.

The store is opened on each backend in turn (`store_backend`, see
tests/support/store_backends.py): every test that takes `stack` or `store`
runs on SQLite and on the session's private PostgreSQL.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mailpush.auth import PasswdFile, add_user, verify_password_async
from mailpush.delivery import DefaultFilingPlanner, DeliveryAgent
from mailpush.imap import ImapOptions, ImapServer
from mailpush.lmtp import LmtpOptions, LmtpServer
from mailpush.store.open_store import ConfiguredStore
from tests.support.postgres import postgres_server
from tests.support.store_backends import StoreBackend, store, store_backend

from ..conftest import free_port

__all__ = ["postgres_server", "store", "store_backend"]  # fixtures, for pytest to find

USERS = ("alice", "bob")
PASSWORD = "secret"

#: How a test written for SQLite alone opens a second store on the same database; on
#: PostgreSQL it has no file to open, and `stack.another_store()` is the way for both.
_REOPENS_THE_SQLITE_FILE = "SqliteStore(stack.store.path"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip, on PostgreSQL, the tests that reopen the SQLite file (naming the fix)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        function = getattr(item, "function", None)
        if (
            callspec is None
            or callspec.params.get("store_backend") != "postgresql"
            or function is None
        ):
            continue
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            continue
        if _REOPENS_THE_SQLITE_FILE in source:
            item.add_marker(pytest.mark.skip(
                reason="opens a second store as SqliteStore(stack.store.path): SQLite only"
                " until it calls stack.another_store()"
            ))


@dataclass
class ImapStack:
    """Everything a protocol test talks to."""

    store: ConfiguredStore
    imap: ImapServer
    host: str
    port: int
    lmtp_port: int
    #: Opens another store instance on the same database (another process or node).
    another_store: Callable[[], ConfiguredStore]


def passwd_authenticator(path: Path) -> Callable[[str, str], Awaitable[str | None]]:
    passwd = PasswdFile(path)

    async def authenticate(login: str, password: str) -> str | None:
        record = passwd.lookup(login)
        if record is None or not await verify_password_async(record.password, password):
            return None
        return record.username

    return authenticate


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    for name in USERS:
        add_user(path, name, PASSWORD, "PLAIN")
    return path


StackFactory = Callable[..., Awaitable[ImapStack]]


@pytest.fixture
async def make_stack(
    store_backend: StoreBackend, store: ConfiguredStore, users: Path
) -> AsyncIterator[StackFactory]:
    """Start IMAP (with options overridden by keyword) plus LMTP; all stopped afterwards."""
    started: list[ImapServer | LmtpServer] = []

    async def start(**overrides: object) -> ImapStack:
        options = replace(
            ImapOptions(address="127.0.0.1", port=0, auth_failure_delay=0.01), **overrides
        )
        imap = ImapServer(store, passwd_authenticator(users), options)
        host, port = await imap.start()
        started.append(imap)
        passwd = PasswdFile(users)
        lmtp = LmtpServer(
            DeliveryAgent(store, DefaultFilingPlanner(store)),
            lambda address: _local_user(passwd, address),
            LmtpOptions(address="127.0.0.1", port=free_port()),
        )
        _, lport = await lmtp.start()
        started.append(lmtp)
        return ImapStack(store, imap, host, port, lport, store_backend.open_store)

    yield start
    for server in reversed(started):
        await server.stop(1.0)


@pytest.fixture
async def stack(make_stack: StackFactory) -> ImapStack:
    return await make_stack()


def _local_user(passwd: PasswdFile, address: str) -> str | None:
    record = passwd.lookup(address.partition("@")[0])
    return None if record is None else record.username


