"""`require "socket.http"`: LuaSocket's client API, answered without blocking the server.

The scripts are written as deployments write them for Dovecot (the shape of
Dovecot's older documented examples): the simple form with a form-encoded
body, the table form with an `ltn12.source.string` body and explicit headers.
"""

from __future__ import annotations

import asyncio
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from mailpush.auth import add_user
from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import DriverFactory, deliver, lua_server_config
from .protocol_helpers import message_new, run, transaction

FORM_POST = """\
local http = require "socket.http"
local url = require "socket.url"

function dovecot_lua_notify_begin_txn(user)
  return {user = user.username, endpoint = user:plugin_getenv("push_lua_url"), subjects = {}}
end

function dovecot_lua_notify_event_message_new(ctx, event)
  table.insert(ctx.subjects, event.subject)
end

function dovecot_lua_notify_end_txn(ctx)
  for _, subject in ipairs(ctx.subjects) do
    local body, code = http.request(ctx.endpoint .. "?user=" .. url.escape(ctx.user)
      .. "&sig=%3d%40",
      "user=" .. url.escape(ctx.user) .. "&subject=" .. url.escape(subject))
    if code ~= 200 then dovecot.i_error("push failed: " .. tostring(code)) end
  end
end
"""

TABLE_FORM = """\
local http = require("socket.http")
local ltn12 = require("ltn12")

function dovecot_lua_notify_begin_txn(user)
  return {user = user.username, endpoint = user:plugin_getenv("push_lua_url")}
end

function dovecot_lua_notify_event_message_new(ctx, event)
  ctx.subject = event.subject
end

function dovecot_lua_notify_end_txn(ctx)
  if ctx.subject == nil then return end
  local payload = '{"user":"' .. ctx.user .. '","subject":"' .. ctx.subject .. '"}'
  local response = {}
  local ok, code, headers, status = http.request{
    url = ctx.endpoint,
    method = "PUT",
    headers = {
      ["Content-Type"] = "application/json",
      ["Content-Length"] = tostring(#payload),
      ["X-Token"] = "t0ken",
    },
    source = ltn12.source.string(payload),
    sink = ltn12.sink.table(response),
  }
  if code ~= 200 then dovecot.i_error("push failed: " .. tostring(code)) end
end
"""


async def test_a_form_encoded_post_arrives_as_the_script_describes_it(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "form.lua"
    script.write_text(FORM_POST)
    server = await make_server(lua_server_config(script, endpoint.url, imap=False))
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["alice"], b"Subject: Hi there/you\r\n\r\nbody\r\n")
    (request,) = await endpoint.wait_for(1)
    assert request.method == "POST"
    assert request.raw_path == "/hook?user=alice&sig=%3d%40"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.body == b"user=alice&subject=Hi%20there%2fyou"
    assert request.headers["User-Agent"] == "LuaSocket 3.0.0"


async def test_the_table_form_sends_an_ltn12_source_with_the_scripts_headers(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "table.lua"
    script.write_text(TABLE_FORM)
    server = await make_server(lua_server_config(script, endpoint.url, imap=False))
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["bob"], b"Subject: Report\r\n\r\nbody\r\n")
    (request,) = await endpoint.wait_for(1)
    assert (request.method, request.raw_path) == ("PUT", "/hook")
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-token"] == "t0ken"
    assert request.json() == {"user": "bob", "subject": "Report"}
    assert headers["content-length"] == str(len(request.body))


async def test_both_forms_return_luasocket_values(
    make_driver: DriverFactory, endpoint: HttpReceiver
) -> None:
    driver = await make_driver(f"""
        local http, ltn12 = require "socket.http", require "ltn12"
        function dovecot_lua_notify_begin_txn(user) return {{}} end
            function dovecot_lua_notify_event_message_new(ctx, event) end
        function dovecot_lua_notify_end_txn(ctx)
          BODY, CODE, HEADERS, STATUS = http.request("{endpoint.url}")
          local sink = {{}}
          ONE, CODE2, HEADERS2, STATUS2 = http.request{{url = "{endpoint.url}", method = "HEAD",
            sink = ltn12.sink.table(sink)}}
          SINK = table.concat(sink)
        end
    """)
    await run(driver, transaction("alice", message_new()))
    g = (await driver.state_for("alice")).runtime.globals
    assert (g[b"BODY"], g[b"CODE"], g[b"STATUS"]) == (b"ok", 200, b"HTTP/1.1 200 OK")
    assert g[b"HEADERS"][b"content-type"] == b"text/plain; charset=utf-8"
    assert (g[b"ONE"], g[b"CODE2"], g[b"STATUS2"], g[b"SINK"]) == (1, 200, b"HTTP/1.1 200 OK", b"")
    assert [r.method for r in endpoint.received] == ["GET", "HEAD"]


