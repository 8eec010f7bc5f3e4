"""End to end: LMTP delivery → outbox → dispatcher → a real HTTP endpoint."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.server import MailpushServer
from tests.conftest import lmtp_port
from tests.support.http_receiver import HttpReceiver


@pytest.fixture
async def endpoint() -> AsyncIterator[HttpReceiver]:
    ep = HttpReceiver()
    await ep.start()
    yield ep
    await ep.stop()


def webhook_config(url: str, extra: str = "") -> str:
    """A webhook that keeps each user's commit order (`ordered=yes`), as these tests check."""
    return (
        "mail_plugins = $mail_plugins notify push_notification\n"
        f"plugin {{\n  push_notification_driver = webhook:url={url} ordered=yes\n}}\n"
        "mailpush_push_retry_initial = 100ms\n"
        "mailpush_push_retry_max_interval = 1s\n" + extra
    )


def deliver(server: MailpushServer, rcpt: str, subject: str) -> float:
    """One LMTP delivery; returns seconds from DATA end to the 250."""
    raw = f"From: s@example.net\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("s@example.net")
        client.rcpt(rcpt)
        start = time.perf_counter()
        code, _ = client.data(raw)
        elapsed = time.perf_counter() - start
    assert code == 250
    return elapsed


async def test_delivery_reaches_the_webhook_with_a_stable_id(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await make_server(webhook_config(endpoint.url))  # type: ignore[operator]
    await asyncio.to_thread(deliver, server, "alice", "Hello push")
    # The first delivery auto-created INBOX: a MailboxCreate transaction comes first.
    created, delivered = await endpoint.wait_for(2)
    assert [e["name"] for e in created.json()["events"]] == ["MailboxCreate"]
    body = delivered.json()
    assert delivered.headers["webhook-id"] == body["id"] != created.json()["id"]
    assert body["user"] == "alice"
    (event,) = body["events"]
    assert event["name"] == "MessageNew"
    assert event["mailbox"] == "INBOX"
    assert event["subject"] == "Hello push"


async def test_endpoint_refusing_for_30s_then_recovering_gets_everything_in_user_order(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    endpoint.status = 503
    server = await make_server(webhook_config(endpoint.url))  # type: ignore[operator]
    subjects = {user: [f"{user} {n}" for n in range(5)] for user in ("alice", "bob", "carol")}
    for n in range(5):
        for user, wanted in subjects.items():
            await asyncio.to_thread(deliver, server, user, wanted[n])
    await asyncio.sleep(30)
    assert endpoint.received == [] and endpoint.refused > 0
    endpoint.status = 200
    # 3 MailboxCreate (INBOX) + 15 MessageNew
    received = await endpoint.wait_for(18, timeout=30)
    for user, wanted in subjects.items():
        mine = [r.json() for r in received if r.json()["user"] == user]
        names = [b["events"][0]["name"] for b in mine]
        assert names == ["MailboxCreate"] + ["MessageNew"] * 5
        assert [b["events"][0]["subject"] for b in mine[1:]] == wanted
        assert len({b["id"] for b in mine}) == 6


async def test_failing_driver_never_delays_lmtp_and_dead_letters_replay(
    endpoint: HttpReceiver, make_server: Callable[..., object], tmp_path: Path
) -> None:
    endpoint.status = 500
    server = await make_server(  # type: ignore[operator]
        webhook_config(endpoint.url, "mailpush_push_max_age = 1s\n")
    )
    latencies = [await asyncio.to_thread(deliver, server, "alice", f"m{n}") for n in range(5)]
    assert max(latencies) < 0.5
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 5

    async def dead_count() -> int:
        return len(await server.store.outbox.dead_letters())

    deadline = time.monotonic() + 20
    while await dead_count() < 6:
        assert time.monotonic() < deadline, "transactions did not become dead letters"
        await asyncio.sleep(0.2)

    config = tmp_path / "mailpush.conf"
    listed = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "mailpush.cli", "queue", "dead", "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 6
    assert "answered 500" in listed.stdout

    endpoint.status = 200
    replayed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "mailpush.cli", "queue", "replay", "--all", "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert replayed.returncode == 0, replayed.stderr
    received = await endpoint.wait_for(6, timeout=15)
    subjects = [r.json()["events"][0].get("subject") for r in received]
    assert subjects == [None, "m0", "m1", "m2", "m3", "m4"]
    assert await dead_count() == 0


async def test_metrics_endpoint_counts_events_and_transactions(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    extra = "mailpush_metrics_listen = 127.0.0.1:0\n"
    server = await make_server(webhook_config(endpoint.url, extra))  # type: ignore[operator]
    await asyncio.to_thread(deliver, server, "alice", "counted")
    await endpoint.wait_for(2)
    port = next(item.port for item in server.listeners if item.service == "metrics")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain")
            return str(reply.read().decode())

    for _ in range(50):  # the success counter is bumped just after the endpoint answers
        text = await asyncio.to_thread(scrape)
        if 'outcome="delivered"} 2.0' in text:
            break
        await asyncio.sleep(0.05)
    assert 'mailpush_push_events_total{event="MessageNew"} 1.0' in text
    assert 'mailpush_push_events_total{event="MailboxCreate"} 1.0' in text
    assert 'mailpush_push_transactions_total{driver="webhook",outcome="delivered"} 2.0' in text
    assert "mailpush_push_delivery_latency_seconds_count" in text
    assert 'mailpush_push_queue_depth{driver="webhook"}' in text
