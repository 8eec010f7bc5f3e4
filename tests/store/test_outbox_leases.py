"""Several dispatchers on one outbox: claims are leases, taken over when they run out.

Each store instance here stands for one node's dispatcher (its own
`outbox.claimant`), on SQLite and on PostgreSQL (docs/postgresql.md#dispatch-across-nodes).
Times are passed in, so leases of seconds run out without waiting.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from mailpush.store import MailboxCreated, OutboxEntry
from mailpush.store.models import ClaimedDelivery
from mailpush.store.open_store import ConfiguredStore
from mailpush.store.outbox_claimants import process_claimant, this_process
from tests.support.postgres import postgres_server
from tests.support.store_backends import StoreBackend, store_backend

__all__ = ["postgres_server", "store_backend"]  # fixtures, for pytest

#: A clock ahead of every row's due time (rows are due when queued).
T = 4_000_000_000.0
LEASE = 10.0

Node = Callable[[str], ConfiguredStore]


@pytest.fixture
async def node(store_backend: StoreBackend) -> AsyncIterator[Node]:
    """`node(name)`: a store instance whose dispatcher claims as `name`."""
    opened: list[ConfiguredStore] = []

    def open_node(name: str) -> ConfiguredStore:
        store = store_backend.open_store()
        store.outbox.claimant = name
        opened.append(store)
        return store

    yield open_node
    for store in opened:
        await asyncio.to_thread(store.close)


async def queue(store: ConfiguredStore, *mailboxes: tuple[str, str]) -> None:
    """One ordered (lua) transaction per (user, mailbox) created, id `txn-<user>-<mailbox>`."""
    store.set_recorder(
        lambda changes, status: [
            OutboxEntry(c.user, b"{}", ("lua",), f"txn-{c.user}-{c.mailbox}")
            for c in changes
            if isinstance(c, MailboxCreated)
        ]
    )
    for user, mailbox in mailboxes:
        await store.create_mailbox(user, mailbox)
    store.set_recorder(None)


def ids(claims: Sequence[ClaimedDelivery]) -> list[str]:
    return [claim.txn_id for claim in claims]


async def test_a_user_is_not_claimed_while_another_dispatcher_holds_its_earlier_transaction(
    node: Node,
) -> None:
    a, b = node("node-a 1 1"), node("node-b 1 1")
    await queue(a, ("alice", "1"), ("alice", "2"), ("bob", "1"))
    first = await a.outbox.claim_due(T, 1, lease=LEASE)
    assert ids(first) == ["txn-alice-1"]
    # alice's second transaction is due, but running it would overtake her first.
    assert ids(await b.outbox.claim_due(T, 10, lease=LEASE)) == ["txn-bob-1"]
    await a.outbox.complete(first)
    assert ids(await b.outbox.claim_due(T, 10, lease=LEASE)) == ["txn-alice-2"]
    stats = await a.outbox.stats(T)
    assert [(s.done, s.inflight) for s in stats] == [(1, 2)]


async def test_a_dispatchers_own_claims_do_not_hold_back_its_next_round(node: Node) -> None:
    """Within one dispatcher the busy keys keep the order; a delivered transaction whose
    completion is not written yet must not stall the user's next one."""
    a = node("node-a 1 1")
    await queue(a, ("alice", "1"), ("alice", "2"))
    first = await a.outbox.claim_due(T, 1, lease=LEASE)
    assert ids(first) == ["txn-alice-1"]
    assert ids(await a.outbox.claim_due(T, 10, lease=LEASE)) == ["txn-alice-2"]


async def test_completions_handed_to_a_claiming_round_are_done_before_it_claims(
    node: Node,
) -> None:
    """The dispatcher's round writes its finished deliveries and its new claims in one job;
    done first, so another dispatcher is free to take the user's next one at once."""
    a, b = node("node-a 1 1"), node("node-b 1 1")
    await queue(a, ("alice", "1"), ("alice", "2"), ("bob", "1"))
    first = await a.outbox.claim_due(T, 1, lease=LEASE)
    assert ids(first) == ["txn-alice-1"]
    assert ids(await a.outbox.claim_due(T, 1, lease=LEASE, completed=first)) == ["txn-bob-1"]
    assert ids(await b.outbox.claim_due(T, 10, lease=LEASE)) == ["txn-alice-2"]
    stats = await a.outbox.stats(T)
    assert [(s.done, s.inflight) for s in stats] == [(1, 2)]


