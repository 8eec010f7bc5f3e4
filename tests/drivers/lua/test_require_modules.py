"""`require` as Dovecot's Lua does it: the system's module directories, LUA_PATH, lua_path,
built-ins for the C modules scripts use, and a clear error for any other C module."""

from __future__ import annotations

import asyncio
import glob
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.drivers.lua.engine.module_search import c_module_templates, package_path
from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import DriverFactory, deliver, lua_server_config
from .protocol_helpers import message_new, run, transaction
from .system_lua import C_MODULES

#: Posts `encode({user=, subject=})` with the JSON module the script names.
JSON_SCRIPT = """\
{load}
local client = dovecot.http.client({{}})

function dovecot_lua_notify_begin_txn(user)
  return {{user = user.username, url = user:plugin_getenv("push_lua_url")}}
end

function dovecot_lua_notify_event_message_new(ctx, event)
  ctx.subject = event.subject
end

function dovecot_lua_notify_end_txn(ctx)
  if ctx.subject == nil then return end
  local request = client:request({{url = ctx.url .. "?via={name}", method = "POST"}})
  request:add_header("Content-Type", "application/json")
  request:set_payload({encode}({{user = ctx.user, subject = ctx.subject, n = 1}}))
  request:submit()
end
"""

#: The shape of luarocks' JSON.lua (Jeffrey Friedl's): methods called with `:`.
LUAROCKS_JSON = """\
local OBJDEF = { VERSION = "fixture" }

local function quote(s)
  return '"' .. s:gsub('[%c"\\\\]', function(c) return string.format("\\\\u%04x", c:byte()) end)
    .. '"'
end

function OBJDEF:encode(value)
  local kind = type(value)
  if kind == "string" then return quote(value) end
  if kind ~= "table" then return tostring(value) end
  local keys = {}
  for key in pairs(value) do keys[#keys + 1] = key end
  table.sort(keys)
  local parts = {}
  for _, key in ipairs(keys) do parts[#parts + 1] = quote(key) .. ":" .. self:encode(value[key]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

return OBJDEF
"""


async def _push_with(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path, script: str
) -> None:
    path = tmp_path / "push.lua"
    path.write_text(script)
    server = await make_server(lua_server_config(path, endpoint.url, imap=False))
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["alice"], b"Subject: Modules\r\n\r\nx\r\n")


async def test_debians_dkjson_loads_from_usr_share_lua(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path
) -> None:
    if not Path("/usr/share/lua/5.4/dkjson.lua").exists():
        pytest.skip("/usr/share/lua/5.4/dkjson.lua is absent (Debian package lua-dkjson)")
    script = JSON_SCRIPT.format(load='local json = require "dkjson"', name="dkjson",
                                encode="json.encode")
    await _push_with(make_server, endpoint, tmp_path, script)
    (request,) = await endpoint.wait_for(1)
    assert (request.method, request.raw_path) == ("POST", "/hook?via=dkjson")
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"user": "alice", "subject": "Modules", "n": 1}


