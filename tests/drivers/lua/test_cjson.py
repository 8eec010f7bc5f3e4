"""`require "cjson"`: lua-cjson 2.1.0's bytes, values and errors, from mailpush's built-in.

Where the system has Debian's lua-cjson, every snippet runs under both and
the results must be equal byte for byte. Snippets encode tables whose order
does not depend on the hash seed (arrays, one key), or compare as JSON.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import DriverFactory, deliver, lua_server_config
from .system_lua import system_lua_with

ALL_BYTES = "(function() local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end" \
    " return table.concat(t) end)()"

#: Lua expressions with a string value; `cjson` and `safe` are the modules.
SNIPPETS = [
    "cjson.encode({1, 2, 3})",
    'cjson.encode({a = "x/y"})',
    "cjson.encode({1.5, -0.0, 1e300, 2^53, math.maxinteger, math.mininteger, 0.1, 1/3, 100, -5,"
    " 1e-7, 123456789012345})",
    f"cjson.encode({ALL_BYTES})",
    'cjson.encode("caf\\195\\169 \\226\\130\\172")',
    "cjson.encode({{{}}, {}, {{}}})",
    "cjson.encode({[1] = 1, [2] = 2, [4] = 3})",
    "cjson.encode({[1.5] = true})",
    "cjson.encode({[-1] = 1})",
    "cjson.encode({[3] = 'three'})",
    "cjson.encode({true, false, cjson.null})",
    "cjson.encode(42) .. cjson.encode('s') .. cjson.encode(nil) .. cjson.encode(false)",
    "select(2, pcall(cjson.encode, print))",
    "select(2, pcall(cjson.encode, {[true] = 1}))",
    "select(2, pcall(cjson.encode, {math.huge}))",
    "select(2, pcall(cjson.encode, {[20] = 1}))",
    "select(2, pcall(cjson.encode, {}, 2))",
    "select(2, pcall(cjson.encode, (function() local t = {} for i = 1, 1001 do t = {t} end"
    " return t end)()))",
    'cjson.encode(cjson.decode(\'[1,2.5,"\\\\u00e9\\\\ud83d\\\\ude00",null,true,{"k":[]}]\'))',
    'cjson.encode(cjson.decode(\'"\\\\/\\\\b\\\\f\\\\n\\\\r\\\\t\\\\"\\\\\\\\"\'))',
    "cjson.encode(cjson.decode('[1e5, -0, 0.1, 123456789012345678, 0x10, 1E2, 007]'))",
    "tostring(cjson.decode('[1]')[1]) .. math.type(cjson.decode('2')) .. tostring(cjson.null)",
    "tostring(cjson.decode('{\"a\":null}').a == cjson.null)",
    "select(2, pcall(cjson.decode, 'xx'))",
    "select(2, pcall(cjson.decode, ''))",
    "select(2, pcall(cjson.decode, '[1,]'))",
    "select(2, pcall(cjson.decode, '{1:2}'))",
    "select(2, pcall(cjson.decode, '{\"a\" 1}'))",
    "select(2, pcall(cjson.decode, '{\"a\":1 \"b\"}'))",
    "select(2, pcall(cjson.decode, '[1] x'))",
    "select(2, pcall(cjson.decode, '\"abc'))",
    "select(2, pcall(cjson.decode, '\"a\\\\qc\"'))",
    "select(2, pcall(cjson.decode, '[\"\\\\ud800x\"]'))",
    "select(2, pcall(cjson.decode, 'nul'))",
    "select(2, pcall(cjson.decode, '\\0\\0'))",
    "select(2, pcall(cjson.decode, string.rep('[', 1001)))",
    "select(2, pcall(cjson.decode, {}))",
    "select(2, pcall(cjson.encode_max_depth, 0))",
    "select(2, pcall(cjson.encode_invalid_numbers, 'x'))",
    "tostring(cjson.encode_sparse_array()) .. tostring(select(2, cjson.encode_sparse_array()))"
    " .. tostring(cjson.encode_keep_buffer()) .. tostring(cjson.decode_invalid_numbers())"
    " .. cjson.encode_max_depth() .. cjson.decode_max_depth() .. cjson.encode_number_precision()"
    " .. tostring(cjson.encode_invalid_numbers()) .. cjson._NAME .. cjson._VERSION",
    "(function() local c = cjson.new() c.encode_number_precision(3)"
    " c.encode_invalid_numbers(true) local a = c.encode({math.pi, 1/0, -1/0})"
    " c.encode_invalid_numbers('null') return a .. c.encode({1/0}) .. cjson.encode({math.pi})"
    " .. tostring(c.encode_invalid_numbers()) end)()",
    "(function() local c = cjson.new() c.encode_sparse_array(true)"
    " return c.encode({[20] = 1}) end)()",
    "(function() local c = cjson.new() c.decode_invalid_numbers(false)"
    " return select(2, pcall(c.decode, '[0x10]')) .. select(2, pcall(c.decode, '+1')) end)()",
    "(function() local c = cjson.new() c.decode_max_depth(2)"
    " return select(2, pcall(c.decode, '[[[1]]]')) end)()",
    "tostring(select(2, safe.decode('{'))) .. tostring(safe.encode(print))"
    " .. tostring(select(2, safe.encode(print))) .. safe.encode({1}) .. safe._NAME",
]


def _chunk(expression: str) -> bytes:
    return (
        'local cjson = require "cjson" local safe = require "cjson.safe"'
        f" return ({expression})"
    ).encode()


async def _ours(make_driver: DriverFactory) -> Callable[[str], bytes]:
    driver = await make_driver("function dovecot_lua_notify_begin_txn(user) return {} end")
    state = await driver.state_for("alice")

    def run(expression: str) -> bytes:
        result = state.runtime.lua.execute(_chunk(expression))
        assert isinstance(result, bytes), result
        return result

    return run


async def test_cjson_gives_the_same_bytes_and_errors_as_lua_cjson(
    make_driver: DriverFactory,
) -> None:
    system = system_lua_with("cjson.so")
    ours = await _ours(make_driver)
    expected = system.run_all([_chunk(expression) for expression in SNIPPETS])
    for expression, theirs in zip(SNIPPETS, expected, strict=True):
        assert ours(expression) == theirs, expression


async def test_objects_with_several_keys_hold_the_same_json(make_driver: DriverFactory) -> None:
    system = system_lua_with("cjson.so")
    ours = await _ours(make_driver)
    expression = (
        'cjson.encode({user = "alice", n = 3, list = {1, "x"}, nested = {a = cjson.null},'
        ' [7] = "seven", empty = {}})'
    )
    assert json.loads(ours(expression)) == json.loads(system.run(_chunk(expression)))


async def test_cjson_follows_its_documented_behaviour_without_the_system_module(
    make_driver: DriverFactory,
) -> None:
    ours = await _ours(make_driver)
    assert ours('cjson.encode({"a/b", 1, 2.5, true, cjson.null})') == b'["a\\/b",1,2.5,true,null]'
    assert ours("cjson.encode({2^53})") == b"[9.007199254741e+15]"
    assert ours("select(2, pcall(cjson.encode, print))") == (
        b"Cannot serialise function: type not supported"
    )
    assert ours("select(2, pcall(cjson.decode, '?'))") == (
        b"Expected value but found invalid token at character 1"
    )
    assert ours("tostring(select(2, safe.decode('[')))") == (
        b"Expected value but found T_END at character 2"
    )
    assert ours("type(cjson.null) .. tostring(cjson.decode('[null]')[1] == cjson.null)") == (
        b"userdatatrue"
    )


async def test_a_json_body_built_with_cjson_reaches_the_endpoint(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "cjson_push.lua"
    script.write_text(textwrap.dedent("""\
        local cjson = require "cjson"
        local client = dovecot.http.client({timeout = 10000})

        function dovecot_lua_notify_begin_txn(user)
          return {user = user.username, url = user:plugin_getenv("push_lua_url"), events = {}}
        end

        function dovecot_lua_notify_event_message_new(ctx, event)
          table.insert(ctx.events, {uid = event.uid, subject = event.subject,
            folder = event.mailbox, unseen = true})
        end

        function dovecot_lua_notify_end_txn(ctx)
          if #ctx.events == 0 then return end
          local request = client:request({url = ctx.url, method = "POST"})
          request:add_header("Content-Type", "application/json; charset=utf-8")
          request:set_payload(cjson.encode({user = ctx.user, events = ctx.events}))
          request:submit()
        end
    """))
    server = await make_server(lua_server_config(script, endpoint.url, imap=False))
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["alice"], b"Subject: a/b \"quoted\"\r\n\r\nx\r\n")
    (request,) = await endpoint.wait_for(1)
    assert (request.method, request.raw_path) == ("POST", "/hook")
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert b'"a\\/b \\"quoted\\""' in request.body
    assert request.json() == {
        "user": "alice",
        "events": [{"uid": 1, "subject": 'a/b "quoted"', "folder": "INBOX", "unseen": True}],
    }


@pytest.mark.parametrize("version", ["5.1", "5.3", "luajit"])
async def test_cjson_works_on_every_lua_version(make_driver: DriverFactory, version: str) -> None:
    try:
        driver = await make_driver(
            "function dovecot_lua_notify_begin_txn(user) return {} end",
            options={"lua_version": version},
        )
    except Exception as exc:  # lupa built without that version
        pytest.skip(f"Lua {version} is not available: {exc}")
    state = await driver.state_for("alice")
    result = state.runtime.lua.execute(
        b'local cjson = require "cjson" local t = cjson.decode(\'{"a":[1,"\\\\u00e9",null,-0]}\')'
        b" return cjson.encode(t.a) .. tostring(t.a[3] == cjson.null)"
    )
    assert result == '[1,"é",null,-0]true'.encode()
