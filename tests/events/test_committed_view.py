"""What a push script reads is what its transaction committed, and long ones lose nothing.

Under Dovecot the script runs inside the storage operation, so
`mailbox:status()` in a handler sees the mailbox as that transaction left it:
four quick deliveries report messages = 1, 2, 3, 4. mailpush runs the script
later, from the outbox; the status travels with the transaction instead.

And a transaction whose time goes into waiting for its endpoint is not cut:
the simple example script of Dovecot's Lua push documentation
(docs/dovecot-reference.md#http-requests-of-the-example-scripts) sends one
POST per message from `end_txn`, so a
150-message COPY to an endpoint answering in 200 ms spends 30 s in I/O and
must still send all 150.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import pytest

from mailpush.server import MailpushServer
from mailpush.store import NewMessage
from tests.support.http_receiver import HttpReceiver

from ..conftest import lmtp_port
from ..drivers.lua.conftest import FIXTURES, imap_port, lua_server_config


@pytest.fixture
async def endpoint() -> AsyncIterator[HttpReceiver]:
    ep = HttpReceiver()
    await ep.start()
    yield ep
    await ep.stop()


def _deliver(server: MailpushServer, subject: str) -> None:
    raw = f"From: s@example.net\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\nhi\r\n"
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as lmtp:
        lmtp.sendmail("s@example.net", ["alice"], raw.encode())


async def test_status_in_a_handler_is_the_mailbox_as_its_transaction_committed_it(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    # A slow endpoint: the four deliveries commit long before their pushes run.
    endpoint.delay = 0.15
    server = await make_server(  # type: ignore[operator]
        lua_server_config(FIXTURES / "events_http.lua", endpoint.url)
    )
    assert isinstance(server, MailpushServer)
    for number in range(4):
        await asyncio.to_thread(_deliver, server, f"burst {number}")

    received = await endpoint.wait_for(8, timeout=20)

    statuses = [
        parse_qs(request.body.decode())
        for request in received
        if b"messages=" in request.body
    ]
    assert [status["messages"] for status in statuses] == [["1"], ["2"], ["3"], ["4"]]
    assert [status["unseen"] for status in statuses] == [["1"], ["2"], ["3"], ["4"]]


async def test_slow_a_150_message_copy_to_a_200ms_endpoint_sends_150_posts(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    """SLOW (about 30 s, by design): 150 requests of 200 ms each, one after another."""
    server = await make_server(  # type: ignore[operator]
        lua_server_config(FIXTURES / "simple_http.lua", endpoint.url)
    )
    assert isinstance(server, MailpushServer) and server.store is not None
    await server.store.create_mailbox("alice", "Work")
    await server.store.append("alice", "Work", [
        NewMessage(f"Subject: m{number}\r\n\r\nbody\r\n".encode()) for number in range(150)
    ])
    await endpoint.wait_for(150)  # the APPEND's own pushes, answered at once
    endpoint.received.clear()
    endpoint.delay = 0.2

    def copy() -> None:
        with imaplib.IMAP4("127.0.0.1", imap_port(server)) as client:
            client.login("alice", "secret")
            client.select("Work")
            typ, data = client.copy("1:150", "INBOX")
            assert typ == "OK", data
            client.logout()

    await asyncio.to_thread(copy)
    received = await endpoint.wait_for(150, timeout=90)
    await asyncio.sleep(0.5)

    assert len(endpoint.received) == 150
    subjects = sorted(parse_qs(r.body.decode())["subject"][0] for r in received)
    assert subjects == sorted(f"m{number}" for number in range(150))
