"""An operation group reaches a driver whole, even when the claim limit cuts it.

The dispatcher claims at most CLAIM_LIMIT deliveries per round. A MOVE's two
transactions must still run interleaved (begin, begin, events, end, events,
end: docs/dovecot-reference.md#call-order-of-interleaved-transactions), so a
claim that ends inside the group gives its tail back and the whole group runs
in the next round.
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


class HeldRecorder(PushDriver):
    """Records each instance's calls; holds the transaction after its first `let_through`
    (per instance; none held if absent) until the server stops."""

    name = "held"
    calls: ClassVar[dict[str, list[str]]] = {}
    let_through: ClassVar[dict[str, int]] = {}

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        instance = self.config.instance
        if instance in self.let_through:
            if not self.let_through[instance]:
                await asyncio.Event().wait()
            self.let_through[instance] -= 1
        self.calls.setdefault(self.config.instance, []).append(f"begin {txn.mailbox}")
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        self.calls[self.config.instance].append(f"{event.name} {event.mailbox}")

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, PushTransaction)
        self.calls[self.config.instance].append(f"end {state.mailbox} {str(success).lower()}")


async def test_each_ordered_driver_s_group_cut_by_the_claim_limit_runs_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two ordered drivers claimed in one round, each cut inside a MOVE's group (not the
    # same one): both give their tails back, not only the one whose claim ended last.
    config = write_config(tmp_path, textwrap.dedent("""\
        mail_plugins = $mail_plugins notify push_notification
        mailpush_shutdown_timeout = 0.2s
        plugin {
          push_notification_driver = held
          push_notification_driver2 = held
        }
        """))
    settings = load_settings(config).settings
    registry = DriverRegistry([HeldRecorder])
    HeldRecorder.calls = {}
    # First run: held holds alice's first transaction, held#2 her third; the rest queue up.
    HeldRecorder.let_through = {"held": 0, "held#2": 2}
    server = MailpushServer(settings, registry=registry)
    await server.start()
    try:
        store = server.store
        assert store is not None
        await store.create_mailbox("alice", "INBOX")
        await store.create_mailbox("alice", "Work")
        await store.append("alice", "INBOX", [NewMessage(b"Subject: x\r\n\r\nbody\r\n")])
        await store.move("alice", "INBOX", [1], "Work")
        await store.move("alice", "Work", [1], "INBOX")
    finally:
        await server.stop()
    # Second run: the first round takes four of each driver's transactions (held: 1-4,
    # held#2: 3-6), ending between the first MOVE's two and between the second's two.
    monkeypatch.setattr(dispatcher_module, "CLAIM_LIMIT", 4)
    HeldRecorder.let_through = {}
    server = MailpushServer(settings, registry=registry)
    await server.start()
    try:
        await _drained(server)
    finally:
        await server.stop()

    expected = [
        "begin INBOX", "MailboxCreate INBOX", "end INBOX true",
        "begin Work", "MailboxCreate Work", "end Work true",
        "begin INBOX", "MessageAppend INBOX", "end INBOX true",
        "begin Work", "begin INBOX",
        "MessageAppend Work", "end Work true",
        "MessageExpunge INBOX", "end INBOX true",
        "begin INBOX", "begin Work",
        "MessageAppend INBOX", "end INBOX true",
        "MessageExpunge Work", "end Work true",
    ]
    assert sorted(HeldRecorder.calls) == ["held", "held#2"]
    assert HeldRecorder.calls["held"] == expected
    assert HeldRecorder.calls["held#2"] == expected


class StuckOnWork(PushDriver):
    """Records its calls; a message arriving in Work never ends (the first time)."""

    name = "stuck"
    calls: ClassVar[list[str]] = []
    stuck: ClassVar[bool] = True

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        self.calls.append(f"begin {txn.mailbox}")
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        if event.name == "MessageAppend" and event.mailbox == "Work" and self.stuck:
            StuckOnWork.stuck = False
            await asyncio.Event().wait()
        self.calls.append(f"{event.name} {event.mailbox}")

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, PushTransaction)
        self.calls.append(f"end {state.mailbox} {str(success).lower()}")


async def test_a_group_s_time_out_counts_against_the_transaction_running_not_the_others(
    tmp_path: Path,
) -> None:
    # One attempt only: the MOVE's destination transaction, stuck, is a dead letter; the
    # source transaction, begun but not run when time ran out, is given back and sent.
    StuckOnWork.calls, StuckOnWork.stuck = [], True
    config = write_config(tmp_path, textwrap.dedent("""\
        mail_plugins = $mail_plugins notify push_notification
        mailpush_push_timeout = 200ms
        plugin {
          push_notification_driver = stuck:delivery_attempts=1
        }
        """))
    server = MailpushServer(load_settings(config).settings,
                            registry=DriverRegistry([StuckOnWork]))
    await server.start()
    try:
        store = server.store
        assert store is not None
        await store.create_mailbox("alice", "INBOX")
        await store.create_mailbox("alice", "Work")
        await store.append("alice", "INBOX", [NewMessage(b"Subject: x\r\n\r\nbody\r\n")])
        await store.move("alice", "INBOX", [1], "Work")
        await _drained(server)
        dead = await store.outbox.dead_letters()
    finally:
        await server.stop()

    assert len(dead) == 1 and "no result within" in (dead[0].last_error or "")
    assert StuckOnWork.calls[-7:] == [
        "begin Work", "begin INBOX", "end Work false", "end INBOX false",
        "begin INBOX", "MessageExpunge INBOX", "end INBOX true",
    ]
