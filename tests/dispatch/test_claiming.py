"""Claiming for an ordered driver: per (driver, user), never one user for everyone.

A user whose oldest transaction waits for its retry holds back that user's
later transactions, and nobody else's: however many of them are queued, the
other users' due transactions are claimed in the same round.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from mailpush.store import Change, MailStore, OutboxEntry
from mailpush.store.outbox import StatusAt

LIMIT = 50


async def _add(store: MailStore, rows: list[tuple[int, str, float]]) -> dict[int, int]:
    """Pending lua deliveries, queued in the order of `rows` (n, user, next attempt) as the
    server queues them: by the store's recorder, beside a change. Returns n → outbox id."""

    def record(changes: Sequence[Change], status: StatusAt) -> list[OutboxEntry]:
        return [OutboxEntry(change.user, b"{}", ("lua",)) for change in changes]

    store.set_recorder(record)
    try:
        for n, user, _ in rows:
            await store.create_mailbox(user, f"box{n}")
    finally:
        store.set_recorder(None)
    records = await store.outbox.records_after(0, limit=len(rows) + 1)
    assert [r.user for r in records] == [user for _, user, _ in rows]
    ids = {n: record.outbox_id for (n, _, _), record in zip(rows, records, strict=True)}
    # Those not due yet wait for their retry; the others are given back untouched.
    later = {ids[n]: next_attempt for n, _, next_attempt in rows if next_attempt > time.time()}
    claims = await store.outbox.claim_due(time.time(), 10 * len(rows), ordered={"lua"})
    assert len(claims) == len(rows)
    for claim in claims:
        if claim.outbox_id in later:
            await store.outbox.retry(claim, later[claim.outbox_id], "not yet")
    await store.outbox.release(c for c in claims if c.outbox_id not in later)
    return ids


async def test_a_user_waiting_for_a_retry_with_a_long_queue_holds_back_no_other_user(
    store: MailStore,
) -> None:
    now = time.time()
    rows = [(1, "mallory", now + 3600)]  # waiting for its retry
    rows += [(n, "mallory", now) for n in range(2, 2 * LIMIT + 2)]  # queued behind it
    rows += [(n, "bob", now) for n in range(2 * LIMIT + 2, 2 * LIMIT + 5)]
    ids = await _add(store, rows)

    claims = await store.outbox.claim_due(time.time(), LIMIT, ordered={"lua"})

    assert [(c.user, c.outbox_id) for c in claims] == [
        ("bob", ids[2 * LIMIT + 2]), ("bob", ids[2 * LIMIT + 3]), ("bob", ids[2 * LIMIT + 4])
    ]


async def test_a_busy_user_with_a_long_queue_holds_back_no_other_user(
    store: MailStore,
) -> None:
    now = time.time()
    rows = [(n, "mallory", now) for n in range(1, 2 * LIMIT + 1)]
    rows += [(2 * LIMIT + 1, "bob", now)]
    ids = await _add(store, rows)

    claims = await store.outbox.claim_due(
        time.time(), LIMIT, {("lua", "mallory")}, ordered={"lua"}
    )

    assert [(c.user, c.outbox_id) for c in claims] == [("bob", ids[2 * LIMIT + 1])]


async def test_a_user_s_transactions_are_claimed_in_order_up_to_the_first_not_yet_due(
    store: MailStore,
) -> None:
    now = time.time()
    ids = await _add(store, [
        (1, "alice", now), (2, "bob", now), (3, "alice", now),
        (4, "alice", now + 3600), (5, "alice", now), (6, "bob", now),
    ])

    claims = await store.outbox.claim_due(time.time(), LIMIT, ordered={"lua"})

    assert sorted((c.user, c.outbox_id) for c in claims) == [
        ("alice", ids[1]), ("alice", ids[3]), ("bob", ids[2]), ("bob", ids[6])
    ]


async def test_users_beyond_one_round_s_limit_are_claimed_in_the_next_rounds(
    store: MailStore,
) -> None:
    # More users with due transactions than one claim takes: each round goes on
    # where the last one stopped, so every user is reached.
    now = time.time()
    await _add(store, [(n, f"user{n:03}", now) for n in range(1, 3 * LIMIT + 1)])

    seen: set[str] = set()
    for _ in range(3):
        claims = await store.outbox.claim_due(time.time(), LIMIT, ordered={"lua"})
        assert len(claims) == LIMIT
        seen.update(c.user for c in claims)
        await store.outbox.complete(claims)

    assert len(seen) == 3 * LIMIT
