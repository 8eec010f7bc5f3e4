"""Which drivers a transaction is queued for, decided in the commit without making events
a driver cannot want.

A driver that keeps the default `accepts` takes every transaction; one that
filters is asked only about transactions holding an event it subscribes to,
so a STORE on many messages makes no events inside the commit for a driver
that takes MessageNew only (chronos, ox).
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import ClassVar

from mailpush.config import load_settings
from mailpush.drivers import DriverRegistry, PushDriver
from mailpush.events import EventName, PushEvent, PushTransaction
from mailpush.server import MailpushServer
from mailpush.store import DeliveryTarget, NewMessage
from mailpush.store import flags as F
from tests.support.store_backends import StoreBackend

from ..conftest import write_config


class Everything(PushDriver):
    """Keeps the default `accepts`: queued for every transaction."""

    name = "everything"
    received: ClassVar[list[PushTransaction]] = []

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        self.received.append(txn)
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        return None


class NewOnly(PushDriver):
    """Filters, like chronos: MessageNew only; notes what it was asked about."""

    name = "newonly"
    asked: ClassVar[list[tuple[str, ...]]] = []
    received: ClassVar[list[PushTransaction]] = []

    def subscribes(self, event: EventName) -> bool:
        return event == "MessageNew"

    def accepts(self, txn: PushTransaction) -> bool:
        self.asked.append(tuple(event.name for event in txn.events))
        return any(event.name == "MessageNew" for event in txn.events)

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        self.received.append(txn)
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        return None


async def test_a_filtering_driver_is_asked_only_about_events_it_subscribes_to(
    tmp_path: Path, store_backend: StoreBackend
) -> None:
    Everything.received, NewOnly.asked, NewOnly.received = [], [], []
    config = write_config(tmp_path, store_backend.config() + textwrap.dedent("""\
        mail_plugins = $mail_plugins notify push_notification
        plugin {
          push_notification_driver = everything
          push_notification_driver2 = newonly
        }
        """))
    settings = load_settings(config).settings
    server = MailpushServer(settings, registry=DriverRegistry([Everything, NewOnly]))
    await server.start()
    try:
        store = server.store
        assert store is not None
        await store.deliver("alice", b"Subject: new\r\n\r\nbody\r\n", [DeliveryTarget("INBOX")])
        await store.append("alice", "INBOX", [NewMessage(b"Subject: a\r\n\r\nb\r\n")] * 50)
        await store.update_flags("alice", "INBOX", range(1, 52), "add", F.SEEN)
        async with asyncio.timeout(10):
            while len(Everything.received) < 4 or not NewOnly.received:
                await asyncio.sleep(0.02)
            while any(s.pending or s.inflight for s in await store.outbox.stats(time.time())):
                await asyncio.sleep(0.02)
        queued = await store.outbox.stats(time.time())
        per_driver = {
            s.driver: s.pending + s.inflight + s.retrying + s.dead + s.done for s in queued
        }
    finally:
        await server.stop()

    assert [t.events[0].name for t in Everything.received] == [
        "MailboxCreate", "MessageNew", "MessageAppend", "FlagsClear",
    ]
    assert len(Everything.received[-1].events) == 51 * 3  # FlagsClear, FlagsSet, MessageRead
    # Asked about the delivery only: the append's and the STORE's events are not its.
    assert NewOnly.asked == [("MessageNew",)]
    assert [t.events[0].name for t in NewOnly.received] == ["MessageNew"]
    assert per_driver == {"everything": 4, "newonly": 1}
