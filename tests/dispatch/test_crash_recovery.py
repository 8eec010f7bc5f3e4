"""Nothing lost: push transactions pending at a SIGKILL are delivered after restart."""

from __future__ import annotations

import asyncio
import smtplib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import free_port, write_config
from tests.support.http_receiver import HttpReceiver
from tests.support.store_backends import StoreBackend
from tests.test_server import start_serve, wait_for_port

PENDING = 2000


def deliver_many(port: int, user: str, count: int) -> None:
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo("test")
        for n in range(count):
            client.mail("s@example.net")
            client.rcpt(user)
            code, _ = client.data(f"Subject: {user} {n}\r\n\r\nbody\r\n".encode())
            assert code == 250


async def test_sigkill_with_2000_pending_transactions_loses_none(
    tmp_path: Path, store_backend: StoreBackend
) -> None:
    endpoint = HttpReceiver(status=503)
    await endpoint.start()
    port = free_port()
    config = write_config(
        tmp_path,
        store_backend.config()
        + f"plugin {{\n  push_notification_driver = webhook:url={endpoint.url} ordered=yes\n}}\n"
        "mailpush_push_retry_initial = 50ms\nmailpush_push_retry_max_interval = 500ms\n",
        lmtp_port=port,
    )
    log = tmp_path / "serve.log"
    try:
        proc = start_serve(config, log)
        try:
            await asyncio.to_thread(wait_for_port, port, proc, log)
            users = ["alice", "bob", "carol", "alice"]
            with ThreadPoolExecutor(4) as pool:
                futures = [
                    asyncio.wrap_future(pool.submit(deliver_many, port, u, PENDING // 4))
                    for u in users
                ]
                await asyncio.gather(*futures)
        finally:
            proc.kill()
            proc.wait()
        store = store_backend.open_store()
        try:
            records = await store.outbox.records_after(0, limit=2 * PENDING)
        finally:
            await asyncio.to_thread(store.close)
        committed = {record.txn_id for record in records}
        assert len(committed) == PENDING + 3  # + one MailboxCreate (INBOX) per user
        assert endpoint.received == []

        endpoint.status = 200
        proc = start_serve(config, log)
        try:
            await asyncio.to_thread(wait_for_port, port, proc, log)
            await endpoint.wait_for(len(committed), timeout=120)
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)
        arrived = [r.headers["webhook-id"] for r in endpoint.received]
        # At least once: every committed transaction arrived; a duplicate keeps its id.
        assert set(arrived) == committed
        for user in ("alice", "bob", "carol"):
            subjects = [
                r.json()["events"][0].get("subject")
                for r in endpoint.received
                if r.json()["user"] == user and r.json()["events"][0]["name"] == "MessageNew"
            ]
            numbers = [int(s.split()[1]) for s in subjects]
            # Per-user commit order (alice had two connections: each keeps its own order).
            if user != "alice":
                assert numbers == sorted(numbers)
    finally:
        await endpoint.stop()
