"""Configuring the lua driver: both Dovecot syntaxes, the Lua version, limits, errors."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.drivers import DriverConfig
from mailpush.drivers.lua import LUA_VERSIONS, lua_options
from mailpush.drivers.lua.options import lua_options_for
from mailpush.errors import SettingError
from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import DriverFactory, deliver
from .protocol_helpers import message_new, run, transaction


def config(**options: str) -> DriverConfig:
    return DriverConfig("lua", "lua", options, where="mailpush.conf:7")


def test_the_script_comes_from_file_or_the_plugin_settings() -> None:
    assert lua_options(config(file="/etc/push.lua"), {}).script == Path("/etc/push.lua")
    assert lua_options(config(), {"mail_lua_script": "/etc/mail.lua"}).script == Path(
        "/etc/mail.lua"
    )
    override = {"push_notification_lua_script_file": "/etc/override.lua"}
    chosen = lua_options(config(file="/etc/push.lua"), override)
    assert (chosen.script, chosen.script_setting) == (
        Path("/etc/override.lua"), "push_notification_lua_script_file"
    )


def test_no_script_at_all_is_a_setting_error_saying_what_to_write() -> None:
    with pytest.raises(SettingError) as raised:
        lua_options(config(), {})
    assert str(raised.value) == (
        "mailpush.conf:7: lua file: no Lua script configured: write lua:file=/path/script.lua"
        " (or set the plugin setting mail_lua_script)"
    )


def test_lua_version_defaults_to_5_4_and_unknown_versions_are_refused() -> None:
    assert lua_options(config(file="/x.lua"), {}).module == "lua54"
    assert lua_options(config(file="/x.lua", lua_version="LuaJIT"), {}).module == "luajit21"
    with pytest.raises(SettingError, match=r"lua lua_version: unknown Lua version '6\.0'"):
        lua_options(config(file="/x.lua", lua_version="6.0"), {})


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("lua_max_memory", "100k", "at least 1M is needed"),
        ("lua_max_memory", "lots", "expected a size"),
        ("lua_call_timeout", "soon", "soon"),
        ("lua_max_instructions", "-1", "expected a number"),
        ("lua_max_states", "0", "expected a number"),
    ],
)
def test_bad_limits_name_the_option(option: str, value: str, message: str) -> None:
    with pytest.raises(SettingError, match=f"lua {option}: .*{message}"):
        lua_options(config(file="/x.lua", **{option: value}), {})


def test_limits_have_documented_defaults_and_zero_means_unlimited() -> None:
    defaults = lua_options(config(file="/x.lua"), {})
    assert (defaults.max_instructions, defaults.max_memory, defaults.call_timeout,
            defaults.max_states) == (10_000_000, 64 * 1024 * 1024, 20.0, 1000)
    unlimited = lua_options(
        config(file="/x.lua", lua_max_instructions="0", lua_max_memory="0"), {}
    )
    assert (unlimited.max_instructions, unlimited.max_memory) == (0, 0)
    assert lua_options(config(file="/x.lua", lua_version="luajit"), {}).max_memory == 0


def test_a_transaction_has_25s_or_five_sixths_of_the_push_timeout() -> None:
    assert lua_options(config(file="/x.lua"), {}).txn_timeout == 25.0
    assert lua_options_for(config(file="/x.lua"), {}, push_timeout=None).txn_timeout == 25.0
    assert lua_options_for(config(file="/x.lua"), {}, push_timeout=60.0).txn_timeout == 25.0
    short = lua_options_for(config(file="/x.lua"), {}, push_timeout=6.0)
    assert (short.txn_timeout, short.end_txn_grace) == (5.0, 0.5)
    given = lua_options(config(file="/x.lua", lua_txn_timeout="90s"), {})
    assert (given.txn_timeout, given.end_txn_grace) == (90.0, 2.0)
    with pytest.raises(SettingError, match="lua lua_txn_timeout: .*soon"):
        lua_options(config(file="/x.lua", lua_txn_timeout="soon"), {})


def test_time_limits_beyond_the_push_timeout_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past mailpush_push_timeout the dispatcher reruns the transaction: POSTs twice."""
    lua_options_for(config(file="/x.lua"), {}, push_timeout=30.0)
    assert caplog.messages == []
    lua_options_for(
        config(file="/x.lua", lua_txn_timeout="30s", lua_call_timeout="40s"), {},
        push_timeout=30.0,
    )
    call, txn = caplog.messages
    assert call.startswith(
        "mailpush.conf:7: lua_call_timeout (40s) is not below mailpush_push_timeout (30s)")
    assert txn.startswith(
        "mailpush.conf:7: lua_txn_timeout (30s, plus up to 2s for end_txn) is not below"
        " mailpush_push_timeout (30s): a transaction that long is cancelled and run again")


def test_lua_path_accepts_directories_and_templates() -> None:
    options = lua_options(config(file="/x.lua", lua_path="/etc/lua;/opt/?.luac"), {})
    assert options.package_path == ("/etc/lua/?.lua", "/etc/lua/?/init.lua", "/opt/?.luac")


@pytest.mark.parametrize("version", sorted(LUA_VERSIONS))
async def test_every_offered_lua_version_runs_a_script(
    make_driver: DriverFactory, version: str
) -> None:
    driver = await make_driver(
        """
        SEEN = {}
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_end_txn(ctx) end
        function dovecot_lua_notify_event_message_new(ctx, event)
          SEEN.version = _VERSION
          SEEN.subject = event.subject
        end
        """,
        options={"lua_version": version},
    )
    await run(driver, transaction("alice", message_new()))
    seen = (await driver.state_for("alice")).runtime.globals[b"SEEN"]
    assert seen[b"subject"] == "Grüße".encode()
    assert seen[b"version"].startswith(b"Lua 5.")


async def test_a_2_4_block_with_lua_settings_configures_the_driver(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "settings.lua"
    script.write_text(textwrap.dedent("""\
        local client, endpoint = nil, nil
        function script_init(settings)
          client = dovecot.http.client({})
          endpoint = settings.push_lua_url
        end
        function dovecot_lua_notify_begin_txn(user) return {user = user.username} end
        function dovecot_lua_notify_event_message_new(ctx, event) ctx.subject = event.subject end
        function dovecot_lua_notify_end_txn(ctx)
          local request = client:request({url = endpoint, method = "POST"})
          request:set_payload(_VERSION .. " " .. ctx.user .. " " .. ctx.subject)
          request:submit()
        end
    """))
    server = await make_server(textwrap.dedent(f"""\
        push_notification lua {{
          lua_file = {script}
          lua_version = 5.3
          lua_settings {{
            push_lua_url = {endpoint.url}?for=%u
          }}
        }}
    """))  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(
        deliver, server, ["alice"], b"Subject: via 2.4\r\n\r\nbody\r\n"
    )
    (request,) = await endpoint.wait_for(1)
    assert request.body == b"Lua 5.3 alice via 2.4"
    assert request.path == "/hook"
