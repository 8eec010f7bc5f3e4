"""Bad scripts: each failure is logged clearly, the mail is delivered, other users' and
other drivers' notifications go out as usual."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.errors import LuaScriptError
from mailpush.server import MailpushServer
from tests.conftest import free_port
from tests.http_endpoint import HttpEndpoint

from .conftest import FIXTURES, deliver, lua_server_config, until

MISBEHAVING = FIXTURES / "misbehaving.lua"


@pytest.fixture
async def webhook() -> AsyncIterator[HttpEndpoint]:
    ep = HttpEndpoint()
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
            if r.levelno >= logging.ERROR and r.name == "mailpush.push.lua"]


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
    endpoint: HttpEndpoint,
    webhook: HttpEndpoint,
    caplog: pytest.LogCaptureFixture,
    subject: str,
    options: str,
    line: int | None,
    reason: str,
) -> None:
    server = await start(make_server, endpoint.url, webhook.url, options)
    await asyncio.to_thread(deliver, server, ["alice", "bob"], message(subject))

    (bob,) = await endpoint.wait_for(1)
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
    webhook: HttpEndpoint,
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
