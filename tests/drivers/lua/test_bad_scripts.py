"""Bad scripts: each failure is logged clearly, the mail is delivered, other users' and
other drivers' notifications go out as usual."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.errors import LuaScriptError
from mailpush.server import MailpushServer
from tests.conftest import free_port
from tests.support.http_receiver import HttpReceiver

from .conftest import FIXTURES, deliver, imap_port, lua_server_config, until

MISBEHAVING = FIXTURES / "misbehaving.lua"


@pytest.fixture
async def webhook() -> AsyncIterator[HttpReceiver]:
    ep = HttpReceiver()
    await ep.start()
    yield ep
    await ep.stop()


def message(subject: str) -> bytes:
    return f"From: s@example.net\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


async def start(
    make_server: Callable[..., object], lua_url: str, webhook_url: str, options: str = ""
) -> MailpushServer:
    extra = (
        "plugin {\n"
        f"  push_notification_driver2 = webhook:url={webhook_url} events=MessageNew\n"
        "}\n"
    )
    config = lua_server_config(f"{MISBEHAVING} {options}".strip(), lua_url, extra, imap=False)
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and r.name.startswith("mailpush.drivers.lua.")]


@pytest.mark.parametrize(
    ("subject", "options", "line", "reason"),
    [
        ("boom", "", 17, "attempt to index a nil value (local 'missing')"),
        ("loop", "", 19, "more than 10000000 Lua instructions in one call (lua_max_instructions)"),
        ("loop", "lua_max_instructions=0 lua_call_timeout=300ms", 19,
         "the call took longer than 0.3s (lua_call_timeout)"),
        ("bomb", "lua_max_memory=16M", None, "not enough memory"),
    ],
)
async def test_a_failing_handler_costs_only_that_users_notification(
    make_server: Callable[..., object],
    endpoint: HttpReceiver,
    webhook: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
    subject: str,
    options: str,
    line: int | None,
    reason: str,
) -> None:
    server = await start(make_server, endpoint.url, webhook.url, options)
    # Bob first: while alice's script loops, the whole event loop waits (the limits stop
    # it, they cannot pause it), and a call of bob's waiting meanwhile could time out too.
    await asyncio.to_thread(deliver, server, ["bob"], message(subject))
    (bob,) = await endpoint.wait_for(1)
    await asyncio.to_thread(deliver, server, ["alice"], message(subject))

    assert bob.body == f"user=bob&subject={subject}".encode()
    hooked = await webhook.wait_for(2)
    assert sorted(r.json()["user"] for r in hooked) == ["alice", "bob"]
    await until(lambda: bool(errors(caplog)))
    (failure,) = errors(caplog)
    assert failure.startswith("lua: alice: dovecot_lua_notify_event_message_new(ctx, event[")
    assert reason in failure
    if line is not None:
        assert f"{MISBEHAVING}:{line}:" in failure
        assert "stack traceback:" in failure
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 1

    # The state is still usable (or replaced, after running out of memory).
    await asyncio.to_thread(deliver, server, ["alice"], message("fine"))
    await endpoint.wait_for(2)
    assert endpoint.received[1].body == b"user=alice&subject=fine"


async def test_submit_to_a_closed_port_is_reported_by_the_script_and_mail_is_delivered(
    make_server: Callable[..., object],
    webhook: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    extra = (
        "plugin {\n"
        f"  push_notification_driver2 = webhook:url={webhook.url} events=MessageNew\n"
        "}\n"
    )
    config = lua_server_config(
        FIXTURES / "simple_http.lua", f"http://127.0.0.1:{port}/push", extra, imap=False
    )
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["alice"], message("hello"))
    await webhook.wait_for(1)
    wanted = (
        f"lua: alice: lua-push: Remote error connect(127.0.0.1:{port}) failed:"
        " Connection refused handling push notification"
    )
    await until(lambda: wanted in errors(caplog))
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 1


async def test_a_syntax_error_stops_start_up_naming_file_and_line(
    make_server: Callable[..., object], tmp_path: Path
) -> None:
    script = tmp_path / "broken.lua"
    script.write_text(
        "function dovecot_lua_notify_begin_txn(user)\n"
        "  return {}\n"
        "end\n"
        "function dovecot_lua_notify_event_message_new(ctx, event\n"
        "  x = 1\n"
        "end\n"
    )
    with pytest.raises(LuaScriptError) as raised:
        await make_server(lua_server_config(script, "http://127.0.0.1:9/", imap=False))  # type: ignore[operator]
    assert raised.value.file == str(script)
    assert raised.value.line == 5
    assert str(raised.value).startswith(f"Lua script {script}:5: ")


async def test_a_missing_script_stops_start_up_naming_the_setting(
    make_server: Callable[..., object], tmp_path: Path
) -> None:
    from mailpush.errors import SettingError

    with pytest.raises(SettingError, match=r"lua file: cannot read the Lua script .*nope\.lua"):
        await make_server(  # type: ignore[operator]
            lua_server_config(tmp_path / "nope.lua", "http://127.0.0.1:9/", imap=False)
        )


async def undone(server: MailpushServer) -> tuple[int, int]:
    """The lua driver's transactions still to deliver (or retry), and dead letters."""
    assert server.store is not None
    (stats,) = [s for s in await server.store.outbox.stats(time.time()) if s.driver == "lua"]
    return stats.retrying + stats.pending + stats.inflight, stats.dead


