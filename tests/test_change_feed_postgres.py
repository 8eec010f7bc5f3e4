"""The PostgreSQL change feed: LISTEN/NOTIFY between every process on one database.

Each `NotifyChangeFeed` here stands for one process or node; they talk through
the session's private PostgreSQL server (docs/operations.md#the-change-feed).
The last tests run a server on a PostgreSQL store and a real `mailpush
deliver` process, as an MTA would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from mailpush.config import load_settings
from mailpush.server import MailpushServer, open_change_feed
from mailpush.store import ChangedElsewhere, ChangeHub, MailboxRenamed, feed_postgres
from mailpush.store.feed_postgres import CHANNEL, MAX_PAYLOAD, NotifyChangeFeed
from mailpush.store.feed_protocol import link_feed
from tests.support.postgres import PostgresServer, database_name, postgres_server

from .conftest import free_port, imap_listener, write_config
from .test_change_feed_processes import (
    MESSAGE,
    _logout,
    idling_session,
    lmtp_deliver,
    mailpush_deliver,
)
from .test_change_feed_sqlite import Ear

__all__ = ["postgres_server"]  # the session fixture, imported for pytest to find


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    uri = postgres_server.create_store_database()
    try:
        yield uri
    finally:
        postgres_server.drop_database(uri)


@pytest.fixture
async def feeds() -> AsyncIterator[list[NotifyChangeFeed]]:
    made: list[NotifyChangeFeed] = []
    yield made
    for feed in made:
        await feed.close()


async def listening(
    uri: str, feeds: list[NotifyChangeFeed], hub: ChangeHub | None = None
) -> tuple[NotifyChangeFeed, Ear]:
    feed = NotifyChangeFeed(uri, everyone=hub.users if hub else tuple)
    ear = Ear()
    await feed.listen(ear)
    feeds.append(feed)
    return feed, ear


def announcer(uri: str, feeds: list[NotifyChangeFeed]) -> NotifyChangeFeed:
    feed = NotifyChangeFeed(uri)
    feeds.append(feed)
    return feed


async def test_an_announcement_reaches_a_listening_process_as_changed_elsewhere(
    database: str, feeds: list[NotifyChangeFeed]
) -> None:
    _, ear = await listening(database, feeds)
    announcer(database, feeds).announce("alice", "INBOX")
    assert await ear.until(1) == [ChangedElsewhere("alice", "INBOX")]


async def test_every_listening_process_hears_it_but_never_its_own(
    database: str, feeds: list[NotifyChangeFeed]
) -> None:
    """PostgreSQL delivers a NOTIFY to the sending session's process too; the feed
    drops what carries its own name."""
    first, first_ear = await listening(database, feeds)
    _, second_ear = await listening(database, feeds)
    first.announce("alice", "INBOX")
    assert await second_ear.until(1) == [ChangedElsewhere("alice", "INBOX")]
    await asyncio.sleep(0.2)
    assert first_ear.records == []


async def test_announcements_of_one_loop_turn_are_coalesced_per_user(
    database: str, feeds: list[NotifyChangeFeed]
) -> None:
    _, ear = await listening(database, feeds)
    feed = announcer(database, feeds)
    feed.announce("alice", "INBOX")
    feed.announce("alice", "Sent")
    feed.announce("alice", "INBOX")
    feed.announce("bob", "INBOX")
    feed.announce("bob", None)
    heard = await ear.until(3)
    await asyncio.sleep(0.2)
    assert sorted(heard, key=repr) == sorted(
        [
            ChangedElsewhere("alice", "INBOX"),
            ChangedElsewhere("alice", "Sent"),
            ChangedElsewhere("bob", None),
        ],
        key=repr,
    )


async def test_an_announcement_too_big_for_a_notify_says_any_mailbox(
    database: str, feeds: list[NotifyChangeFeed]
) -> None:
    """PostgreSQL refuses payloads of 8000 bytes or more."""
    _, ear = await listening(database, feeds)
    feed = announcer(database, feeds)
    for n in range(MAX_PAYLOAD // 100 + 1):
        feed.announce("alice", f"{n:03d}" + "x" * 100)
    assert await ear.until(1) == [ChangedElsewhere("alice", None)]


async def test_close_sends_what_is_pending(database: str, feeds: list[NotifyChangeFeed]) -> None:
    """A command exits right after its commit: closing its feed must not drop it."""
    _, ear = await listening(database, feeds)
    feed = NotifyChangeFeed(database)
    feed.announce("alice", "INBOX")
    await feed.close()
    assert await ear.until(1) == [ChangedElsewhere("alice", "INBOX")]


async def test_a_linked_hub_announces_its_commits_but_not_what_it_heard(
    database: str, feeds: list[NotifyChangeFeed]
) -> None:
    _, ear = await listening(database, feeds)
    hub = ChangeHub()
    link_feed(hub, announcer(database, feeds))
    hub.publish([ChangedElsewhere("carol", "INBOX")])
    hub.publish([MailboxRenamed("alice", "Old", "New")])
    heard = await ear.until(2)
    await asyncio.sleep(0.2)
    assert set(heard) == {ChangedElsewhere("alice", "Old"), ChangedElsewhere("alice", "New")}


def terminate_listener(server: PostgresServer, uri: str) -> int:
    """End the backend of every session listening on the feed's channel in `uri`'s
    database, as a restart or failover would; how many were ended."""
    with psycopg.connect(server.uri(), autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND query = %s",
            (database_name(uri), f"LISTEN {CHANNEL}"),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_lost_listening_connection_is_replaced_and_every_user_with_sessions_looks(
    database: str, feeds: list[NotifyChangeFeed], postgres_server: PostgresServer
) -> None:
    """Announcements made while the connection was down are lost with it: once it listens
    again, each user with sessions here hears "any of your mailboxes may have changed"."""
    hub = ChangeHub()
    hub.subscribe(lambda change: None, user="alice")
    hub.subscribe(lambda change: None, user="bob")
    feed, ear = await listening(database, feeds, hub)
    assert await asyncio.to_thread(terminate_listener, postgres_server, database) == 1
    caught_up = await ear.until(2, timeout=10)
    assert sorted(caught_up, key=repr) == [
        ChangedElsewhere("alice", None),
        ChangedElsewhere("bob", None),
    ]
    assert feed.connections == 2
    announcer(database, feeds).announce("carol", "INBOX")
    assert (await ear.until(3))[2:] == [ChangedElsewhere("carol", "INBOX")]


async def test_an_announcement_is_sent_again_on_a_new_connection_when_the_old_one_died(
    database: str, feeds: list[NotifyChangeFeed], postgres_server: PostgresServer
) -> None:
    _, ear = await listening(database, feeds)
    feed = announcer(database, feeds)
    feed.announce("alice", "INBOX")
    await ear.until(1)
    with psycopg.connect(postgres_server.uri(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND query LIKE 'SELECT pg_notify%%'",
            (database_name(database),),
        )
    feed.announce("bob", "INBOX")
    assert (await ear.until(2))[1:] == [ChangedElsewhere("bob", "INBOX")]


# --- a server that stops answering --------------------------------------------------------


def backends(server: PostgresServer, uri: str, query_like: str = "%") -> list[int]:
    """The backend pids of the sessions on `uri`'s database whose last query is like
    `query_like` (their feed connections)."""
    with psycopg.connect(server.uri(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE %s",
            (database_name(uri), query_like),
        ).fetchall()
    return [int(row[0]) for row in rows]


def postmaster(server: PostgresServer) -> int:
    """The server's main process, which answers new connections."""
    return int((server.directory / "data" / "postmaster.pid").read_text().split()[0])


