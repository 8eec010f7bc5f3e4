"""Claiming for an ordered driver: per (driver, user), never one user for everyone.

A user whose oldest transaction waits for its retry holds back that user's
later transactions, and nobody else's: however many of them are queued, the
other users' due transactions are claimed in the same round.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpush.store import SqliteStore

LIMIT = 50


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "mail.sqlite", fsync="never")
    store.open()
    try:
        yield store
    finally:
        await asyncio.to_thread(store.close)


def _add(path: Path, rows: list[tuple[int, str, float]]) -> None:
    """Pending lua deliveries: (outbox id, user, next attempt)."""
    with sqlite3.connect(path) as conn:
        for outbox_id, user, next_attempt in rows:
            conn.execute("INSERT INTO push_outbox (id, txn_id, user_name, created, payload)"
                         " VALUES (?, ?, ?, 0, x'7b7d')", (outbox_id, f"t{outbox_id}", user))
            conn.execute("INSERT INTO push_deliveries (outbox_id, driver, user_name, state,"
                         " next_attempt) VALUES (?, 'lua', ?, 'pending', ?)",
                         (outbox_id, user, next_attempt))


async def test_a_user_waiting_for_a_retry_with_a_long_queue_holds_back_no_other_user(
    store: SqliteStore, tmp_path: Path
) -> None:
    now = time.time()
    rows = [(1, "mallory", now + 3600)]  # waiting for its retry
    rows += [(n, "mallory", now) for n in range(2, 2 * LIMIT + 2)]  # queued behind it
    rows += [(n, "bob", now) for n in range(2 * LIMIT + 2, 2 * LIMIT + 5)]
    _add(tmp_path / "mail.sqlite", rows)

    claims = await store.outbox.claim_due(time.time(), LIMIT, ordered={"lua"})

    assert [(c.user, c.outbox_id) for c in claims] == [
        ("bob", 2 * LIMIT + 2), ("bob", 2 * LIMIT + 3), ("bob", 2 * LIMIT + 4)
    ]


async def test_a_busy_user_with_a_long_queue_holds_back_no_other_user(
    store: SqliteStore, tmp_path: Path
) -> None:
    now = time.time()
    rows = [(n, "mallory", now) for n in range(1, 2 * LIMIT + 1)]
    rows += [(2 * LIMIT + 1, "bob", now)]
    _add(tmp_path / "mail.sqlite", rows)

    claims = await store.outbox.claim_due(
        time.time(), LIMIT, {("lua", "mallory")}, ordered={"lua"}
    )

    assert [(c.user, c.outbox_id) for c in claims] == [("bob", 2 * LIMIT + 1)]


async def test_a_user_s_transactions_are_claimed_in_order_up_to_the_first_not_yet_due(
    store: SqliteStore, tmp_path: Path
) -> None:
    now = time.time()
    _add(tmp_path / "mail.sqlite", [
        (1, "alice", now), (2, "bob", now), (3, "alice", now),
        (4, "alice", now + 3600), (5, "alice", now), (6, "bob", now),
    ])

    claims = await store.outbox.claim_due(time.time(), LIMIT, ordered={"lua"})

    assert sorted((c.user, c.outbox_id) for c in claims) == [
        ("alice", 1), ("alice", 3), ("bob", 2), ("bob", 6)
    ]


async def test_users_beyond_one_round_s_limit_are_claimed_in_the_next_rounds(
    store: SqliteStore, tmp_path: Path
) -> None:
    # More users with due transactions than one claim takes: each round goes on
    # where the last one stopped, so every user is reached.
    now = time.time()
    _add(tmp_path / "mail.sqlite", [(n, f"user{n:03}", now) for n in range(1, 3 * LIMIT + 1)])

    seen: set[str] = set()
    for _ in range(3):
        claims = await store.outbox.claim_due(time.time(), LIMIT, ordered={"lua"})
        assert len(claims) == LIMIT
        seen.update(c.user for c in claims)
        await store.outbox.complete(claims)

    assert len(seen) == 3 * LIMIT
