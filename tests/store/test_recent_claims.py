"""`\\Recent` claims: one session gets each message, and only messages it already numbers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpush.store import NewMessage, SqliteStore

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    mail = SqliteStore(tmp_path / "mail.db", fsync="never")
    mail.open()
    await mail.create_mailbox("alice", "INBOX")
    yield mail
    await asyncio.to_thread(mail.close)


async def test_a_message_is_claimed_once(store: SqliteStore) -> None:
    await store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])

    assert await store.take_recent("alice", "INBOX") == [1, 2]
    assert await store.take_recent("alice", "INBOX") == []


async def test_a_claim_stops_at_the_highest_uid_the_session_numbers(store: SqliteStore) -> None:
    """A message saved after the session's last EXISTS stays for its next claim (or another
    session's): otherwise `* n RECENT` could count more than the client was told exists."""
    await store.append("alice", "INBOX", [NewMessage(MESSAGE) for _ in range(3)])

    assert await store.take_recent("alice", "INBOX", up_to_uid=2) == [1, 2]
    assert await store.take_recent("alice", "INBOX", up_to_uid=0) == []
    assert await store.take_recent("alice", "INBOX", up_to_uid=3) == [3]