async def test_a_luarocks_json_lua_loads_through_lua_path(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    modules = tmp_path / "rocks"
    modules.mkdir()
    (modules / "JSON.lua").write_text(LUAROCKS_JSON)
    monkeypatch.delenv("LUA_PATH_5_4", raising=False)
    monkeypatch.setenv("LUA_PATH", f"{modules}/?.lua;;")
    script = JSON_SCRIPT.format(load='local JSON = require("JSON")', name="JSON",
                                encode="JSON:encode")
    await _push_with(make_server, endpoint, tmp_path, script)
    (request,) = await endpoint.wait_for(1)
    assert request.raw_path == "/hook?via=JSON"
    assert request.body == b'{"n":1,"subject":"Modules","user":"alice"}'


async def test_a_missing_module_error_explains_c_modules_and_lists_the_built_ins(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("""
        local zlib = require "zlib"
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) end
    """)
    assert not await run(driver, transaction("alice", message_new()))
    failure = next(m for m in caplog.messages if "failed" in m)
    assert f"{driver.script.path}:2: module 'zlib' not found:" in failure
    assert "no file '/usr/share/lua/5.4/zlib.lua'" in failure
    assert "no file '/usr/local/share/lua/5.4/zlib/init.lua'" in failure
    assert "no C module '/usr/local/lib/lua/5.4/zlib.so'" in failure
    assert (
        "C modules (.so) cannot be loaded: mailpush runs its own embedded Lua, and a C module"
        " is built against the system's Lua library, a different copy of the interpreter;"
        " built into mailpush instead: cjson, cjson.safe, ltn12, mime, mime.core, socket,"
        " socket.core, socket.headers, socket.http, socket.url"
    ) in failure


async def test_a_c_module_present_on_the_system_is_named_as_unusable(
    make_driver: DriverFactory,
) -> None:
    found = sorted(glob.glob(f"{C_MODULES}/socket/unix.so") + glob.glob(f"{C_MODULES}/lpeg.so"))
    if not found:
        pytest.skip(f"no C module under {C_MODULES} (Debian packages lua-socket, lua-lpeg)")
    name = "socket.unix" if found[-1].endswith("unix.so") else "lpeg"
    driver = await make_driver(f"""
        function dovecot_lua_notify_begin_txn(user) return {{}} end
        function dovecot_lua_notify_event_message_new(ctx, e) end
        function dovecot_lua_notify_end_txn(ctx)
          OK, ERR = pcall(require, "{name}")
        end
    """)
    await run(driver, transaction("alice", message_new()))
    globals_ = (await driver.state_for("alice")).runtime.globals
    assert globals_[b"OK"] is False
    assert f"found C module '{found[-1]}', which cannot be used here".encode() in globals_[b"ERR"]


async def test_built_in_modules_load_under_their_usual_names(make_driver: DriverFactory) -> None:
    driver = await make_driver("""
        local socket = require "socket"
        local http = require "socket.http"
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) end
        function dovecot_lua_notify_end_txn(ctx)
          SAME = socket.http == http and require("socket.core") == socket
            and socket.url == require("socket.url") and require("mime.core") == require("mime")
          VERSIONS = socket._VERSION .. " " .. require("ltn12")._VERSION .. " "
            .. require("mime")._VERSION .. " " .. http.TIMEOUT
          CANONIC = require("socket.headers").canonic["content-type"]
        end
    """)
    await run(driver, transaction("alice", message_new()))
    globals_ = (await driver.state_for("alice")).runtime.globals
    assert globals_[b"SAME"] is True
    assert globals_[b"VERSIONS"] == b"LuaSocket 3.0.0 LTN12 1.0.3 MIME 1.0.3 60"
    assert globals_[b"CANONIC"] == b"Content-Type"


async def test_lua_path_is_searched_after_the_system_directories(
    make_driver: DriverFactory, tmp_path: Path
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "pushcfg.lua").write_text('return { url = "from lua_path" }')
    driver = await make_driver("""
        local cfg = require "pushcfg"
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) end
        function dovecot_lua_notify_end_txn(ctx) URL = cfg.url PATH = package.path end
    """, options={"lua_path": str(own)})
    await run(driver, transaction("alice", message_new()))
    globals_ = (await driver.state_for("alice")).runtime.globals
    assert globals_[b"URL"] == b"from lua_path"
    assert globals_[b"PATH"].decode().split(";")[-2:] == [f"{own}/?.lua", f"{own}/?/init.lua"]


def test_the_search_path_is_the_systems_for_the_configured_lua_version() -> None:
    assert package_path("lua54", {}) == ";".join([
        "/usr/local/share/lua/5.4/?.lua", "/usr/local/share/lua/5.4/?/init.lua",
        "/usr/local/lib/lua/5.4/?.lua", "/usr/local/lib/lua/5.4/?/init.lua",
        "/usr/share/lua/5.4/?.lua", "/usr/share/lua/5.4/?/init.lua",
    ])
    assert "/usr/share/lua/5.1/?.lua" in package_path("luajit21", {})
    assert "/usr/share/lua/5.3/?/init.lua" in package_path("lua53", {})
    assert c_module_templates("lua53")[0] == "/usr/local/lib/lua/5.3/?.so"


def test_lua_path_variables_replace_the_default_and_double_semicolons_restore_it() -> None:
    environ = {"LUA_PATH": "/etc/lua/?.lua", "LUA_PATH_5_4": "/opt/54/?.lua;;"}
    path54 = package_path("lua54", environ, ["/srv/own/?.lua"]).split(";")
    assert path54[0] == "/opt/54/?.lua"
    assert path54[1] == "/usr/local/share/lua/5.4/?.lua"
    assert path54[-1] == "/srv/own/?.lua"
    assert package_path("lua53", environ) == "/etc/lua/?.lua"
    assert package_path("luajit21", environ) == "/etc/lua/?.lua"
    assert package_path("lua51", {"LUA_PATH_5_1": "/x/?.lua"}).startswith("/usr/local/share")