async def test_a_taken_over_claim_handed_to_a_claiming_round_is_not_marked_done(
    node: Node,
) -> None:
    a, b = node("node-a 1 1"), node("node-b 1 1")
    await queue(a, ("alice", "1"))
    stale = await a.outbox.claim_due(T, 10, lease=LEASE)
    await b.outbox.take_over_expired(T + LEASE + 1)
    assert ids(await b.outbox.claim_due(T + LEASE + 1, 10, lease=LEASE)) == ["txn-alice-1"]
    assert await a.outbox.claim_due(T + LEASE + 1, 10, lease=LEASE, completed=stale) == []
    stats = await a.outbox.stats(T)
    assert [(s.done, s.inflight) for s in stats] == [(0, 1)]


async def test_an_expired_lease_is_taken_over_and_the_user_claimed_again_in_order(
    node: Node,
) -> None:
    a, b = node("node-a 1 1"), node("node-b 1 1")
    await queue(a, ("alice", "1"), ("alice", "2"), ("alice", "3"))
    assert len(await a.outbox.claim_due(T, 10, lease=LEASE)) == 3
    assert (await b.outbox.take_over_expired(T + LEASE - 1)).pending_again == 0
    assert await b.outbox.claim_due(T + LEASE - 1, 10, lease=LEASE) == []
    assert (await b.outbox.take_over_expired(T + LEASE + 1)).pending_again == 3
    claimed = await b.outbox.claim_due(T + LEASE + 1, 10, lease=LEASE)
    assert ids(claimed) == ["txn-alice-1", "txn-alice-2", "txn-alice-3"]


async def test_renewing_keeps_the_claims_from_being_taken_over(node: Node) -> None:
    a, b = node("node-a 1 1"), node("node-b 1 1")
    await queue(a, ("alice", "1"), ("bob", "1"))
    await a.outbox.claim_due(T, 10, lease=LEASE)
    assert await a.outbox.renew_claims(T + LEASE - 1, LEASE) == 2
    assert (await b.outbox.take_over_expired(T + LEASE + 1)).pending_again == 0
    assert (await b.outbox.take_over_expired(T + 2 * LEASE)).pending_again == 2


async def test_a_dispatcher_whose_claims_were_taken_over_cannot_give_them_back_or_retry(
    node: Node,
) -> None:
    """Its lease ran out (it hung, or lost the database): the new holder's attempt decides."""
    a, b, c = node("node-a 1 1"), node("node-b 1 1"), node("node-c 1 1")
    await queue(a, ("alice", "1"))
    (lost,) = await a.outbox.claim_due(T, 10, lease=LEASE)
    await b.outbox.take_over_expired(T + LEASE + 1)
    (held,) = await b.outbox.claim_due(T + LEASE + 1, 10, lease=LEASE)
    assert held.txn_id == lost.txn_id
    await a.outbox.release([lost])
    await a.outbox.retry(lost, next_attempt=T, error="HTTP 503")
    assert await c.outbox.claim_due(T + LEASE + 2, 10, lease=LEASE) == []
    await b.outbox.complete([held])
    assert [(s.done, s.inflight, s.retrying) for s in await c.outbox.stats(T)] == [(1, 0, 0)]