async def test_network_failures_come_back_as_luasocket_error_strings(
    make_driver: DriverFactory,
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    stalled = HttpReceiver(delay=2.0)
    await stalled.start()
    try:
        driver = await make_driver(f"""
            local http = require "socket.http"
            function dovecot_lua_notify_begin_txn(user) return {{}} end
            function dovecot_lua_notify_event_message_new(ctx, event) end
            function dovecot_lua_notify_end_txn(ctx)
              R1, E1 = http.request("http://127.0.0.1:{closed_port}/push", "a=1")
              http.TIMEOUT = 0.3
              R2, E2 = http.request{{url = "{stalled.url}"}}
              R3, E3 = http.request("http://no-such-host.invalid/")
            end
        """)
        started = time.perf_counter()
        await run(driver, transaction("alice", message_new()))
        elapsed = time.perf_counter() - started
    finally:
        await stalled.stop()
    g = (await driver.state_for("alice")).runtime.globals
    assert (g[b"R1"], g[b"E1"]) == (None, b"connection refused")
    assert (g[b"R2"], g[b"E2"]) == (None, b"timeout")
    assert (g[b"R3"], g[b"E3"]) == (None, b"host not found")
    assert elapsed < 2.0, "http.TIMEOUT bounds the request"


async def test_raw_sockets_are_refused_with_a_clear_error(make_driver: DriverFactory) -> None:
    driver = await make_driver("""
        local socket = require "socket"
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, event) end
        function dovecot_lua_notify_end_txn(ctx)
          OK, ERR = pcall(socket.tcp)
          OK2, ERR2 = pcall(socket.connect, "127.0.0.1", 80)
          NOW = socket.gettime()
        end
    """)
    await run(driver, transaction("alice", message_new()))
    g = (await driver.state_for("alice")).runtime.globals
    assert g[b"OK"] is False and g[b"OK2"] is False
    assert b"socket.tcp(): raw sockets are not available in mailpush" in g[b"ERR"]
    assert b"socket.http or dovecot.http.client" in g[b"ERR2"]
    assert abs(g[b"NOW"] - time.time()) < 5


async def test_socket_sleep_lets_other_users_scripts_run(make_driver: DriverFactory) -> None:
    driver = await make_driver("""
        local socket = require "socket"
        function dovecot_lua_notify_begin_txn(user) return {user = user.username} end
        function dovecot_lua_notify_event_message_new(ctx, event) end
        function dovecot_lua_notify_end_txn(ctx)
          if ctx.user == "sleeper" then socket.sleep(0.5) end
        end
    """)
    for user in ("sleeper", "u1", "u2"):
        await driver.state_for(user)
    finished: dict[str, float] = {}
    started = time.perf_counter()

    async def one(user: str) -> None:
        await run(driver, transaction(user, message_new()))
        finished[user] = time.perf_counter() - started

    await asyncio.gather(one("sleeper"), one("u1"), one("u2"))
    assert finished["sleeper"] >= 0.5
    assert finished["u1"] < 0.3 and finished["u2"] < 0.3


async def test_a_slow_socket_http_endpoint_delays_neither_lmtp_nor_other_users(
    make_server: Callable[..., object], tmp_path: Path
) -> None:
    slow, fast = HttpReceiver(delay=2.0), HttpReceiver()
    await slow.start()
    await fast.start()
    try:
        for name in ("alice", "bob"):
            add_user(tmp_path / "users", name, "secret", "PLAIN")
        script = tmp_path / "slow.lua"
        script.write_text(textwrap.dedent("""\
            local http = require "socket.http"
            function dovecot_lua_notify_begin_txn(user)
              local key = user.username == "alice" and "push_slow_url" or "push_lua_url"
              return {url = user:plugin_getenv(key), user = user.username}
            end
            function dovecot_lua_notify_event_message_new(ctx, event) end
            function dovecot_lua_notify_end_txn(ctx)
              http.request(ctx.url, "user=" .. ctx.user)
            end
        """))
        config = lua_server_config(script, fast.url, imap=False).replace(
            "plugin {", f"plugin {{\n  push_slow_url = {slow.url}", 1
        )
        server = await make_server(config)
        assert isinstance(server, MailpushServer)
        started = time.perf_counter()
        await asyncio.to_thread(deliver, server, ["alice"])
        await asyncio.to_thread(deliver, server, ["bob"])
        delivered = time.perf_counter() - started
        (bob,) = await fast.wait_for(1)
        bob_pushed = time.perf_counter() - started
        (alice,) = await slow.wait_for(1, timeout=5)
    finally:
        await slow.stop()
        await fast.stop()
    assert delivered < 1.0, "LMTP does not wait for the script's socket.http call"
    assert bob_pushed < 1.5, "bob's push does not wait for alice's slow endpoint"
    assert (alice.body, bob.body) == (b"user=alice", b"user=bob")