HEADER_FROM_SUBJECT = """\
local client = dovecot.http.client({})
function dovecot_lua_notify_begin_txn(user)
  return {ep = user:plugin_getenv("push_lua_url")}
end
function dovecot_lua_notify_event_message_new(ctx, event)
  ctx.mail = true
  local request = client:request({url = ctx.ep, method = "POST"})
  request:add_header("X-Subject", event.subject)
  request:submit()
end
function dovecot_lua_notify_end_txn(ctx)
  if not ctx.mail then return end  -- e.g. the INBOX being created
  local request = client:request({url = ctx.ep, method = "POST"})
  request:set_payload("end_txn")
  request:submit()
end
"""


async def test_a_header_value_with_cr_lf_from_a_decoded_subject_is_a_lua_error_not_a_retry(
    make_server: Callable[..., object],
    endpoint: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    script = tmp_path / "header.lua"
    script.write_text(HEADER_FROM_SUBJECT)
    config = lua_server_config(
        script, endpoint.url, "mailpush_push_retry_initial = 100ms\n", imap=False
    )
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    crafted = b"From: a@example.net\r\nSubject: =?UTF-8?Q?hi=0D=0AX-Evil:_1?=\r\n\r\nbody\r\n"
    await asyncio.to_thread(deliver, server, ["alice"], crafted)

    await until(lambda: bool(errors(caplog)))
    (failure,) = errors(caplog)
    assert f"{script}:8: add_header: the value of header 'X-Subject' contains CR, LF" in failure
    (request,) = await endpoint.wait_for(1)
    assert request.body == b"end_txn"
    await asyncio.sleep(0.5)  # a retry would come after 100 ms
    assert len(endpoint.received) == 1
    assert await undone(server) == (0, 0)


async def test_an_exception_while_sending_is_a_lua_error_the_script_can_catch(
    make_server: Callable[..., object],
    endpoint: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """aiohttp refuses some requests with ValueError; that must not reach the dispatcher."""
    script = tmp_path / "length.lua"
    script.write_text(HEADER_FROM_SUBJECT.replace(
        'request:add_header("X-Subject", event.subject)\n  request:submit()',
        'request:add_header("Content-Length", "many") request:set_payload("x")\n'
        '  local ok, problem = pcall(request.submit, request)\n'
        '  dovecot.i_warning("caught: " .. problem)\n'
        '  request:submit()',
    ))
    config = lua_server_config(
        script, endpoint.url, "mailpush_push_retry_initial = 100ms\n", imap=False
    )
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["alice"], message("length"))

    await until(lambda: bool(errors(caplog)))
    caught = next(m for m in caplog.messages if "caught" in m)
    assert caught == (
        "lua: alice: caught: submit() failed: ValueError: Invalid Content-Length header: 'many'"
    )
    (failure,) = errors(caplog)
    assert f"{script}:11: submit() failed: ValueError: " in failure
    await endpoint.wait_for(1)
    await asyncio.sleep(0.5)
    assert [r.body for r in endpoint.received] == [b"end_txn"]
    assert await undone(server) == (0, 0)


POST_PER_EVENT = """\
local client = dovecot.http.client({})
function dovecot_lua_notify_begin_txn(user)
  return {ep = user:plugin_getenv("push_lua_url")}
end
local function post(ctx, event)
  ctx.mail = true
  local request = client:request({url = ctx.ep, method = "POST"})
  request:set_payload("uid=" .. event.uid)
  request:submit()
end
dovecot_lua_notify_event_message_new = post
dovecot_lua_notify_event_message_append = post
function dovecot_lua_notify_end_txn(ctx)
  if ctx.mail then dovecot.i_info("end_txn") end
end
"""


async def test_a_transaction_longer_than_lua_txn_timeout_is_cut_short_not_sent_twice(
    make_server: Callable[..., object],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """Five POSTs of 0.6 s each would outlast mailpush_push_timeout (0.6 s per event, 3 s
    for five): the dispatcher would cancel the transaction and run it again from begin_txn,
    posting everything twice. lua_txn_timeout (0.3 s per event, 1.5 s) cuts it first."""
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    endpoint = HttpReceiver()
    await endpoint.start()
    try:
        script = tmp_path / "per_event.lua"
        script.write_text(POST_PER_EVENT)
        config = lua_server_config(
            f"{script} lua_txn_timeout=300ms", endpoint.url,
            "mailpush_push_timeout = 600ms\nmailpush_push_retry_initial = 100ms\n",
        )
        server = await make_server(config)  # type: ignore[operator]
        assert isinstance(server, MailpushServer)
        client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port(server))
        try:
            await asyncio.to_thread(client.login, "alice", "secret")
            for n in range(5):
                await asyncio.to_thread(client.append, "INBOX", None, None, message(f"m{n}"))
            await endpoint.wait_for(5)
            await asyncio.to_thread(client.create, "Work")
            await asyncio.to_thread(client.select, "INBOX")
            endpoint.delay = 0.6
            assert (await asyncio.to_thread(client.copy, "1:5", "Work"))[0] == "OK"
        finally:
            await asyncio.to_thread(client.logout)
        await until(lambda: caplog.messages.count("lua: alice: end_txn") == 6)
        await asyncio.sleep(2.5)  # a rerun (at 3 s) would have posted again by now
        copied = [r.body for r in endpoint.received][5:]
    finally:
        await endpoint.stop()
    # Two POSTs fit in 1.5 s, the third is cut off while it waits for its answer, the
    # last two are skipped; end_txn still runs, and nothing runs twice.
    assert copied[:2] == [b"uid=1", b"uid=2"]
    assert copied[2:] in ([], [b"uid=3"])
    assert caplog.messages.count("lua: alice: end_txn") == 6
    skipped = next(m for m in caplog.messages if "lua_txn_timeout" in m and "skipped" in m)
    assert "took longer than 1.5s (lua_txn_timeout): 2 handler call(s) skipped" in skipped
    assert "mailbox=Work,uid=4" in skipped and "mailbox=Work,uid=5" in skipped
    cut = next(m for m in caplog.messages if "mailbox=Work,uid=3]) failed" in m)
    assert "aborted: the transaction took longer than 1.5s (5 events × 0.3s," in cut
    assert await undone(server) == (0, 0)