async def test_a_dispatcher_whose_claim_was_taken_over_cannot_mark_it_done(
    node: Node,
) -> None:
    """Its completion is stale: the new holder is running the delivery and its attempt decides."""
    x, y, c = node("node-x 1 1"), node("node-y 1 1"), node("node-c 1 1")
    await queue(x, ("alice", "1"))
    (lost,) = await x.outbox.claim_due(T, 10, lease=LEASE)
    await y.outbox.take_over_expired(T + LEASE + 1)
    (held,) = await y.outbox.claim_due(T + LEASE + 1, 10, lease=LEASE)
    await x.outbox.complete([lost])
    assert [(s.done, s.inflight) for s in await c.outbox.stats(T)] == [(0, 1)]
    # Still Y's: Y renews it, and nobody else can take it over while Y's lease runs.
    assert await y.outbox.renew_claims(T + LEASE + 2, LEASE) == 1
    assert (await c.outbox.take_over_expired(T + LEASE + 3)).pending_again == 0
    await y.outbox.complete([held])
    assert [(s.done, s.inflight) for s in await c.outbox.stats(T)] == [(1, 0)]


async def test_a_dispatcher_whose_claim_was_taken_over_cannot_bury_it(node: Node) -> None:
    x, y, c = node("node-x 1 1"), node("node-y 1 1"), node("node-c 1 1")
    await queue(x, ("alice", "1"))
    (lost,) = await x.outbox.claim_due(T, 10, lease=LEASE)
    await y.outbox.take_over_expired(T + LEASE + 1)
    (held,) = await y.outbox.claim_due(T + LEASE + 1, 10, lease=LEASE)
    await x.outbox.bury(lost, "HTTP 400")
    assert await c.outbox.dead_letters() == []
    assert [(s.dead, s.inflight) for s in await c.outbox.stats(T)] == [(0, 1)]
    assert await y.outbox.renew_claims(T + LEASE + 2, LEASE) == 1
    await y.outbox.bury(held, "HTTP 410")
    (dead,) = await c.outbox.dead_letters()
    assert (dead.txn_id, dead.attempts, dead.last_error) == ("txn-alice-1", 1, "HTTP 410")


async def test_a_delivery_running_each_time_two_dispatchers_were_lost_is_a_dead_letter(
    node: Node,
) -> None:
    a, b, c = node("node-a 1 1"), node("node-b 1 1"), node("node-c 1 1")
    await queue(a, ("alice", "1"), ("alice", "2"))
    now = T
    for dispatcher in (a, b):
        claims = await dispatcher.outbox.claim_due(now, 10, lease=LEASE)
        assert ids(claims) == ["txn-alice-1", "txn-alice-2"]
        await dispatcher.outbox.mark_started(claims[:1])
        now += LEASE + 1
        recovery = await c.outbox.take_over_expired(now)
    assert [letter.txn_id for letter in recovery.buried] == ["txn-alice-1"]
    assert "died 2 times" in (recovery.buried[0].last_error or "")
    assert ids(await c.outbox.claim_due(now, 10, lease=LEASE)) == ["txn-alice-2"]


def exited_pid() -> int:
    """The pid of a process of this host that has ended."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    return int(process.stdout)


async def test_a_starting_dispatcher_takes_over_at_once_only_what_dispatchers_known_gone_held(
    node: Node,
) -> None:
    """A restarted server re-sends its predecessor's claims at once; a live process's, and
    another host's until their lease runs out, are left alone."""
    dead = process_claimant(exited_pid())
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holders = {
            "alice": dead,
            "bob": process_claimant(live.pid),
            "carol": "elsewhere.example 4242 77",
            "dave": this_process(),  # an earlier dispatcher of this very process
        }
        await queue(node("writer 1 1"), *((user, "1") for user in holders))
        now = time.time()  # reset_inflight reads the clock: these leases have not run out
        for user, holder in holders.items():
            # The walk goes user by user: each claims the next user's one transaction.
            claims = await node(holder).outbox.claim_due(now, 1, lease=600)
            assert ids(claims) == [f"txn-{user}-1"]
        starting = node(this_process())
        recovery = await starting.outbox.reset_inflight()
        assert recovery.pending_again == 2
        claimed = await starting.outbox.claim_due(now, 10, lease=600)
        assert sorted(ids(claimed)) == ["txn-alice-1", "txn-dave-1"]
    finally:
        live.kill()
        live.wait()
