"""No crash loops: a push whose sending kills the server is run twice, then kept aside.

The endpoint here kills the real `mailpush serve` process (SIGKILL) while it
sends a "poison" notification, as a response that aborts the process would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

from mailpush.store import MailboxCreated, OutboxEntry
from tests.conftest import free_port, write_config
from tests.support.http_receiver import HttpReceiver
from tests.support.store_backends import StoreBackend
from tests.test_server import start_serve, wait_for_port

POISON = b"poison"


def deliver(port: int, user: str, subject: str) -> None:
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo("test")
        client.mail("s@example.net")
        client.rcpt(user)
        code, _ = client.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        assert code == 250


def mailpush(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpush.cli", *args, "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )


async def test_a_delivery_in_flight_at_two_deaths_is_a_dead_letter_not_run_again(
    tmp_path: Path, store_backend: StoreBackend
) -> None:
    server: list[subprocess.Popen[bytes]] = []
    kills = True

    async def answer(request: web.Request, body: bytes) -> web.StreamResponse:
        if POISON in body and kills:
            # Let the other requests of the moment finish first: only the poison
            # is in flight when the process dies.
            await asyncio.sleep(0.3)
            os.kill(server[-1].pid, signal.SIGKILL)
        return web.json_response({"success": True})

    endpoint = HttpReceiver(answer)
    await endpoint.start()
    port = free_port()
    config = write_config(
        tmp_path,
        store_backend.config()
        + f"plugin {{\n  push_notification_driver = webhook:url={endpoint.url}\n}}\n"
        "mailpush_push_retry_initial = 50ms\n"
        # The process that dies is the one sending: one process. (With workers, worker 0
        # dies and its supervisor restarts it: tests/test_workers.py.)
        "mailpush_workers = 1\n",
        lmtp_port=port,
    )
    log = tmp_path / "serve.log"
    try:
        for run in (1, 2):
            server.append(start_serve(config, log))
            await asyncio.to_thread(wait_for_port, port, server[-1], log)
            if run == 1:
                await asyncio.to_thread(deliver, port, "alice", "poison")
            # Killed by the endpoint while sending the poison (again, after the restart).
            assert await asyncio.to_thread(server[-1].wait, 15) == -signal.SIGKILL
            assert len(endpoint.arrived_with(POISON)) == run

        server.append(start_serve(config, log))
        await asyncio.to_thread(wait_for_port, port, server[-1], log)
        await asyncio.to_thread(deliver, port, "alice", "later mail")
        await endpoint.until(lambda: bool(endpoint.accepted_with(b"later mail")))
        await asyncio.sleep(0.3)
        assert server[-1].poll() is None
        assert len(endpoint.arrived_with(POISON)) == 2

        listed = await asyncio.to_thread(mailpush, config, "queue", "dead")
        assert listed.returncode == 0, listed.stderr
        (line,) = listed.stdout.splitlines()
        assert "in flight when the process died 2 times; possibly crashes the server" in line
        assert "\twebhook\talice\t" in line

        kills = False
        outbox_id = line.split("\t")[0]
        replayed = await asyncio.to_thread(mailpush, config, "queue", "replay", outbox_id)
        assert replayed.returncode == 0, replayed.stderr
        await endpoint.until(lambda: bool(endpoint.accepted_with(POISON)))
        assert "possibly crashes the server" in log.read_text()
    finally:
        if server and server[-1].poll() is None:
            server[-1].terminate()
            await asyncio.to_thread(server[-1].wait, 30)
        await endpoint.stop()


async def test_only_the_delivery_running_at_each_death_is_counted_not_those_waiting(
    store_backend: StoreBackend,
) -> None:
    store = store_backend.open_store()
    try:
        # One user's transactions, claimed together by an ordered driver.
        store.set_recorder(
            lambda changes, status: [OutboxEntry(c.user, b"{}", ("lua",), f"txn-{c.mailbox}")
                                     for c in changes if isinstance(c, MailboxCreated)]
        )
        for n in (1, 2, 3):
            await store.create_mailbox("alice", str(n))
    finally:
        await asyncio.to_thread(store.close)
    for _death in (1, 2):
        store = store_backend.open_store()
        try:
            recovery = await store.outbox.reset_inflight()
            assert recovery.buried == ()
            claims = await store.outbox.claim_due(time.time(), 10)
            assert [c.txn_id for c in claims] == ["txn-1", "txn-2", "txn-3"]
            await store.outbox.mark_started(claims[:1])
        finally:
            await asyncio.to_thread(store.close)  # then "dies" with all three claimed
    store = store_backend.open_store()
    try:
        recovery = await store.outbox.reset_inflight()
        assert [letter.txn_id for letter in recovery.buried] == ["txn-1"]
        assert "died 2 times" in (recovery.buried[0].last_error or "")
        claims = await store.outbox.claim_due(time.time(), 10)
        assert [c.txn_id for c in claims] == ["txn-2", "txn-3"]
    finally:
        await asyncio.to_thread(store.close)
