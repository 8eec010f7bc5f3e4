"""A script cannot get past its limits or bring the server down: each attempt is a Lua error
at the script's line, the mail is delivered, and other users' deliveries go on meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import FIXTURES, DriverFactory, deliver, lua_server_config, until
from .test_dovecot_api import run_handler

#: What the hook attack did against a running server: reach the real debug.sethook
#: from a function the script can see, clear the limit hook, then spin with the
#: server frozen (3 s here, enough for the 200 ms check to see it).
ESCAPES = """\
local client = dovecot.http.client({})

local function find_sethook(fn, seen)
  for i = 1, 60 do
    local name, value = debug.getupvalue(fn, i) -- @getupvalue
    if name == nil then break end
    if name == "sethook" then return value end
    if type(value) == "function" and not seen[value] then
      seen[value] = true
      local found = find_sethook(value, seen)
      if found then return found end
    end
  end
end

local function spin()
  local stop = os.clock() + 3
  while os.clock() < stop do end
end

local attacks = {}

function attacks.hook()
  local hook = debug.gethook() -- @hook
  find_sethook(hook, {})()
  spin()
end

function attacks.upvalues()
  find_sethook(coroutine.create, {})()
  spin()
end

function attacks.truncated()
  local f = assert(load(string.dump(function() return 1 end):sub(1, 20))) -- @truncated
  f()
end

