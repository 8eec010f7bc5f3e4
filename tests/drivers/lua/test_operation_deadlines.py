"""lua_txn_timeout in an operation group: each transaction's time starts with its events.

A MOVE (like Sieve filing into two folders) begins both its transactions
first, then runs the destination's events and end_txn, then the source's
(docs/dovecot-reference.md#call-order-of-interleaved-transactions). The
source's lua_txn_timeout must not run out
while the destination's handlers wait for their endpoint: its time starts
when its own events do.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import imap_port, lua_server_config, until

POST_PER_EVENT = """\
local client = nil
function script_init() client = dovecot.http.client({timeout=10000}) end
function dovecot_lua_notify_begin_txn(user)
  return {ep=user:plugin_getenv("push_lua_url")}
end
local function post(ctx, event)
  local request = client:request({url=ctx.ep, method="POST"})
  request:set_payload(event.mailbox .. " " .. event.uid)
  request:submit()
  dovecot.i_info("posted " .. event.mailbox)
end
dovecot_lua_notify_event_message_append = post
dovecot_lua_notify_event_message_expunge = post
function dovecot_lua_notify_end_txn(ctx) end
"""


async def test_the_second_transaction_of_a_move_gets_its_whole_lua_txn_timeout(
    make_server: Callable[..., object],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    endpoint = HttpReceiver()
    await endpoint.start()
    try:
        script = tmp_path / "per_event.lua"
        script.write_text(POST_PER_EVENT)
        config = lua_server_config(f"{script} lua_txn_timeout=500ms", endpoint.url)
        server = await make_server(config)  # type: ignore[operator]
        assert isinstance(server, MailpushServer)
        client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port(server))
        try:
            await asyncio.to_thread(client.login, "alice", "secret")
            await asyncio.to_thread(client.create, "Work")
            await asyncio.to_thread(client.append, "INBOX", None, None, b"Subject: x\r\n\r\nx\r\n")
            await until(lambda: "lua: alice: posted INBOX" in caplog.messages)
            await asyncio.to_thread(client.select, "INBOX")
            # Each POST is answered in 0.35 s: the two of the MOVE take 0.7 s in all, more
            # than one lua_txn_timeout, but each fits in its transaction's own 0.5 s.
            endpoint.delay = 0.35
            assert (await asyncio.to_thread(client.uid, "MOVE", "1", "Work"))[0] == "OK"
        finally:
            await asyncio.to_thread(client.logout)
        await until(lambda: caplog.messages.count("lua: alice: posted INBOX") == 2
                    or any("lua_txn_timeout" in m for m in caplog.messages))
    finally:
        await endpoint.stop()
    assert not [m for m in caplog.messages if "lua_txn_timeout" in m]
    assert caplog.messages.count("lua: alice: posted INBOX") == 2
    assert [r.body for r in endpoint.received][1:] == [b"Work 1", b"INBOX 1"]
