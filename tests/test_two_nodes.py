"""Two nodes on one PostgreSQL database: each sees the other's mail, and survives its death.

Each node is a real `mailpush serve` process with a data directory and ports
of its own and the same `mailpush_store` (docs/postgresql.md#dispatch-across-nodes).
A delivery through node A reaches an IDLE session on node B through the
change feed (LISTEN/NOTIFY); when node A is killed in the middle of a load,
what it acknowledged is readable through node B, and node B sends every push
transaction, node A's claimed ones once their lease runs out.
"""

from __future__ import annotations

import asyncio
import imaplib
import signal
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from mailpush.auth import add_user
from mailpush.store.pg_store import PostgresStore
from tests.support.http_receiver import HttpReceiver
from tests.support.postgres import PostgresServer, postgres_server

from . import conftest
from .conftest import free_port, imap_listener, write_config
from .test_server import start_serve

__all__ = ["postgres_server"]  # the session fixture, imported for pytest to find

#: The nodes' claim lease in the kill test (`mailpush_push_claim_lease`, the shortest
#: it takes): short, so that node B takes over in seconds.
LEASE = 3.0


@dataclass
class Node:
    config: Path
    log: Path
    lmtp: int
    imap: int
    process: subprocess.Popen[bytes] | None = None
    #: Subjects of the messages this node acknowledged, per user.
    acknowledged: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    uri = postgres_server.create_store_database()
    try:
        yield uri
    finally:
        postgres_server.drop_database(uri)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
            try:
                node.process.wait(30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


def configure(directory: Path, database: str, extra: str = "") -> Node:
    directory.mkdir()
    lmtp, imap = free_port(), free_port()
    config = write_config(
        directory,
        f"mailpush_store = {database}\nmailpush_workers = 1\nprotocols = imap lmtp\n"
        + imap_listener(imap)
        + extra,
        lmtp_port=lmtp,
    )
    for user in USERS:
        if user not in conftest.USERS:
            add_user(directory / "users", user, "secret", "PLAIN")
    return Node(config, directory / "serve.log", lmtp, imap)


def start(node: Node, nodes: list[Node]) -> None:
    node.process = start_serve(node.config, node.log)
    nodes.append(node)
    deadline = time.monotonic() + 30
    while not _listens(node.imap):
        if node.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"node did not start: {node.log.read_text()}")
        time.sleep(0.05)


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def lmtp_deliver(node: Node, user: str, subject: str) -> None:
    with smtplib.LMTP("127.0.0.1", node.lmtp) as client:
        client.sendmail("a@example.org", [user], message(user, subject))


def message(user: str, subject: str) -> bytes:
    head = f"From: a@example.org\r\nTo: {user}@example.org\r\nSubject: {subject}\r\n"
    return (head + "\r\nbody\r\n").encode()