function attacks.crafted()
  local code = string.dump(function(a) return a + 1 end)
  local f = assert(load(code:sub(1, 40) .. string.rep("\\255", #code - 40))) -- @crafted
  f(1)
end

function attacks.loadlib()
  local system = package.loadlib("libc.so.6", "system") -- @loadlib
  system("true")
end

function attacks.ffi()
  local ffi = require "ffi" -- @ffi
  ffi.cdef("int system(const char *command);")
  ffi.C.system("true")
end

function dovecot_lua_notify_begin_txn(user)
  return { user = user.username, subjects = {}, ep = user:plugin_getenv("push_lua_url") }
end

function dovecot_lua_notify_event_message_new(ctx, event)
  if ctx.user == "alice" and attacks[event.subject] then attacks[event.subject]() end
  table.insert(ctx.subjects, event.subject)
end

function dovecot_lua_notify_end_txn(ctx)
  for _, subject in ipairs(ctx.subjects) do
    local request = client:request({ url = ctx.ep, method = "POST" })
    request:set_payload("user=" .. ctx.user .. "&subject=" .. subject)
    request:submit()
  end
end
"""


UPVALUE_REFUSED = "bad argument #1 to 'getupvalue' (only the script's own Lua functions"
BINARY_REFUSED = "attempt to load a binary chunk"


def line_of(marker: str) -> int:
    return next(n for n, text in enumerate(ESCAPES.splitlines(), 1) if f"-- @{marker}" in text)


def message(subject: str) -> bytes:
    return f"From: s@example.net\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


def lua_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and r.name.startswith("mailpush.drivers.lua.")]


def timed_delivery(server: MailpushServer, user: str, raw: bytes) -> float:
    started = time.monotonic()
    deliver(server, [user], raw)
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("attack", "version", "marker", "reason"),
    [
        pytest.param("hook", "5.4", "hook", "debug.gethook() is not available in mailpush",
                     id="hook-5.4"),
        pytest.param("upvalues", "5.4", "getupvalue", UPVALUE_REFUSED, id="upvalues-5.4"),
        pytest.param("upvalues", "5.1", "getupvalue", UPVALUE_REFUSED, id="upvalues-5.1"),
        pytest.param("truncated", "5.4", "truncated", BINARY_REFUSED, id="truncated-5.4"),
        pytest.param("crafted", "5.4", "crafted", BINARY_REFUSED, id="crafted-5.4"),
        pytest.param("crafted", "5.1", "crafted", BINARY_REFUSED, id="crafted-5.1"),
        pytest.param("loadlib", "5.4", "loadlib", "package.loadlib() is not available in mailpush",
                     id="loadlib-5.4"),
        pytest.param("ffi", "luajit", "ffi", 'require "ffi" is not available in mailpush',
                     id="ffi-luajit"),
    ],
)
async def test_an_escape_attempt_is_a_lua_error_and_the_server_keeps_serving(
    make_server: Callable[..., object],
    endpoint: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    attack: str,
    version: str,
    marker: str,
    reason: str,
) -> None:
    script = tmp_path / "escapes.lua"
    script.write_text(ESCAPES)
    config = lua_server_config(
        f"{script} lua_version={version} lua_max_instructions=1000000", endpoint.url, imap=False
    )
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["alice"], message(attack))
    # While alice's script runs its attack, bob's delivery is answered as usual.
    took = await asyncio.to_thread(timed_delivery, server, "bob", message("meanwhile"))

    await until(lambda: bool(lua_errors(caplog)))
    (failure,) = lua_errors(caplog)
    assert failure.startswith("lua: alice: dovecot_lua_notify_event_message_new(ctx, event[")
    assert f"{script}:{line_of(marker)}: {reason}" in failure
    assert took < 0.2
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 1
    (bob,) = await endpoint.wait_for(1)
    assert bob.body == b"user=bob&subject=meanwhile"
    # The state still serves alice.
    await asyncio.to_thread(deliver, server, ["alice"], message("fine"))
    await endpoint.wait_for(2)
    assert endpoint.received[1].body == b"user=alice&subject=fine"


# --- response payloads -------------------------------------------------------------------

SEVENTY_MB = 70 * 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_huge_response_to_the_seed_script_is_cut_off_and_reported_as_a_status(
    make_server: Callable[..., object],
    endpoint: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
    chunked: bool,
) -> None:
    """Dovecot's simple example script checks `r:status()/100 ~= 2`, logs `r:reason()`."""
    server = await make_server(  # type: ignore[operator]
        lua_server_config(FIXTURES / "simple_http.lua", endpoint.url, imap=False)
    )
    assert isinstance(server, MailpushServer)
    endpoint.answer_size = SEVENTY_MB
    endpoint.answer_chunked = chunked
    await asyncio.to_thread(deliver, server, ["alice"], message("big answer"))

    wanted = (
        "lua: alice: lua-push: Remote error Response payload too large (more than 1048576"
        " bytes; lua_http_response_max_size) handling push notification"
    )
    await until(lambda: wanted in lua_errors(caplog))
    await until(lambda: endpoint.answers_cut == 1)
    # What the kernel's socket buffers took before the connection closed; not 70 MB.
    assert endpoint.answer_written < 16 * 1024 * 1024
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 1

    endpoint.answer_size = 0
    await asyncio.to_thread(deliver, server, ["alice", "bob"], message("small answer"))
    received = await endpoint.wait_for(3)
    assert sorted(r.body.split(b"&user=")[1] for r in received[1:]) == [b"alice", b"bob"]


async def test_a_response_larger_than_the_memory_left_is_a_lua_error_not_an_abort(
    make_server: Callable[..., object],
    endpoint: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the cap raised above lua_max_memory, the 70 MB payload once aborted the
    process ("PANIC: unprotected error in call to Lua API (not enough memory)")."""
    options = "lua_max_memory=16M lua_http_response_max_size=100M"
    server = await make_server(  # type: ignore[operator]
        lua_server_config(f"{FIXTURES / 'simple_http.lua'} {options}", endpoint.url, imap=False)
    )
    assert isinstance(server, MailpushServer)
    endpoint.answer_size = SEVENTY_MB
    await asyncio.to_thread(deliver, server, ["alice"], message("big answer"))

    await until(lambda: bool(lua_errors(caplog)), timeout=20)
    (failure,) = lua_errors(caplog)
    assert failure.startswith("lua: alice: dovecot_lua_notify_end_txn(ctx, true) failed: ")
    assert f"{FIXTURES / 'simple_http.lua'}:24: not enough memory for the answer to http" in (
        failure)

    endpoint.answer_size = 0
    await asyncio.to_thread(deliver, server, ["alice"], message("small answer"))
    received = await endpoint.wait_for(2)
    assert b"subject=small%20answer" in received[1].body


# --- memory: values crossing from Python into a full state ---------------------------------


async def test_a_host_call_in_a_state_at_its_memory_limit_is_a_lua_error_not_a_hang(
    make_driver: DriverFactory,
) -> None:
    """lupa pushes a host function's result outside Lua's error handling: at the limit,
    that hung the whole process."""
    result = await run_handler(make_driver, """
        local hoard = {}
        local filled = pcall(function()
          for i = 1, 1e9 do hoard[i] = {} end
        end)
        local asked = pcall(function()
          for i = 1, 100 do ctx.user:plugin_getenv("push_lua_url") end
        end)
        hoard = nil
        collectgarbage()
        RESULT.filled, RESULT.asked = not filled, asked
    """, options={"lua_max_memory": "2M"}, plugin={"push_lua_url": "http://127.0.0.1:9/x"})
    assert result[b"filled"] is True
    assert isinstance(result[b"asked"], bool)


# --- other ways around the limits --------------------------------------------------------


async def test_collector_controls_that_would_defeat_the_memory_limit_are_refused(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        RESULT.stop = select(2, pcall(collectgarbage, "stop"))
        RESULT.pause = select(2, pcall(collectgarbage, "setpause", 1000))
        RESULT.count = collectgarbage("count") > 0
    """)
    assert b"'stop' is not available in mailpush" in result[b"stop"]
    assert b"'setpause' is not available in mailpush" in result[b"pause"]
    assert result[b"count"] is True


async def test_finalizers_which_run_outside_the_limits_cannot_be_set(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        local spin = function() while true do end end
        RESULT.gc = select(2, pcall(setmetatable, {}, { __gc = spin }))
        RESULT.debug = select(2, pcall(debug.setmetatable, {}, { __gc = spin }))
        RESULT.string = select(2, pcall(debug.setmetatable, "", {}))
        RESULT.plain = getmetatable(setmetatable({}, { __index = {} })) ~= nil
    """)
    assert b"__gc finalizers are not available in mailpush" in result[b"gc"]
    assert b"__gc finalizers are not available in mailpush" in result[b"debug"]
    assert b"only tables" in result[b"string"]
    assert result[b"plain"] is True


@pytest.mark.parametrize("spin", [
    "while true do end",
    "coroutine.resume(coroutine.create(function() while true do end end))",
])
async def test_an_error_object_whose_tostring_never_ends_is_still_reported(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture, spin: str
) -> None:
    """The error is described outside the call's coroutine, where no hook ran."""
    async with asyncio.timeout(5):
        await run_handler(make_driver, f"""
            error(setmetatable({{}}, {{ __tostring = function() {spin} return "x" end }}))
        """)
    assert any("(error object is a table value)" in m for m in caplog.messages)


async def test_replacing_globals_the_limit_hook_uses_does_not_stop_it(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with asyncio.timeout(5):
        await run_handler(make_driver, """
            pairs = function() while true do end end
            _G = setmetatable({}, { __index = function() while true do end end })
            coroutine.wrap(function() end)()
            while true do end
        """, options={"lua_max_instructions": "100000"})
    assert any("lua_max_instructions" in m for m in caplog.messages)


async def test_library_code_cannot_be_impersonated_to_escape_a_killed_call(
    make_driver: DriverFactory,
) -> None:
    """The kill hook spares the library's chunks (named `=mailpush/...`)."""
    result = await run_handler(make_driver, """
        RESULT.ok, RESULT.error = pcall(load, "while true do end", "=mailpush/evil")
    """)
    assert result[b"ok"] is False
    assert b"chunk names starting with '=mailpush' are mailpush's own" in result[b"error"]


async def test_python_objects_keep_their_metatable_hidden(make_driver: DriverFactory) -> None:
    result = await run_handler(make_driver, """
        local settings = dovecot.http.client({})._settings
        RESULT.mt = getmetatable(settings)
        RESULT.debug_mt = debug.getmetatable(settings)
    """)
    assert result[b"mt"] == b"Python object"
    assert result[b"debug_mt"] == b"Python object"


async def test_string_rep_cannot_build_gigabytes_in_one_call(make_driver: DriverFactory) -> None:
    result = await run_handler(make_driver, """
        RESULT.ok, RESULT.error = pcall(string.rep, "x", 2^33)
        RESULT.small = #("ab"):rep(3, ",")
    """, options={"lua_version": "luajit"})
    assert result[b"ok"] is False
    assert b"bad argument #2 to 'rep' (the result would be 8589934592 bytes" in result[b"error"]
    assert result[b"small"] == 8


@pytest.mark.parametrize(
    ("size", "status", "length"), [(100_000, 200, 100_000), (100_001, 9006, 0)]
)
async def test_a_payload_up_to_lua_http_response_max_size_reaches_the_script(
    make_driver: DriverFactory, endpoint: HttpReceiver, size: int, status: int, length: int
) -> None:
    endpoint.answer_size = size
    result = await run_handler(make_driver, f"""
        local request = dovecot.http.client({{}}):request({{url = "{endpoint.url}"}})
        local response = request:submit()
        RESULT.status, RESULT.length = response:status(), #response:payload()
    """, options={"lua_http_response_max_size": "100000"})
    assert (result[b"status"], result[b"length"]) == (status, length)


@pytest.mark.parametrize("version", ["5.4", "5.1", "luajit"])
async def test_bytecode_files_are_refused_by_loadfile_dofile_and_require(
    make_driver: DriverFactory, tmp_path: Path, version: str
) -> None:
    compiled = tmp_path / "compiled.lua"
    result = await run_handler(make_driver, f"""
        local file = io.open("{compiled}", "wb")
        file:write(string.dump(function() return 1 end))
        file:close()
        RESULT.loadfile = select(2, loadfile("{compiled}"))
        RESULT.dofile = select(2, pcall(dofile, "{compiled}"))
        package.path = "{tmp_path}/?.lua"
        RESULT.require = select(2, pcall(require, "compiled"))
        RESULT.stdin = select(2, loadfile())
    """, options={"lua_version": version})
    for name in (b"loadfile", b"dofile", b"require"):
        assert b"attempt to load a binary chunk" in result[name], name
    assert b"reading a chunk from stdin would stop the whole mail server" in result[b"stdin"]
