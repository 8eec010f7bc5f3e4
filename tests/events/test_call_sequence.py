"""The order of Lua calls a push script observes, as Dovecot 2.3.19 makes them.

`begin_txn` comes when a mail transaction opens, its events and `end_txn`
when it commits, so transactions of one operation interleave
(docs/dovecot-reference.md#call-order-of-interleaved-transactions); a
rolled-back transaction is `begin_txn` and `end_txn(ctx, false)` without
events (docs/dovecot-reference.md#rolled-back-transactions); INBOX is created
(MailboxCreate, service imap) at the first SELECT, not at LOGIN
(docs/dovecot-reference.md#inbox-is-created-on-first-use).

Each test runs the recording script of the Dovecot differential test
(tests/dovecot/fixtures/record_events.lua) under a real server, performs a
setup over LMTP and IMAP, then the operation, and compares the calls the
script saw for the operation, one short line per call, in order. Transaction
ids are renumbered from t1 in the order their `begin_txn` came.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import smtplib
import socket
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.server import MailpushServer

from ..conftest import free_port, imap_listener, lmtp_port, write_config

RECORDER = Path(__file__).parents[1] / "dovecot" / "fixtures" / "record_events.lua"
MESSAGE = b"From: s@example.net\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
PLUGINS = (
    "mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua sieve"
)


@dataclass
class Site:
    server: MailpushServer
    imap_port: int
    record: Path

    @property
    def lmtp_port(self) -> int:
        return lmtp_port(self.server)

    def deliver(self, to: str = "alice") -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            lmtp.sendmail("s@example.net", [to], MESSAGE)

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port)
        typ, data = client.login("alice", "secret")
        assert typ == "OK", data
        return client

    async def settled(self) -> None:
        """Every committed push transaction has been through the script."""
        assert self.server.store is not None
        outbox = self.server.store.outbox
        quiet_since: float | None = None
        async with asyncio.timeout(10):
            while True:
                stats = await outbox.stats(time.time())
                if all(s.pending == 0 and s.inflight == 0 for s in stats):
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since > 0.05:
                        return
                else:
                    quiet_since = None
                await asyncio.sleep(0.01)

    async def calls_of(self, action: Callable[[], object], user: str = "alice") -> list[str]:
        """The calls `user`'s script saw while `action` ran (in a thread)."""
        await self.settled()
        before = self.record.stat().st_size
        await asyncio.to_thread(action)
        await self.settled()
        with self.record.open("rb") as record:
            record.seek(before)
            lines = [json.loads(line) for line in record.read().splitlines() if line.strip()]
        return _calls([line for line in lines if _user_of(line, lines) in (user, None)])


def _user_of(line: dict[str, object], lines: list[dict[str, object]]) -> str | None:
    """The user of a begin_txn line (the others are matched by state)."""
    if line.get("fn") == "dovecot_lua_notify_begin_txn":
        user = line.get("user")
        assert isinstance(user, dict)
        return str(user.get("username"))
    owners = {
        other["state"]: _user_of(other, lines)
        for other in lines
        if other.get("fn") == "dovecot_lua_notify_begin_txn"
    }
    return owners.get(line.get("state"))


def _calls(lines: list[dict[str, object]]) -> list[str]:
    numbers: dict[object, str] = {}
    out = []
    for line in lines:
        fn = str(line["fn"]).removeprefix("dovecot_lua_notify_")
        if fn in ("script_init", "script_deinit"):
            continue
        txn = numbers.setdefault((line["state"], line["txn"]), f"t{len(numbers) + 1}")
        if fn == "begin_txn":
            user = line["user"]
            assert isinstance(user, dict)
            out.append(f"begin {txn} ({user['service']})")
        elif fn == "end_txn":
            out.append(f"end {txn} {str(line['success']).lower()}")
        else:
            event = line["event"]
            assert isinstance(event, dict)
            out.append(f"{event['name']} {event['mailbox']} {txn}")
    return out


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    record = tmp_path / "calls.jsonl"
    record.touch()
    sieve = tmp_path / "sieve"
    sieve.mkdir()
    (sieve / "alice.sieve").write_text(
        'require ["fileinto", "mailbox"];\n'
        'if header :contains "subject" "file me" {\n'
        '  fileinto :create "Filtered/One";\n'
        '  fileinto :create "Filtered/Two";\n'
        "}\n"
    )
    imap = free_port()
    config = write_config(
        tmp_path,
        imap_listener(imap)
        + textwrap.dedent(
            f"""\
            protocols = imap lmtp
            {PLUGINS}
            plugin {{
              push_notification_driver = lua:file={RECORDER}
              record_file = {record}
              sieve = {sieve}/%n.sieve
            }}
            """
        ),
    )
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    try:
        yield Site(server, imap, record)
    finally:
        await server.stop()