def _logout(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        client.shutdown()


async def test_an_idle_on_node_b_sees_a_delivery_made_through_node_a_within_a_second(
    tmp_path: Path, database: str, nodes: list[Node]
) -> None:
    a, b = configure(tmp_path / "a", database), configure(tmp_path / "b", database)
    await asyncio.gather(asyncio.to_thread(start, a, nodes), asyncio.to_thread(start, b, nodes))
    await asyncio.to_thread(lmtp_deliver, a, "alice", "first")
    client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", b.imap, timeout=10)

    def idle() -> None:
        client.login("alice", "secret")
        assert client.select("INBOX") == ("OK", [b"1"])
        client.send(b"i1 IDLE\r\n")
        assert client.readline().startswith(b"+ ")

    try:
        await asyncio.to_thread(idle)
        waiting = asyncio.create_task(asyncio.to_thread(client.readline))
        await asyncio.to_thread(lmtp_deliver, a, "alice", "second")
        delivered = time.monotonic()
        assert await asyncio.wait_for(waiting, 5) == b"* 2 EXISTS\r\n"
        assert time.monotonic() - delivered < 1.0
    finally:
        await asyncio.to_thread(_logout, client)


# --- node A dies under load --------------------------------------------------------------

USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
CONNECTIONS = 8


def load(node: Node, connection: int, stop: threading.Event) -> None:
    """One LMTP connection delivering to each user in turn until `stop` (set as the node
    is killed); records each acknowledged message's subject (sent after the commit)."""
    n = 0
    try:
        with smtplib.LMTP("127.0.0.1", node.lmtp, timeout=10) as client:
            client.ehlo("test")
            while not stop.is_set():
                user = USERS[n % len(USERS)]
                subject = f"c{connection} n{n}"
                client.mail("a@example.org")
                client.rcpt(user)
                code, _ = client.data(message(user, subject))
                if code == 250:
                    node.acknowledged.setdefault(user, []).append(subject)
                n += 1
    except (OSError, smtplib.SMTPServerDisconnected):
        if not stop.is_set():
            raise  # not the kill: a real failure
        # Node A was killed: the message under way was never acknowledged.


def subjects_through(node: Node, user: str) -> set[str]:
    client = imaplib.IMAP4("127.0.0.1", node.imap, timeout=30)
    try:
        client.login(user, "secret")
        client.select("INBOX", readonly=True)
        typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        return {
            part[1].decode().split(":", 1)[1].strip()
            for part in data
            if isinstance(part, tuple)
        }
    finally:
        _logout(client)


def claims_held_by(database: str, pid: int) -> int:
    """How many deliveries the dispatcher of process `pid` holds in flight."""
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT count(*) FROM push_deliveries WHERE state = 'inflight'"
            " AND claimed_by LIKE %s",
            (f"% {pid} %",),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def committed_transactions(database: str) -> dict[str, tuple[str, int]]:
    """Every push transaction in the outbox: txn id to (user, outbox id: commit order)."""
    store = PostgresStore(database)
    await asyncio.to_thread(store.open)
    try:
        records = await store.outbox.records_after(0, limit=100_000)
    finally:
        await asyncio.to_thread(store.close)
    return {record.txn_id: (record.user, record.outbox_id) for record in records}


async def test_node_a_killed_under_load_loses_no_acknowledged_message_and_no_push(
    tmp_path: Path, database: str, nodes: list[Node]
) -> None:
    # A slow endpoint, so that node A holds claims in flight when it dies.
    endpoint = HttpReceiver(delay=0.02)
    await endpoint.start()
    push = (
        "mail_plugins = $mail_plugins notify push_notification\n"
        f"plugin {{\n  push_notification_driver = webhook:url={endpoint.url} ordered=yes\n}}\n"
        "mailpush_push_retry_initial = 50ms\nmailpush_push_retry_max_interval = 500ms\n"
        f"mailpush_push_claim_lease = {LEASE:g}s\n"
    )
    a = configure(tmp_path / "a", database, push)
    b = configure(tmp_path / "b", database, push)
    try:
        await asyncio.gather(
            asyncio.to_thread(start, a, nodes), asyncio.to_thread(start, b, nodes)
        )
        stop = threading.Event()
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            loaders = [
                asyncio.wrap_future(pool.submit(load, a, n, stop)) for n in range(CONNECTIONS)
            ]
            await endpoint.until(lambda: len(endpoint.received) >= 60, timeout=30)
            assert a.process is not None
            pid = a.process.pid
            async with asyncio.timeout(30):
                while not await asyncio.to_thread(claims_held_by, database, pid):
                    await asyncio.sleep(0.01)
            stop.set()  # from now on a connection may drop: the node is being killed
            a.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(a.process.wait)
            killed = time.monotonic()
            # Node A died holding claims (a lease outlives it): B sends them once it runs out.
            assert await asyncio.to_thread(claims_held_by, database, pid) > 0
            await asyncio.gather(*loaders)
        acknowledged = sum(len(subjects) for subjects in a.acknowledged.values())
        assert acknowledged >= 60

        committed = await committed_transactions(database)
        await endpoint.until(
            lambda: {r.headers["webhook-id"] for r in endpoint.received} >= committed.keys(),
            timeout=60,
        )
        taken_over = time.monotonic() - killed

        for user in USERS:
            readable = await asyncio.to_thread(subjects_through, b, user)
            assert set(a.acknowledged.get(user, ())) <= readable, user
        arrived = [r.headers["webhook-id"] for r in endpoint.received]
        assert set(arrived) == committed.keys()  # every push at least once, nothing else
        for user in USERS:
            first_arrivals = list(dict.fromkeys(t for t in arrived if committed[t][0] == user))
            order = [committed[t][1] for t in first_arrivals]
            assert order == sorted(order), f"{user}'s pushes out of commit order"
        log = b.log.read_text()
        assert "whose dispatcher's lease ran out are pending again" in log, log
        assert taken_over < 30
    finally:
        await endpoint.stop()

