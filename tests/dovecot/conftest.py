"""What the differential tests share: a mailpush IMAP server beside the private Dovecot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpush.auth import add_user
from mailpush.imap import ImapOptions, ImapServer
from mailpush.store import SqliteStore

from ..imap.conftest import passwd_authenticator

#: alice's password on both servers.
PASSWORD = "secret"


@pytest.fixture
async def mailpush_port(tmp_path: Path) -> AsyncIterator[int]:
    """An IMAP server for `alice` on its own SQLite store; its port."""
    users = tmp_path / "users"
    add_user(users, "alice", PASSWORD, "PLAIN")
    store = SqliteStore(tmp_path / "mail.db", fsync="never")
    store.open()
    server = ImapServer(
        store, passwd_authenticator(users),
        ImapOptions(address="127.0.0.1", port=0, auth_failure_delay=0.01),
    )  # fmt: skip
    _, port = await server.start()
    try:
        yield port
    finally:
        await server.stop(1.0)
        await asyncio.to_thread(store.close)