async def test_move_opens_destination_then_source_and_commits_them_in_that_order(
    site: Site,
) -> None:
    client = await asyncio.to_thread(site.imap)
    await asyncio.to_thread(site.deliver)
    await asyncio.to_thread(client.select, "INBOX")
    await asyncio.to_thread(client.create, "Work")

    calls = await site.calls_of(lambda: client.uid("MOVE", "1", "Work"))

    assert calls == [
        "begin t1 (imap)",
        "begin t2 (imap)",
        "MessageAppend Work t1",
        "end t1 true",
        "MessageExpunge INBOX t2",
        "end t2 true",
    ]
    await asyncio.to_thread(client.logout)


async def test_sieve_filing_into_two_new_folders_interleaves_as_dovecot(site: Site) -> None:
    await asyncio.to_thread(site.deliver)  # INBOX exists, as in the observed run

    def file_me() -> None:
        with smtplib.LMTP("127.0.0.1", site.lmtp_port) as lmtp:
            lmtp.sendmail("s@example.net", ["alice"], MESSAGE.replace(b"hi", b"file me"))

    calls = await site.calls_of(file_me)

    assert calls == [
        "begin t1 (lmtp)",
        "MailboxCreate Filtered/One t1",
        "end t1 true",
        "begin t2 (lmtp)",
        "begin t3 (lmtp)",
        "MailboxCreate Filtered/Two t3",
        "end t3 true",
        "begin t4 (lmtp)",
        "MessageNew Filtered/One t2",
        "end t2 true",
        "MessageNew Filtered/Two t4",
        "end t4 true",
    ]


async def test_multiappend_failing_part_way_is_begin_and_end_false_without_events(
    site: Site,
) -> None:
    await asyncio.to_thread(site.deliver)

    def multiappend() -> None:
        with socket.create_connection(("127.0.0.1", site.imap_port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"a LOGIN alice secret\r\n")
            assert reader.readline().startswith(b"a OK")
            sock.sendall(b"b APPEND INBOX {%d+}\r\n%s {0+}\r\n\r\n" % (len(MESSAGE), MESSAGE))
            reply = reader.readline()
            assert reply.startswith(b"b NO Can't save a zero byte message"), reply
            sock.sendall(b"c LOGOUT\r\n")
            while not reader.readline().startswith(b"c "):
                pass

    calls = await site.calls_of(multiappend)

    assert calls == ["begin t1 (imap)", "end t1 false"]
    assert site.server.store is not None
    assert (await site.server.store.status("alice", "INBOX")).messages == 1


async def test_an_empty_first_append_begins_no_transaction(site: Site) -> None:
    await asyncio.to_thread(site.deliver)
    client = await asyncio.to_thread(site.imap)

    def empty_append() -> None:
        typ, _ = client.append("INBOX", None, None, b"")
        assert typ == "NO"

    assert await site.calls_of(empty_append) == []
    await asyncio.to_thread(client.logout)


async def test_inbox_is_created_at_the_first_select_not_at_login(site: Site) -> None:
    holder: list[imaplib.IMAP4] = []

    calls_at_login = await site.calls_of(lambda: holder.append(site.imap()))
    client = holder[0]
    typ, listed = await asyncio.to_thread(client.list, '""', "INBOX")
    calls_at_select = await site.calls_of(lambda: client.select("INBOX"))
    calls_at_second_select = await site.calls_of(lambda: client.select("INBOX"))

    assert calls_at_login == []
    # Dovecot lists INBOX before its first use creates it.
    assert typ == "OK" and listed and b"INBOX" in listed[0]
    assert calls_at_select == ["begin t1 (imap)", "MailboxCreate INBOX t1", "end t1 true"]
    assert calls_at_second_select == []
    await asyncio.to_thread(client.logout)
