"""`http_resend = yes`: a script's failed requests are journaled and sent again.

The simple example script of Dovecot's Lua push documentation
(docs/dovecot-reference.md#http-requests-of-the-example-scripts), unchanged,
posts one form per message and only logs a failure: under Dovecot (and
mailpush without the option) every push made while the endpoint is down is
lost. With the option, each failed request is kept in the outbox and sent
again until the endpoint takes it.
"""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mailpush.server import MailpushServer
from tests.conftest import free_port, lmtp_port
from tests.support.http_receiver import HttpReceiver

from .conftest import FIXTURES, lua_server_config, until

PUSHES = 20
FAST_RETRIES = "mailpush_push_retry_initial = 100ms\nmailpush_push_retry_max_interval = 200ms\n"


def deliver_many(server: MailpushServer, count: int, prefix: str) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        for n in range(count):
            client.mail("s@example.net")
            client.rcpt("alice")
            code, _ = client.data(f"Subject: {prefix}{n}\r\n\r\nbody\r\n".encode())
            assert code == 250


async def start(make_server: Callable[..., object], url: str, options: str) -> MailpushServer:
    script = f"{FIXTURES / 'simple_http.lua'} {options}".strip()
    config = lua_server_config(script, url, FAST_RETRIES, imap=False)
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


def subjects(endpoint: HttpReceiver) -> list[str]:
    found = []
    for request in endpoint.received:
        fields = dict(pair.split("=", 1) for pair in request.body.decode().split("&"))
        found.append(fields["subject"])
    return found


async def test_with_http_resend_every_push_made_during_an_outage_arrives(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    endpoint.status = 503
    server = await start(make_server, endpoint.url, "http_resend=yes")
    await asyncio.to_thread(deliver_many, server, PUSHES, "down")
    await until(lambda: endpoint.refused >= PUSHES)
    await asyncio.sleep(1.0)  # the first resends meet the outage too
    endpoint.status = 200
    await asyncio.to_thread(deliver_many, server, 1, "up")
    await endpoint.wait_for(PUSHES + 1, timeout=15)
    await asyncio.sleep(0.5)
    assert sorted(subjects(endpoint)) == sorted(
        [f"down{n}" for n in range(PUSHES)] + ["up0"]
    )
    assert server.store is not None
    assert await server.store.outbox.dead_letters() == []


async def test_with_http_resend_pushes_made_while_connections_were_refused_arrive(
    make_server: Callable[..., object],
) -> None:
    endpoint = HttpReceiver(port=free_port())  # nothing listens there yet: 9003
    server = await start(make_server, endpoint.url, "http_resend=yes")
    await asyncio.to_thread(deliver_many, server, 3, "refused")
    assert server.store is not None
    store = server.store

    async def journaled() -> int:
        # Journaled with the script's attempt counted: they show as retrying.
        return sum(row.retrying for row in await store.outbox.stats(0))

    async with asyncio.timeout(10):
        while await journaled() < 3:
            await asyncio.sleep(0.05)
    await endpoint.start()
    try:
        await endpoint.until(lambda: len(endpoint.accepted) == 3)
    finally:
        await endpoint.stop()
    assert sorted(body.split(b"&")[2] for body in endpoint.accepted) == [
        b"subject=refused0", b"subject=refused1", b"subject=refused2"
    ]


async def test_without_http_resend_pushes_made_during_an_outage_are_lost_as_in_dovecot(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    endpoint.status = 503
    server = await start(make_server, endpoint.url, "")
    await asyncio.to_thread(deliver_many, server, PUSHES, "down")
    await until(lambda: endpoint.refused >= PUSHES)
    endpoint.status = 200
    await asyncio.to_thread(deliver_many, server, 1, "up")
    await endpoint.wait_for(1)
    await asyncio.sleep(2.0)  # longer than a resend would take
    assert subjects(endpoint) == ["up0"]
    assert endpoint.refused == PUSHES


async def test_a_journaled_request_that_keeps_failing_is_a_dead_letter_queue_replays(
    endpoint: HttpReceiver, make_server: Callable[..., object], tmp_path: Path
) -> None:
    endpoint.status = 500
    server = await start(make_server, endpoint.url, "http_resend=yes delivery_attempts=2")
    await asyncio.to_thread(deliver_many, server, 1, "lost")
    assert server.store is not None
    store = server.store

    async def dead() -> bool:
        return bool(await store.outbox.dead_letters())

    async with asyncio.timeout(10):
        while not await dead():
            await asyncio.sleep(0.05)
    assert endpoint.refused == 2  # the script's request and one resend

    config = tmp_path / "mailpush.conf"

    def mailpush(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailpush.cli", *args, "-c", str(config)],
                              capture_output=True, text=True, timeout=60)

    listed = await asyncio.to_thread(mailpush, "queue", "dead")
    (line,) = listed.stdout.splitlines()
    assert "\tlua\talice\t" in line
    assert f"POST {endpoint.url} answered 500" in line
    endpoint.status = 200
    replayed = await asyncio.to_thread(mailpush, "queue", "replay", line.split("\t")[0])
    assert replayed.returncode == 0, replayed.stderr
    await endpoint.wait_for(1)
    assert subjects(endpoint) == ["lost0"]


SOCKET_HTTP_SCRIPT = """\
local http = require "socket.http"
function script_init() return 0 end
function dovecot_lua_notify_begin_txn(user)
  return { url = user:plugin_getenv("push_lua_url") }
end
function dovecot_lua_notify_event_message_new(ctx, event)
  local body, code = http.request(ctx.url, "subject=" .. event.subject)
  dovecot.i_info("socket.http answered " .. tostring(code))
end
function dovecot_lua_notify_end_txn(ctx, success) end
"""


async def test_with_http_resend_failed_socket_http_requests_are_sent_again_too(
    endpoint: HttpReceiver, make_server: Callable[..., object], tmp_path: Path
) -> None:
    script = tmp_path / "socket_http.lua"
    script.write_text(SOCKET_HTTP_SCRIPT)
    endpoint.status = 503
    config = lua_server_config(f"{script} http_resend=yes", endpoint.url, FAST_RETRIES,
                               imap=False)
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver_many, server, 3, "luasocket")
    await until(lambda: endpoint.refused >= 3)
    endpoint.status = 200
    await endpoint.wait_for(3, timeout=15)
    assert sorted(subjects(endpoint)) == ["luasocket0", "luasocket1", "luasocket2"]
