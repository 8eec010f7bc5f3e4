"""`/metrics` beside the push metrics: LMTP, IMAP, authentication and the store, from real
traffic; `/healthz` and `/readyz`; and the Grafana dashboard asks only for metrics that exist.

Every scrape is parsed with prometheus-client's own text parser, as Prometheus would.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import re
import smtplib
import sqlite3
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mailpush.config import load_settings
from mailpush.server import MailpushServer

from .conftest import free_port, imap_listener, lmtp_port, write_config
from .support.http_receiver import HttpReceiver

DASHBOARD = Path(__file__).resolve().parents[1] / "contrib" / "grafana" / "mailpush.json"
MESSAGE = b"From: a@example.net\r\nSubject: counted\r\n\r\n" + b"x" * 1000 + b"\r\n"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[MailpushServer]:
    receiver = HttpReceiver()
    await receiver.start()
    extra = (
        imap_listener(free_port())
        + "protocols = lmtp imap\nauth_failure_delay = 0\n"
        + "mailpush_metrics_listen = 127.0.0.1:0\n"
        + "mail_plugins = $mail_plugins notify push_notification\n"
        + f"plugin {{\n  push_notification_driver = webhook:url={receiver.url}\n}}\n"
    )
    running = MailpushServer(load_settings(write_config(tmp_path, extra)).settings)
    await running.start()
    yield running
    await running.stop()
    await receiver.stop()


def port_of(server: MailpushServer, service: str) -> int:
    return next(item.port for item in server.listeners if item.service == service)


def get(server: MailpushServer, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{port_of(server, 'metrics')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def scrape(server: MailpushServer) -> dict[str, list[Sample]]:
    """Samples by family name (counters without `_total`), parsed as Prometheus parses."""
    status, text = await asyncio.to_thread(get, server, "/metrics")
    assert status == 200
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    family = re.sub(r"_(total|count|sum|bucket)$", "", sample)
    found = [s.value for s in families[family] if s.name == sample and s.labels == labels]
    assert len(found) == 1, (sample, labels, families[family])
    return found[0]


def lmtp_traffic(server: MailpushServer) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        for rcpt in ("alice", "bob"):
            client.mail("a@example.net")
            client.rcpt(rcpt)
            assert client.data(MESSAGE)[0] == 250
        client.mail("a@example.net")
        assert client.rcpt("nobody")[0] == 550


def imap_traffic(server: MailpushServer) -> None:
    client = imaplib.IMAP4("127.0.0.1", port_of(server, "imap"))
    with pytest.raises(imaplib.IMAP4.error):
        client.login("alice", "wrong")
    client.login("alice", "secret")
    client.select("INBOX")
    client.fetch("1:*", "(FLAGS)")
    client.noop()
    client.logout()


async def test_metrics_reflect_lmtp_imap_auth_and_store_traffic(server: MailpushServer) -> None:
    before = await scrape(server)
    assert value(before, "mailpush_imap_connections_current") == 0
    await asyncio.to_thread(lmtp_traffic, server)
    await asyncio.to_thread(imap_traffic, server)
    async with asyncio.timeout(5):  # the connection's task ends just after LOGOUT's answer
        while server.sessions():
            await asyncio.sleep(0.01)
    m = await scrape(server)
    # LMTP: 2 messages saved; one unknown recipient refused.
    assert value(m, "mailpush_lmtp_deliveries_total", outcome="saved") == 2
    assert value(m, "mailpush_lmtp_received_bytes_total") == 2 * len(MESSAGE)
    assert value(m, "mailpush_lmtp_delivery_duration_seconds_count") == 2
    assert value(m, "mailpush_lmtp_replies_total", **{"class": "5xx"}) == 1
    # greeting, LHLO, 2 x (MAIL, RCPT, 354 is 3xx, the reply), MAIL; QUIT's 221 too
    assert value(m, "mailpush_lmtp_replies_total", **{"class": "2xx"}) >= 2 + 2 * 3 + 1
    assert value(m, "mailpush_lmtp_replies_total", **{"class": "3xx"}) == 2
    assert value(m, "mailpush_lmtp_connections_total") == 1
    # IMAP: one connection, its commands by name, the failed and the good login.
    assert value(m, "mailpush_imap_connections_total") == 1
    assert value(m, "mailpush_imap_connections_current") == 0
    for command in ("LOGIN", "SELECT", "FETCH", "NOOP", "LOGOUT"):
        expected = 2 if command == "LOGIN" else 1
        assert value(m, "mailpush_imap_commands_total", command=command) == expected
        assert value(
            m, "mailpush_imap_command_duration_seconds_count", command=command
        ) == expected
    assert value(m, "mailpush_auth_successes_total", mechanism="PLAIN") == 1
    assert value(m, "mailpush_auth_failures_total", mechanism="PLAIN") == 1
    # The store committed the deliveries (and more: INBOX creation, outbox rows).
    assert value(m, "mailpush_store_commit_batch_size_sum") >= 2
    assert value(m, "mailpush_store_commit_duration_seconds_count") >= 1
    # The push metrics are on the same page.
    assert value(m, "mailpush_push_events_total", event="MessageNew") == 2


async def test_a_made_up_command_name_adds_no_series(server: MailpushServer) -> None:
    def send() -> None:
        client = imaplib.IMAP4("127.0.0.1", port_of(server, "imap"))
        client.login("alice", "secret")
        imaplib.Commands["XMADEUP1"] = ("AUTH",)  # let imaplib send it
        try:
            with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):
                client._simple_command("XMADEUP1")
        finally:
            del imaplib.Commands["XMADEUP1"]
        client.logout()

    await asyncio.to_thread(send)
    m = await scrape(server)
    names = {s.labels.get("command") for s in m["mailpush_imap_commands"]}
    assert "XMADEUP1" not in names and "LOGIN" in names


async def test_healthz_answers_while_the_process_runs(server: MailpushServer) -> None:
    assert await asyncio.to_thread(get, server, "/healthz") == (200, "ok\n")


async def test_readyz_is_ready_with_listeners_store_and_dispatcher(server: MailpushServer) -> None:
    assert await asyncio.to_thread(get, server, "/readyz") == (200, "ready\n")


async def test_readyz_is_503_naming_the_store_while_another_process_holds_its_write_lock(
    server: MailpushServer,
) -> None:
    assert server.store is not None
    # The server itself writes now and then (the dispatcher's claims), so wait
    # for our turn at the lock rather than failing on a momentary busy store.
    holder = sqlite3.connect(server.store.path, timeout=10)
    try:
        holder.execute("BEGIN IMMEDIATE")
        status, text = await asyncio.to_thread(get, server, "/readyz")
    finally:
        holder.rollback()
        holder.close()
    assert status == 503
    assert text == "store: no write lock within 2s\n"
    assert await asyncio.to_thread(get, server, "/readyz") == (200, "ready\n")


async def test_readyz_is_503_when_the_dispatcher_has_stopped(server: MailpushServer) -> None:
    assert server.dispatcher is not None
    await server.dispatcher.stop(1)
    status, text = await asyncio.to_thread(get, server, "/readyz")
    assert (status, text) == (503, "push: the dispatcher is not running\n")


async def test_the_grafana_dashboard_queries_only_metrics_the_server_exports(
    server: MailpushServer,
) -> None:
    await asyncio.to_thread(lmtp_traffic, server)
    families = await scrape(server)
    exported = {family: {s.name for s in samples} for family, samples in families.items()}
    dashboard = json.loads(DASHBOARD.read_text())
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queried.update(re.findall(r"\bmailpush_[a-z_]+", target["expr"]))
    assert len(queried) >= 20
    for name in sorted(queried):
        family = re.sub(r"_(total|count|sum|bucket)$", "", name)
        assert family in exported, f"{name}: no such metric family in /metrics"
        # A family without labels shows its samples at once; a labelled one only once used.
        if exported[family]:
            kinds = {re.sub(r"\{.*", "", sample) for sample in exported[family]}
            assert name in kinds, f"{name}: /metrics has {sorted(kinds)}"
