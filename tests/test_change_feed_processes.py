"""Commits of other processes reach the running server at once (docs/operations.md#the-change-feed).

A real `mailpush deliver` process writes the data directory of a server
running in this test's event loop: its IDLE session reports the new message
within a second, and its dispatcher pushes the queued transactions without
waiting for its next look at the outbox.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.server import MailpushServer
from mailpush.store import NewMessage, SqliteStore
from mailpush.store.open_store import SQLITE_STORE_FILE

from .conftest import free_port, imap_listener, lmtp_port, write_config
from .support.http_receiver import HttpReceiver

MESSAGE = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: %s\r\n\r\nbody\r\n"


@pytest.fixture
async def servers() -> AsyncIterator[list[MailpushServer]]:
    started: list[MailpushServer] = []
    yield started
    for server in started:
        await server.stop()


async def start_server(
    config: Path, servers: list[MailpushServer], poll_interval: float = 1.0
) -> MailpushServer:
    server = MailpushServer(load_settings(config).settings)
    server.dispatch_poll_interval = poll_interval
    await server.start()
    servers.append(server)
    return server


async def mailpush_deliver(config: Path, user: str, raw: bytes) -> float:
    """Run `mailpush deliver` as an MTA would; returns the monotonic time it exited."""
    return await mailpush(config, "deliver", "-d", user, stdin=raw)


async def mailpush(config: Path, command: str, *args: str, stdin: bytes = b"") -> float:
    """Run one `mailpush` command on `config`; returns the monotonic time it exited."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailpush.cli", command, "-c", str(config), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(stdin), 60)
    exited = time.monotonic()
    assert process.returncode == 0, stderr.decode()
    return exited


async def idling_session(imap_port: int, expected_exists: int) -> imaplib.IMAP4:
    """alice's session, INBOX selected, in IDLE."""
    client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port, timeout=5)

    def idle() -> None:
        client.login("alice", "secret")
        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [str(expected_exists).encode()])
        client.send(b"i1 IDLE\r\n")
        assert client.readline().startswith(b"+ ")

    await asyncio.to_thread(idle)
    return client


