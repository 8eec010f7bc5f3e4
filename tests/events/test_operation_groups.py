"""An operation group reaches a driver whole, even when the claim limit cuts it.

The dispatcher claims at most CLAIM_LIMIT deliveries per round. A MOVE's two
transactions must still run interleaved (begin, begin, events, end, events,
end: dovecot-observed.md item 4), so a claim that ends inside the group gives
its tail back and the whole group runs in the next round.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import ClassVar

import pytest

from mailpush.config import load_settings
from mailpush.dispatch import dispatcher as dispatcher_module
from mailpush.drivers import DriverRegistry, PushDriver
from mailpush.events import PushEvent, PushTransaction
from mailpush.server import MailpushServer
from mailpush.store import NewMessage

from ..conftest import write_config


class GatedRecorder(PushDriver):
    """Records every call; holds its first transaction until the test opens the gate."""

    name = "gated"
    calls: ClassVar[list[str]] = []
    entered: ClassVar[asyncio.Event]
    gate: ClassVar[asyncio.Event]

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        if not self.entered.is_set():
            self.entered.set()
            await self.gate.wait()
        self.calls.append(f"begin {txn.mailbox}")
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        self.calls.append(f"{event.name} {event.mailbox}")

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, PushTransaction)
        self.calls.append(f"end {state.mailbox} {str(success).lower()}")


async def _drained(server: MailpushServer) -> None:
    assert server.store is not None
    async with asyncio.timeout(10):
        while True:
            stats = await server.store.outbox.stats(time.time())
            if all(s.pending == 0 and s.inflight == 0 for s in stats):
                return
            await asyncio.sleep(0.02)


async def test_a_group_cut_by_the_claim_limit_runs_whole_in_the_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Room for the two transactions before the MOVE and its first one only.
    monkeypatch.setattr(dispatcher_module, "CLAIM_LIMIT", 3)
    GatedRecorder.calls = []
    GatedRecorder.entered = asyncio.Event()
    GatedRecorder.gate = asyncio.Event()
    config = write_config(tmp_path, textwrap.dedent("""\
        mail_plugins = $mail_plugins notify push_notification
        plugin {
          push_notification_driver = gated
        }
        """))
    server = MailpushServer(load_settings(config).settings,
                            registry=DriverRegistry([GatedRecorder]))
    await server.start()
    try:
        store = server.store
        assert store is not None
        await store.create_mailbox("alice", "INBOX")
        await GatedRecorder.entered.wait()  # the driver holds alice's first transaction
        await store.create_mailbox("alice", "Work")
        await store.append("alice", "INBOX", [NewMessage(b"Subject: x\r\n\r\nbody\r\n")])
        await store.move("alice", "INBOX", [1], "Work")
        GatedRecorder.gate.set()
        await _drained(server)
    finally:
        await server.stop()

    assert GatedRecorder.calls == [
        "begin INBOX", "MailboxCreate INBOX", "end INBOX true",
        "begin Work", "MailboxCreate Work", "end Work true",
        "begin INBOX", "MessageAppend INBOX", "end INBOX true",
        "begin Work", "begin INBOX",
        "MessageAppend Work", "end Work true",
        "MessageExpunge INBOX", "end INBOX true",
    ]
