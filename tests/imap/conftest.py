"""An IMAP server (and an LMTP server sharing its store) on loopback, with real users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mailpush.auth import PasswdFile, add_user, verify_password_async
from mailpush.delivery import DefaultFilingPlanner, DeliveryAgent
from mailpush.imap import ImapOptions, ImapServer
from mailpush.lmtp import LmtpOptions, LmtpServer
from mailpush.store import SqliteStore

from ..conftest import free_port

USERS = ("alice", "bob")
PASSWORD = "secret"


@dataclass
class ImapStack:
    """Everything a protocol test talks to."""

    store: SqliteStore
    imap: ImapServer
    host: str
    port: int
    lmtp_port: int


def passwd_authenticator(path: Path) -> Callable[[str, str], Awaitable[str | None]]:
    passwd = PasswdFile(path)

    async def authenticate(login: str, password: str) -> str | None:
        record = passwd.lookup(login)
        if record is None or not await verify_password_async(record.password, password):
            return None
        return record.username

    return authenticate


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    mail = SqliteStore(tmp_path / "mail.db", fsync="never")
    mail.open()
    yield mail
    await asyncio.to_thread(mail.close)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    for name in USERS:
        add_user(path, name, PASSWORD, "PLAIN")
    return path


StackFactory = Callable[..., Awaitable[ImapStack]]


@pytest.fixture
async def make_stack(store: SqliteStore, users: Path) -> AsyncIterator[StackFactory]:
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
        return ImapStack(store, imap, host, port, lport)

    yield start
    for server in reversed(started):
        await server.stop(1.0)


@pytest.fixture
async def stack(make_stack: StackFactory) -> ImapStack:
    return await make_stack()


def _local_user(passwd: PasswdFile, address: str) -> str | None:
    record = passwd.lookup(address.partition("@")[0])
    return None if record is None else record.username