def lmtp_deliver(server: MailpushServer, subject: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.sendmail("a@example.org", ["alice"], MESSAGE % subject)


async def test_mailpush_deliver_reaches_an_idle_session_within_a_second(
    tmp_path: Path, servers: list[MailpushServer]
) -> None:
    imap_port = free_port()
    config = write_config(tmp_path, "protocols = imap lmtp\n" + imap_listener(imap_port))
    server = await start_server(config, servers)
    await asyncio.to_thread(lmtp_deliver, server, b"first")

    client = await idling_session(imap_port, 1)
    try:
        waiting = asyncio.create_task(asyncio.to_thread(client.readline))
        delivered = await mailpush_deliver(config, "alice", MESSAGE % b"second")
        line = await asyncio.wait_for(waiting, 5)
        reported = time.monotonic()
        assert line == b"* 2 EXISTS\r\n"
        assert reported - delivered < 1.0

        def uids_after_idle() -> list[bytes]:
            client.send(b"DONE\r\n")
            while not client.readline().startswith(b"i1 OK"):
                pass
            typ, data = client.uid("FETCH", "1:*", "(UID)")
            assert typ == "OK", data
            return [item for item in data if isinstance(item, bytes)]

        fetched = await asyncio.to_thread(uids_after_idle)
        assert [b"(UID 2)" in item for item in fetched] == [False, True]
    finally:
        await asyncio.to_thread(_logout, client)


async def test_an_admin_expunge_reaches_an_idle_session_within_a_second(
    tmp_path: Path, servers: list[MailpushServer]
) -> None:
    imap_port = free_port()
    config = write_config(tmp_path, "protocols = imap lmtp\n" + imap_listener(imap_port))
    server = await start_server(config, servers)
    for subject in (b"keep", b"old"):
        await asyncio.to_thread(lmtp_deliver, server, subject)
    client = await idling_session(imap_port, 2)
    try:

        def until_expunge() -> list[bytes]:
            lines = [client.readline()]
            while b"EXPUNGE" not in lines[-1]:
                lines.append(client.readline())
            return lines

        waiting = asyncio.create_task(asyncio.to_thread(until_expunge))
        expunged = await mailpush(config, "expunge", "alice", "mailbox", "INBOX", "SUBJECT", "old")
        lines = await asyncio.wait_for(waiting, 5)
        reported = time.monotonic()
        # The command flags the message \Deleted and commits, then expunges it: the
        # session may read the flag change first, or only the expunge that followed.
        assert lines[-1] == b"* 2 EXPUNGE\r\n"
        assert all(line.startswith(b"* 2 FETCH (") for line in lines[:-1]), lines
        assert reported - expunged < 1.0
    finally:
        await asyncio.to_thread(_logout, client)


async def test_a_delivery_to_one_server_process_reaches_a_session_of_another(
    tmp_path: Path, servers: list[MailpushServer]
) -> None:
    """Workers: two serving processes on one data directory hear each other's commits."""
    first_imap, second_imap = free_port(), free_port()
    first = write_config(tmp_path, "protocols = imap lmtp\n" + imap_listener(first_imap))
    second = tmp_path / "second.conf"
    second.write_text(
        first.read_text()
        .replace(f"port = {first_imap}", f"port = {second_imap}")
        .replace(f"port = {lmtp_port_of(first)}", f"port = {free_port()}")
    )
    delivering = await start_server(first, servers)
    await start_server(second, servers)
    await asyncio.to_thread(lmtp_deliver, delivering, b"first")
    client = await idling_session(second_imap, 1)
    try:
        waiting = asyncio.create_task(asyncio.to_thread(client.readline))
        await asyncio.to_thread(lmtp_deliver, delivering, b"second")
        delivered = time.monotonic()
        assert await asyncio.wait_for(waiting, 5) == b"* 2 EXISTS\r\n"
        assert time.monotonic() - delivered < 1.0
    finally:
        await asyncio.to_thread(_logout, client)


def lmtp_port_of(config: Path) -> int:
    text = config.read_text()
    lmtp = text[text.index("inet_listener lmtp"):]
    return int(lmtp.split("port = ", 1)[1].split()[0])


async def test_mailpush_deliver_is_pushed_without_waiting_for_the_dispatchers_poll(
    tmp_path: Path, servers: list[MailpushServer]
) -> None:
    """`mailpush deliver` only queues its push transactions; the server's dispatcher,
    woken by the feed, sends them (its poll here is a minute away)."""
    endpoint = HttpReceiver()
    await endpoint.start()
    try:
        config = write_config(
            tmp_path,
            "mail_plugins = $mail_plugins notify push_notification\n"
            f"plugin {{\n  push_notification_driver = webhook:url={endpoint.url}\n}}\n",
        )
        await start_server(config, servers, poll_interval=60.0)
        await asyncio.sleep(0.2)  # the dispatcher's first round, at start, is over
        delivered = await mailpush_deliver(config, "alice", MESSAGE % b"pushed")
        await endpoint.until(
            lambda: any(b"MessageNew" in body for body in endpoint.accepted), timeout=5
        )
        assert time.monotonic() - delivered < 1.0
    finally:
        await endpoint.stop()


def _logout(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        client.shutdown()


async def test_a_server_listens_on_the_feed_while_it_runs_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    server = MailpushServer(load_settings(write_config(tmp_path)).settings)
    await server.start()
    feed = tmp_path / "data" / "feed"
    try:
        assert [path.suffix for path in feed.iterdir()] == [".sock"]
    finally:
        await server.stop()
    assert list(feed.iterdir()) == []


async def test_a_command_reads_the_store_only_when_another_process_named_its_mailbox(
    tmp_path: Path, servers: list[MailpushServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before each answer in a selected mailbox the session takes in other processes'
    commits (connection._catch_up). It settles the change feed rather than read the
    store every time: NOOPs with nothing announced cost no read, one after another
    process's delivery to another user neither, one after a delivery to this mailbox
    reads it once and reports it."""
    imap_port = free_port()
    config = write_config(tmp_path, "protocols = imap lmtp\n" + imap_listener(imap_port))
    server = await start_server(config, servers)
    await asyncio.to_thread(lmtp_deliver, server, b"first")
    assert server.store is not None
    reads: list[str] = []
    read_changes = server.store.changes_since

    async def counted(user: str, mailbox: str, modseq: int) -> object:
        reads.append(f"{user}/{mailbox}")
        return await read_changes(user, mailbox, modseq)

    monkeypatch.setattr(server.store, "changes_since", counted)
    client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port, timeout=5)
    try:
        await asyncio.to_thread(client.login, "alice", "secret")
        await asyncio.to_thread(client.select, "INBOX")
        for _ in range(5):
            assert (await asyncio.to_thread(client.noop))[0] == "OK"
        assert reads == []
        await mailpush_deliver(config, "bob", MESSAGE % b"for bob")
        assert (await asyncio.to_thread(client.noop))[0] == "OK"
        assert reads == []
        await mailpush_deliver(config, "alice", MESSAGE % b"second")
        client.untagged_responses.pop("EXISTS", None)
        assert (await asyncio.to_thread(client.noop))[0] == "OK"
        assert client.untagged_responses.get("EXISTS") == [b"2"]
        assert reads == ["alice/INBOX"]
    finally:
        await asyncio.to_thread(_logout, client)


async def test_a_session_hearing_its_own_process_first_still_numbers_every_message_in_order(
    tmp_path: Path, servers: list[MailpushServer]
) -> None:
    """Another process's commit (UID 2) whose announcement has not come yet, then this
    process's own (UID 3): the selected session must not number UID 3 before UID 2, nor
    lose UID 2 (imaptest: "UID changed for sequence 24: 1621 -> 1619", session.py)."""
    imap_port = free_port()
    config = write_config(tmp_path, "protocols = imap lmtp\n" + imap_listener(imap_port))
    server = await start_server(config, servers)
    await asyncio.to_thread(lmtp_deliver, server, b"first")
    # A writer whose commits the server hears of only when it reads the store: the
    # feed's datagram is what comes late in real life; here it never comes.
    silent = SqliteStore(tmp_path / "data" / SQLITE_STORE_FILE)
    silent.open()
    watcher = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port, timeout=5)
    appender = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port, timeout=5)
    try:
        await asyncio.to_thread(watcher.login, "alice", "secret")
        await asyncio.to_thread(watcher.select, "INBOX")
        await silent.append("alice", "INBOX", [NewMessage(MESSAGE % b"elsewhere")])
        await asyncio.to_thread(appender.login, "alice", "secret")
        typ, _ = await asyncio.to_thread(
            appender.append, "INBOX", None, None, MESSAGE % b"here"
        )
        assert typ == "OK"

        assert (await asyncio.to_thread(watcher.noop))[0] == "OK"
        typ, data = await asyncio.to_thread(watcher.uid, "FETCH", "1:*", "(UID)")
        assert typ == "OK"
        assert [line.decode() for line in data] == [
            "1 (UID 1)", "2 (UID 2)", "3 (UID 3)",
        ]
    finally:
        await asyncio.to_thread(_logout, watcher)
        await asyncio.to_thread(_logout, appender)
        await asyncio.to_thread(silent.close)
