"""Every row of docs/dovecot-reference.md#which-operations-produce-which-events, over LMTP and IMAP.

Each case starts a server whose only driver records what the dispatcher
hands it, runs a setup (whose events are discarded), then the operation
under test, and compares the transactions the driver received: their
grouping and order, the service and mailbox of each, and every field of
every event that is set.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mailpush.config import load_settings
from mailpush.drivers import DriverRegistry, PushDriver
from mailpush.events import PushEvent, PushTransaction
from mailpush.server import MailpushServer

from ..conftest import free_port, imap_listener, write_config

Brief = tuple[str, str, list[dict[str, Any]]]


class RecordingDriver(PushDriver):
    """Keeps every transaction it is given, per `sink=` option, for the test to read."""

    name = "recording"
    sinks: ClassVar[dict[str, list[PushTransaction]]] = {}

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        self.sinks.setdefault(self.config.options["sink"], []).append(txn)
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        return None


def brief(txn: PushTransaction) -> Brief:
    """A transaction as (service, mailbox, events with only their set fields)."""
    events = []
    for event in txn.events:
        fields: dict[str, Any] = {"name": event.name, "mailbox": event.mailbox}
        for key in ("mailbox_old", "uid", "flags", "keywords", "flags_old", "keywords_old"):
            value = getattr(event, key)
            if value not in (None, ()):
                fields[key] = list(value) if isinstance(value, tuple) else value
        if event.uid is not None:
            assert isinstance(event.uid_validity, int) and event.uid_validity > 0
        if event.message is not None:
            fields["subject"] = event.message.subject
        events.append(fields)
    return txn.service, txn.mailbox, events


class Client:
    """One LMTP sender and one logged-in IMAP session (alice) against the server."""

    def __init__(self, lmtp_port: int, imap_port: int) -> None:
        self.lmtp_port = lmtp_port
        self.imap = imaplib.IMAP4("127.0.0.1", imap_port)
        self.imap.login("alice", "secret")

    def deliver(self, subject: str, to: str = "alice") -> None:
        raw = f"From: s@example.net\r\nTo: {to}@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n"
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            lmtp.sendmail("s@example.net", [to], raw.encode())

    def ok(self, command: str, *args: str) -> list[Any]:
        typ, data = getattr(self.imap, command)(*args)
        assert typ == "OK", (command, args, data)
        return list(data)

    def uid(self, command: str, *args: str) -> list[Any]:
        typ, data = self.imap.uid(command, *args)
        assert typ == "OK", (command, args, data)
        return list(data)

    def append(self, mailbox: str, flags: str, subject: str) -> None:
        raw = f"From: s@example.net\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()
        self.ok("append", mailbox, flags, None, raw)  # type: ignore[arg-type]

    def close(self) -> None:
        self.imap.logout()


Step = Callable[[Client], None]


@dataclass(frozen=True)
class Row:
    """One storage operation of that table and the transactions Dovecot runs for it."""

    id: str
    action: Step
    expected: list[Brief]
    setup: Step = field(default=lambda client: None)
    #: Whose transactions are compared (the IMAP session is always alice's).
    user: str = "alice"


def _delivered_and_selected(client: Client) -> None:
    client.deliver("one")
    client.ok("select", "INBOX")


def _two_in_work(client: Client) -> None:
    client.ok("create", "Work")
    client.append("Work", "()", "w1")
    client.append("Work", "()", "w2")


def _store(spec: str, flags: str) -> Step:
    return lambda client: client.ok("store", "1", spec, flags) and None


SEEN_CLEAR = {"name": "FlagsClear", "mailbox": "INBOX", "uid": 1, "flags_old": ["\\Recent"]}

ROWS = [
    Row(
        "lmtp-delivery-is-MessageNew",
        lambda c: c.deliver("two"),
        [("lmtp", "INBOX", [{"name": "MessageNew", "mailbox": "INBOX", "uid": 2,
                             "subject": "two"}])],
        setup=lambda c: c.deliver("one"),
    ),
    Row(
        "lmtp-autocreate-of-INBOX-is-MailboxCreate-then-MessageNew",
        # bob never logged in, so his INBOX does not exist until this delivery.
        lambda c: c.deliver("first", to="bob"),
        [
            ("lmtp", "INBOX", [{"name": "MailboxCreate", "mailbox": "INBOX"}]),
            ("lmtp", "INBOX", [{"name": "MessageNew", "mailbox": "INBOX", "uid": 1,
                                "subject": "first"}]),
        ],
        user="bob",
    ),
    Row(
        "imap-create-is-MailboxCreate",
        lambda c: c.ok("create", "Work") and None,
        [("imap", "Work", [{"name": "MailboxCreate", "mailbox": "Work"}])],
    ),
    Row(
        "imap-delete-of-empty-mailbox-is-MailboxDelete",
        lambda c: c.ok("delete", "Work") and None,
        [("imap", "Work", [{"name": "MailboxDelete", "mailbox": "Work"}])],
        setup=lambda c: c.ok("create", "Work") and None,
    ),
    Row(
        "imap-delete-of-full-mailbox-is-expunges-then-MailboxDelete",
        lambda c: c.ok("delete", "Work") and None,
        [
            ("imap", "Work", [
                {"name": "MessageExpunge", "mailbox": "Work", "uid": 1},
                {"name": "MessageExpunge", "mailbox": "Work", "uid": 2},
            ]),
            ("imap", "Work", [{"name": "MailboxDelete", "mailbox": "Work"}]),
        ],
        setup=_two_in_work,
    ),
    Row(
        "imap-rename-is-MailboxRename-on-the-new-name",
        lambda c: c.ok("rename", "Work", "Play") and None,
        [("imap", "Play", [{"name": "MailboxRename", "mailbox": "Play",
                            "mailbox_old": "Work"}])],
        setup=lambda c: c.ok("create", "Work") and None,
    ),
    Row(
        "imap-subscribe-is-MailboxSubscribe",
        lambda c: c.ok("subscribe", "Work") and None,
        [("imap", "Work", [{"name": "MailboxSubscribe", "mailbox": "Work"}])],
        setup=lambda c: c.ok("create", "Work") and None,
    ),
    Row(
        "imap-unsubscribe-is-MailboxUnsubscribe",
        lambda c: c.ok("unsubscribe", "Work") and None,
        [("imap", "Work", [{"name": "MailboxUnsubscribe", "mailbox": "Work"}])],
        setup=lambda c: (c.ok("create", "Work"), c.ok("subscribe", "Work")) and None,
    ),
    Row(
        "imap-append-is-MessageAppend-with-flags-and-keywords",
        lambda c: c.append("INBOX", "(\\Seen $Label)", "appended"),
        [
            # INBOX is created on first use, here the APPEND, not at LOGIN
            # (docs/dovecot-reference.md#inbox-is-created-on-first-use).
            ("imap", "INBOX", [{"name": "MailboxCreate", "mailbox": "INBOX"}]),
            ("imap", "INBOX", [{"name": "MessageAppend", "mailbox": "INBOX", "uid": 1,
                                "flags": ["\\Seen"], "keywords": ["$Label"],
                                "subject": "appended"}]),
        ],
    ),
    Row(
        "imap-append-that-fails-fires-nothing",
        lambda c: c.imap.append("Missing", "()", None, b"Subject: x\r\n\r\n") and None,
        [],
    ),
    Row(
        "imap-copy-is-MessageAppend-in-the-destination",
        lambda c: c.ok("copy", "1", "Work") and None,
        [("imap", "Work", [{"name": "MessageAppend", "mailbox": "Work", "uid": 1,
                            "subject": "one"}])],
        setup=lambda c: (_delivered_and_selected(c), c.ok("create", "Work")) and None,
    ),
    Row(
        "imap-move-is-MessageAppend-then-MessageExpunge-as-two-transactions",
        lambda c: c.uid("move", "1", "Work") and None,
        [
            ("imap", "Work", [{"name": "MessageAppend", "mailbox": "Work", "uid": 1,
                               "subject": "one"}]),
            ("imap", "INBOX", [{"name": "MessageExpunge", "mailbox": "INBOX", "uid": 1}]),
        ],
        setup=lambda c: (_delivered_and_selected(c), c.ok("create", "Work")) and None,
    ),
    Row(
        "imap-expunge-is-MessageExpunge",
        lambda c: c.ok("expunge") and None,
        [("imap", "INBOX", [{"name": "MessageExpunge", "mailbox": "INBOX", "uid": 1}])],
        setup=lambda c: (_delivered_and_selected(c), c.ok("store", "1", "+FLAGS.SILENT",
                                                           "(\\Deleted)")) and None,
    ),
    Row(
        "imap-store-seen-is-FlagsClear-FlagsSet-MessageRead",
        _store("+FLAGS", "(\\Seen)"),
        [("imap", "INBOX", [
            SEEN_CLEAR,
            {"name": "FlagsSet", "mailbox": "INBOX", "uid": 1, "flags": ["\\Seen"]},
            {"name": "MessageRead", "mailbox": "INBOX", "uid": 1},
        ])],
        setup=_delivered_and_selected,
    ),
    Row(
        "imap-fetch-body-sets-seen-like-a-store",
        lambda c: c.ok("fetch", "1", "(BODY[])") and None,
        [("imap", "INBOX", [
            SEEN_CLEAR,
            {"name": "FlagsSet", "mailbox": "INBOX", "uid": 1, "flags": ["\\Seen"]},
            {"name": "MessageRead", "mailbox": "INBOX", "uid": 1},
        ])],
        setup=_delivered_and_selected,
    ),
    Row(
        "imap-fetch-body-peek-fires-nothing",
        lambda c: c.ok("fetch", "1", "(BODY.PEEK[])") and None,
        [],
        setup=_delivered_and_selected,
    ),
    Row(
        "imap-store-deleted-is-FlagsClear-FlagsSet-MessageTrash",
        _store("+FLAGS", "(\\Deleted)"),
        [("imap", "INBOX", [
            SEEN_CLEAR,
            {"name": "FlagsSet", "mailbox": "INBOX", "uid": 1, "flags": ["\\Deleted"]},
            {"name": "MessageTrash", "mailbox": "INBOX", "uid": 1},
        ])],
        setup=_delivered_and_selected,
    ),
    Row(
        "imap-store-minus-seen-is-FlagsClear-only",
        _store("-FLAGS", "(\\Seen)"),
        [("imap", "INBOX", [
            {"name": "FlagsClear", "mailbox": "INBOX", "uid": 1, "flags": ["\\Seen"],
             "flags_old": ["\\Seen"]},
        ])],
        setup=lambda c: (_delivered_and_selected(c), c.ok("close"), c.ok("select", "INBOX"),
                         c.ok("store", "1", "+FLAGS", "(\\Seen)")) and None,
    ),
    Row(
        "imap-store-keyword-is-FlagsClear-and-FlagsSet-with-the-keyword",
        _store("+FLAGS", "($Label)"),
        [("imap", "INBOX", [
            {"name": "FlagsClear", "mailbox": "INBOX", "uid": 1},
            {"name": "FlagsSet", "mailbox": "INBOX", "uid": 1, "keywords": ["$Label"]},
        ])],
        setup=_delivered_and_selected,
    ),
    Row(
        "imap-store-removing-a-keyword-is-FlagsClear-with-old-keywords",
        _store("-FLAGS", "($Label)"),
        [("imap", "INBOX", [
            {"name": "FlagsClear", "mailbox": "INBOX", "uid": 1, "keywords": ["$Label"],
             "keywords_old": ["$Label"]},
            {"name": "FlagsSet", "mailbox": "INBOX", "uid": 1},
        ])],
        setup=lambda c: (_delivered_and_selected(c), c.ok("store", "1", "+FLAGS",
                                                           "($Label)")) and None,
    ),
    Row(
        "imap-store-that-changes-nothing-fires-nothing",
        _store("+FLAGS", "(\\Seen)"),
        [],
        setup=lambda c: (_delivered_and_selected(c), c.ok("store", "1", "+FLAGS",
                                                           "(\\Seen)")) and None,
    ),
    Row(
        "imap-store-on-three-messages-is-one-transaction-in-uid-order",
        lambda c: c.ok("store", "1:3", "+FLAGS", "(\\Flagged)") and None,
        [("imap", "INBOX", [
            event
            for uid in (1, 2, 3)
            for event in (
                {"name": "FlagsClear", "mailbox": "INBOX", "uid": uid, "flags_old": ["\\Recent"]},
                {"name": "FlagsSet", "mailbox": "INBOX", "uid": uid, "flags": ["\\Flagged"]},
            )
        ])],
        setup=lambda c: (c.deliver("a"), c.deliver("b"), c.deliver("c"),
                         c.ok("select", "INBOX")) and None,
    ),
]


async def _settled(sink: list[PushTransaction], server: MailpushServer) -> None:
    """Wait until every committed push transaction has been handed to the driver."""
    assert server.store is not None
    outbox = server.store.outbox
    for _ in range(500):
        stats = await outbox.stats(time.time())
        if all(s.pending == 0 and s.inflight == 0 for s in stats):
            await asyncio.sleep(0.05)
            stats = await outbox.stats(time.time())
            if all(s.pending == 0 and s.inflight == 0 for s in stats):
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"push queue did not drain: {stats}")


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_protocol_operation_gives_dovecots_push_transactions(
    row: Row, tmp_path: Path
) -> None:
    sink_name = row.id
    RecordingDriver.sinks[sink_name] = []
    imap = free_port()
    config = write_config(
        tmp_path,
        imap_listener(imap)
        + textwrap.dedent(
            f"""\
            protocols = imap lmtp
            mail_plugins = $mail_plugins notify push_notification
            plugin {{
              push_notification_driver = recording:sink={sink_name}
            }}
            """
        ),
    )
    server = MailpushServer(
        load_settings(config).settings, registry=DriverRegistry([RecordingDriver])
    )
    await server.start()
    try:
        lmtp = next(item.port for item in server.listeners if item.service == "lmtp")
        client = await asyncio.to_thread(Client, lmtp, imap)
        try:
            await asyncio.to_thread(row.setup, client)
            sink = RecordingDriver.sinks[sink_name]
            await _settled(sink, server)
            before = len(sink)
            await asyncio.to_thread(row.action, client)
            await _settled(sink, server)
            received = [brief(txn) for txn in sink[before:] if txn.user == row.user]
            assert received == row.expected
        finally:
            await asyncio.to_thread(client.close)
    finally:
        await server.stop()
        del RecordingDriver.sinks[sink_name]
