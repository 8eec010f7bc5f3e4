"""The dispatcher holds its claims under the lease it is given (`mailpush_push_claim_lease`).

It renews them every third of that lease while it lives, and another
dispatcher takes over a dead one's claims once their lease ran out, looking
every third of its own (docs/postgresql.md#dispatch-across-nodes). With a
3 s lease a dead node's claimed push goes out within seconds, where the
30 s default would hold it for 20 to 40 s. The dying dispatcher is a
process of its own, killed with SIGKILL; both run on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

from mailpush.config import load_settings
from mailpush.dispatch import Dispatcher
from mailpush.dispatch.retry_policy import RetryPolicy
from mailpush.drivers import PushDriver
from mailpush.drivers.base import DriverServices
from mailpush.drivers.driver_config import DriverConfig
from mailpush.events import PushEvent, PushTransaction, transaction_to_json
from mailpush.store import OutboxEntry
from mailpush.store.open_store import ConfiguredStore
from mailpush.store.outbox import PushOutbox
from tests.support.store_backends import StoreBackend

ROOT = Path(__file__).resolve().parents[2]
#: The configured lease: the shortest `mailpush_push_claim_lease` takes.
LEASE = 3.0
#: The driver instance every transaction here is queued for.
INSTANCE = "lease"
#: A dispatcher in a process of its own, on the test's store: `run_dying_node`.
DYING_NODE = "from tests.dispatch.test_claim_lease_setting import run_dying_node; run_dying_node()"


class Hanging(PushDriver):
    """Begins a transaction, says so on standard output, and never finishes it."""

    name = "hanging"

    def __init__(self) -> None:
        super().__init__(DriverConfig(INSTANCE, self.name), cast(DriverServices, None))
        self.begun = asyncio.Event()

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        print(f"running {txn.id}", flush=True)
        self.begun.set()
        await asyncio.Event().wait()
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        return None


class Receiving(PushDriver):
    """Notes when each transaction arrived."""

    name = "receiving"

    def __init__(self) -> None:
        super().__init__(DriverConfig(INSTANCE, self.name), cast(DriverServices, None))
        self.arrivals: list[tuple[str, float]] = []
        self.arrived = asyncio.Event()

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        self.arrivals.append((txn.id, time.time()))
        self.arrived.set()
        return None

    async def process_event(self, state: object, event: PushEvent) -> None:
        return None


def dispatcher_for(store: ConfiguredStore, driver: PushDriver, lease: float) -> Dispatcher:
    return Dispatcher(store.outbox, {INSTANCE: driver}, claim_lease=lease, poll_interval=0.05)


async def queue(store: ConfiguredStore, user: str, mailbox: str) -> str:
    """One push transaction for `INSTANCE`, committed with a mailbox's creation; its id."""
    txn_id = f"txn-{user}-{mailbox}"

    def record(changes: object, status: object) -> list[OutboxEntry]:
        txn = PushTransaction(txn_id, user, mailbox, "imap", time.time())
        return [OutboxEntry(user, transaction_to_json(txn), (INSTANCE,), txn_id)]

    store.set_recorder(record)
    try:
        await store.create_mailbox(user, mailbox)
    finally:
        store.set_recorder(None)
    return txn_id


def run_dying_node() -> None:
    """The node that dies: a dispatcher on the store named by argv (backend, SQLite path,
    PostgreSQL URI or "", lease), whose driver hangs on what it claims."""
    name, path, uri, lease = sys.argv[1:5]
    backend = StoreBackend(name, Path(path), uri or None)

    async def serve() -> None:
        store = backend.open_store()
        dispatcher = dispatcher_for(store, Hanging(), float(lease))
        await dispatcher.start()
        await asyncio.Event().wait()  # until SIGKILL

    asyncio.run(serve())


async def test_a_dead_node_s_claim_is_taken_over_after_the_configured_lease_and_not_before(
    store_backend: StoreBackend, store: ConfiguredStore
) -> None:
    txn_id = await queue(store, "alice", "Lease")
    dying = subprocess.Popen(
        [sys.executable, "-c", DYING_NODE, store_backend.name, str(store_backend.path),
         store_backend.uri or "", str(LEASE)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert dying.stdout is not None
        running = await asyncio.wait_for(asyncio.to_thread(dying.stdout.readline), 30)
        assert running.decode().strip() == f"running {txn_id}"
        receiving = Receiving()
        # Started while the other node lives: its claim is not one to take over at start.
        dispatcher = dispatcher_for(store, receiving, LEASE)
        await dispatcher.start()
        try:
            # Longer than the lease: the living node's renewals keep its claim its own.
            await asyncio.sleep(1.5 * LEASE)
            assert receiving.arrivals == []
            killed = time.time()
            dying.kill()
            await asyncio.to_thread(dying.wait)
            await asyncio.wait_for(receiving.arrived.wait(), LEASE + LEASE / 3 + 5)
        finally:
            await dispatcher.stop(1.0)
    finally:
        dying.kill()
        dying.wait()

    ((arrived_id, arrived_at),) = receiving.arrivals
    assert arrived_id == txn_id
    # Its last renewal was at most a third of the lease before the kill, so the lease ran
    # out two thirds of it to a whole lease after; the survivor looks every third of its
    # own. Half a second is left for the dying node's last renewal to have been late.
    waited = arrived_at - killed
    assert 2 * LEASE / 3 - 0.5 <= waited <= LEASE + LEASE / 3 + 1.0, waited


async def test_a_reload_holds_the_claims_under_the_new_lease_at_once(
    store_backend: StoreBackend, store: ConfiguredStore
) -> None:
    await queue(store, "alice", "Lease")
    hanging = Hanging()
    dispatcher = dispatcher_for(store, hanging, 600.0)
    other = store_backend.open_store()
    other.outbox.claimant = "node-b 1 1"
    await dispatcher.start()
    try:
        await asyncio.wait_for(hanging.begun.wait(), 10)
        # Claimed for ten minutes (and not renewed for another three): not expired soon.
        assert (await other.outbox.take_over_expired(time.time() + 60)).pending_again == 0

        await dispatcher.replace_drivers(
            {INSTANCE: Hanging()}, RetryPolicy(), concurrency=64, call_timeout=30.0,
            retention=3600.0, claim_lease=LEASE,
        )  # fmt: skip
        assert dispatcher.claim_lease == LEASE
        # Renewed every third of the new lease: held past a lease and a half...
        await asyncio.sleep(1.5 * LEASE)
        assert (await other.outbox.take_over_expired(time.time())).pending_again == 0
        # ...and under it: without the renewal at the reload it would be held 10 minutes.
        ahead = time.time() + LEASE + 0.5
        assert (await other.outbox.take_over_expired(ahead)).pending_again == 1
    finally:
        await dispatcher.stop(0.1)
        await asyncio.to_thread(other.close)


def test_a_dispatcher_built_without_the_setting_holds_claims_as_its_default_says() -> None:
    """Tools and tests that build one get the lease of a server configured with nothing."""
    dispatcher = Dispatcher(cast(PushOutbox, None), {})
    assert dispatcher.claim_lease == load_settings(None).settings.push.claim_lease == 30.0