@contextlib.contextmanager
def stopped(server: PostgresServer, pids: Sequence[int]) -> Iterator[None]:
    """These PostgreSQL processes stop answering (SIGSTOP): the kernel still holds their
    connections open, so nothing but a timeout notices. They go on afterwards, whatever
    the test did, or the session's server would stay stuck; so does the process that
    started the server (`runuser`, under root, stops itself when its child stops)."""
    assert pids
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in (*pids, server.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def with_password(uri: str, password: str) -> str:
    """`uri` with a password (the test server trusts local connections: it is ignored)."""
    scheme, _, rest = uri.partition("://")
    user, _, where = rest.partition("@")
    return f"{scheme}://{user}:{password}@{where}"


async def test_a_notify_the_server_does_not_answer_is_cut_off_and_sent_on_a_new_connection(
    database: str,
    feeds: list[NotifyChangeFeed],
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its backend hangs (the connection stays up, keepalives are answered): after
    ANSWER_TIMEOUT the feed gives up on that connection, says so without the URI's
    password, and announces on a new one, which a new backend serves."""
    monkeypatch.setattr(feed_postgres, "ANSWER_TIMEOUT", 0.5)
    caplog.set_level(logging.WARNING, logger=feed_postgres.__name__)
    _, ear = await listening(database, feeds)
    feed = announcer(with_password(database, "s3cret-pw"), feeds)
    feed.announce("alice", "INBOX")
    await ear.until(1)
    sender = await asyncio.to_thread(backends, postgres_server, database, "SELECT pg_notify%")
    with stopped(postgres_server, sender):
        feed.announce("bob", "INBOX")
        assert (await ear.until(2, timeout=5))[1:] == [ChangedElsewhere("bob", "INBOX")]
    assert "did not answer NOTIFY within 0.5s" in caplog.text
    assert "postgres:***@" in caplog.text
    assert "s3cret-pw" not in caplog.text


async def test_close_returns_when_the_server_stops_answering_altogether(
    database: str,
    feeds: list[NotifyChangeFeed],
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Shutting down must not wait on a stuck database: `close` gives the pending
    announcements CLOSE_TIMEOUT, then drops them with a warning and stops listening."""
    monkeypatch.setattr(feed_postgres, "CLOSE_TIMEOUT", 0.5)
    caplog.set_level(logging.WARNING, logger=feed_postgres.__name__)
    listener, ear = await listening(database, feeds)
    feed = announcer(database, feeds)
    feed.announce("alice", "INBOX")
    await ear.until(1)
    sessions = await asyncio.to_thread(backends, postgres_server, database)
    assert len(sessions) == 2  # the listening connection and the sending one
    with stopped(postgres_server, [postmaster(postgres_server), *sessions]):
        feed.announce("bob", "INBOX")
        await asyncio.sleep(0.1)  # the NOTIFY is on its way
        closing = time.monotonic()
        await asyncio.wait_for(feed.close(), 5)
        await asyncio.wait_for(listener.close(), 5)
        took = time.monotonic() - closing
    assert took < 2.0
    assert "did not take 1 announcement(s) within 0.5s" in caplog.text


async def test_an_announcement_to_a_server_that_takes_no_connection_is_dropped_in_time(
    database: str,
    feeds: list[NotifyChangeFeed],
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command's feed connects only to announce: connecting is bounded too, and the
    announcement dropped with a warning after the second try."""
    monkeypatch.setattr(feed_postgres, "CONNECT_TIMEOUT", 0.5)
    caplog.set_level(logging.WARNING, logger=feed_postgres.__name__)
    feed = NotifyChangeFeed(database)
    with stopped(postgres_server, [postmaster(postgres_server)]):
        feed.announce("alice", "INBOX")
        closing = time.monotonic()
        await asyncio.wait_for(feed.close(), 5)
        took = time.monotonic() - closing
    assert took < 2.0
    assert "cannot announce 1 change(s)" in caplog.text
    assert "no connection within 0.5s" in caplog.text


async def test_a_server_on_a_postgresql_store_chooses_the_notify_feed(
    tmp_path: Path, database: str
) -> None:
    settings = load_settings(write_config(tmp_path, f"mailpush_store = {database}\n")).settings
    assert isinstance(open_change_feed(settings, ChangeHub()), NotifyChangeFeed)
    server = MailpushServer(settings)
    await server.start()
    try:
        assert isinstance(server.feed, NotifyChangeFeed)
        assert not (tmp_path / "data" / "feed").exists()  # no datagram socket either
    finally:
        await server.stop()


async def test_mailpush_deliver_reaches_an_idle_session_of_a_postgresql_server_within_a_second(
    tmp_path: Path, database: str
) -> None:
    imap_port = free_port()
    config = write_config(
        tmp_path,
        f"mailpush_store = {database}\nprotocols = imap lmtp\n" + imap_listener(imap_port),
    )
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    try:
        await asyncio.to_thread(lmtp_deliver, server, b"first")
        client = await idling_session(imap_port, 1)
        try:
            waiting = asyncio.create_task(asyncio.to_thread(client.readline))
            delivered = await mailpush_deliver(config, "alice", MESSAGE % b"second")
            line = await asyncio.wait_for(waiting, 5)
            assert line == b"* 2 EXISTS\r\n"
            assert time.monotonic() - delivered < 1.0
        finally:
            await asyncio.to_thread(_logout, client)
    finally:
        await server.stop()
