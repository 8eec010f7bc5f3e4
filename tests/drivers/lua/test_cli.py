"""`mailpush lua check` and `mailpush lua run`: trying a script without a mail server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailpush.cli import main
from tests.support.http_receiver import HttpReceiver

from .conftest import FIXTURES


def test_check_lists_the_functions_a_script_defines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lua", "check", str(FIXTURES / "events_http.lua")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{FIXTURES / 'events_http.lua'}: syntax OK (Lua 5.4)",
        "  defines script_init",
        "  defines dovecot_lua_notify_begin_txn",
        "  defines dovecot_lua_notify_end_txn",
        "  defines dovecot_lua_notify_event_message_append",
        "  defines dovecot_lua_notify_event_message_new",
    ]


def test_check_warns_about_a_script_dovecot_would_never_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "lonely.lua"
    script.write_text("function dovecot_lua_notify_event_message_new(ctx, e) end\n")
    assert main(["lua", "check", str(script)]) == 0
    out = capsys.readouterr().out
    assert "warning: dovecot_lua_notify_begin_txn is missing" in out


def test_check_reports_a_syntax_error_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "broken.lua"
    script.write_text("local x = 1\nfunction (\n")
    assert main(["lua", "check", "--lua-version", "5.1", str(script)]) == 78
    err = capsys.readouterr().err
    assert f"Lua script {script}:2:" in err


async def test_run_sends_what_the_script_builds_for_a_made_up_event(
    endpoint: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "lua", "run", str(FIXTURES / "simple_http.lua"), "--event", "message_new",
        "--field", "subject=Hello push", "--field", "from=Plain Sender <plain@example.net>",
        "--user", "dave", "--plugin", f"push_lua_url={endpoint.url}",
    ]
    assert await asyncio.to_thread(main, argv) == 0
    (request,) = endpoint.received
    assert request.body == (
        b"from=Plain%20Sender%20%3cplain%40example%2enet%3e&to=&subject=Hello%20push"
        b"&snippet=&user=dave"
    )


def test_run_refuses_unknown_events_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    script = str(FIXTURES / "simple_http.lua")
    assert main(["lua", "run", script, "--event", "message_eaten"]) == 1
    assert "unknown event (known: flags_clear, flags_set" in capsys.readouterr().err
    assert main(["lua", "run", script, "--event", "mailbox_create", "--field", "uid=3"]) == 1
    assert "--field uid: not a field of MailboxCreate events" in capsys.readouterr().err


async def test_run_with_a_configuration_uses_its_store_and_plugin_settings(
    tmp_path: Path,
) -> None:
    from mailpush.config import load_settings
    from mailpush.server import open_store
    from tests.conftest import write_config

    config = write_config(tmp_path, "plugin {\n  push_lua_tag = from-config\n}\n")
    script = tmp_path / "remember.lua"
    script.write_text(
        "function dovecot_lua_notify_begin_txn(user) return {user = user} end\n"
        "function dovecot_lua_notify_end_txn(ctx) end\n"
        "function dovecot_lua_notify_event_message_new(ctx, event)\n"
        "  ctx.user:metadata_set('/private/last', ctx.user:plugin_getenv('push_lua_tag')\n"
        "    .. ' ' .. event.subject)\n"
        "end\n"
    )
    argv = ["lua", "run", str(script), "-c", str(config), "--user", "alice",
            "--field", "subject=Hi"]
    assert await asyncio.to_thread(main, argv) == 0
    store = open_store(load_settings(config).settings)
    try:
        assert await store.get_metadata("alice", None, "/private/last") == "from-config Hi"
    finally:
        await asyncio.to_thread(store.close)


@pytest.mark.parametrize(
    ("handler", "end_txn", "failed"),
    [
        ("error('no endpoint')", "", "dovecot_lua_notify_event_message_new(ctx, event["),
        ("", "while true do end", "dovecot_lua_notify_end_txn(ctx, true)"),
    ],
)
def test_run_fails_when_a_call_fails_or_hits_a_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], handler: str, end_txn: str, failed: str
) -> None:
    script = tmp_path / "failing.lua"
    script.write_text(
        "function dovecot_lua_notify_begin_txn(user) return {} end\n"
        f"function dovecot_lua_notify_event_message_new(ctx, event) {handler} end\n"
        f"function dovecot_lua_notify_end_txn(ctx) {end_txn} end\n"
    )
    assert main(["lua", "run", str(script)]) == 1
    err = capsys.readouterr().err
    assert f"failed: {failed}" in err


async def test_run_with_a_configuration_uses_the_configured_driver_options(
    tmp_path: Path,
) -> None:
    """`lua_path`, limits and lua_settings come from the configured lua driver."""
    from mailpush.config import load_settings
    from mailpush.server import open_store
    from tests.conftest import write_config

    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "tagger.lua").write_text("return {tag = 'from-module'}\n")
    script = tmp_path / "tagged.lua"
    script.write_text(
        "local tagger = require 'tagger'\n"
        "function dovecot_lua_notify_begin_txn(user) return {user = user} end\n"
        "function dovecot_lua_notify_end_txn(ctx) end\n"
        "function dovecot_lua_notify_event_message_new(ctx, event)\n"
        "  ctx.user:metadata_set('/private/tag', tagger.tag .. ' ' .. _VERSION)\n"
        "end\n"
    )
    config = write_config(tmp_path, (
        "plugin {\n"
        f"  push_notification_driver = lua:file={script} lua_path={modules} lua_version=5.3\n"
        "}\n"
    ))
    argv = ["lua", "run", str(script), "-c", str(config), "--user", "alice"]
    assert await asyncio.to_thread(main, argv) == 0
    store = open_store(load_settings(config).settings)
    try:
        assert await store.get_metadata("alice", None, "/private/tag") == "from-module Lua 5.3"
    finally:
        await asyncio.to_thread(store.close)
