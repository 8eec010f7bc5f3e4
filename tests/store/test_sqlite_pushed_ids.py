"""The durable once-per-Message-ID record drivers use (Chronos de-duplication)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpush.errors import MessageNotFoundError
from mailpush.store import NewMessage, SqliteStore

WEEK = 7 * 86400.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "mail.db", fsync="never")
    s.open()
    yield s
    await asyncio.to_thread(s.close)


async def test_first_owner_of_a_message_id_wins(store: SqliteStore) -> None:
    assert await store.claim_pushed_message_id("chronos", "alice", "<m@x>", "txn1/1", WEEK)
    assert not await store.claim_pushed_message_id("chronos", "alice", "<m@x>", "txn2/1", WEEK)


async def test_the_same_owner_may_claim_again_for_a_retry(store: SqliteStore) -> None:
    assert await store.claim_pushed_message_id("chronos", "alice", "<m@x>", "txn1/1", WEEK)
    assert await store.claim_pushed_message_id("chronos", "alice", "<m@x>", "txn1/1", WEEK)


async def test_claims_are_per_user_and_per_driver_instance(store: SqliteStore) -> None:
    assert await store.claim_pushed_message_id("chronos", "alice", "<m@x>", "a/1", WEEK)
    assert await store.claim_pushed_message_id("chronos", "bob", "<m@x>", "b/1", WEEK)
    assert await store.claim_pushed_message_id("chronos#2", "alice", "<m@x>", "c/1", WEEK)


async def test_claims_survive_reopening_the_store(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "mail.db", fsync="never")
    first.open()
    assert await first.claim_pushed_message_id("chronos", "alice", "<m@x>", "txn1/1", WEEK)
    await asyncio.to_thread(first.close)
    second = SqliteStore(tmp_path / "mail.db", fsync="never")
    second.open()
    try:
        assert not await second.claim_pushed_message_id(
            "chronos", "alice", "<m@x>", "txn2/1", WEEK
        )
    finally:
        await asyncio.to_thread(second.close)


async def test_claims_older_than_the_retention_are_forgotten(store: SqliteStore) -> None:
    assert await store.claim_pushed_message_id("chronos", "alice", "<m@x>", "txn1/1", WEEK)
    await asyncio.sleep(0.05)
    assert await store.claim_pushed_message_id("chronos", "alice", "<m@x>", "txn2/1", 0.01)


async def test_reading_an_expunged_message_says_it_is_gone(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")
    await store.append("alice", "INBOX", [NewMessage(b"Subject: x\r\n\r\ny\r\n")])
    with pytest.raises(MessageNotFoundError) as raised:
        await store.raw_message("alice", "INBOX", 2)
    assert str(raised.value) == "no message with UID 2 in INBOX"
