"""`dovecot.http.client`: Dovecot 2.4's option names and values, and URLs sent as built."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.drivers.lua.api.http_requests import HttpClientSettings, client_settings
from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import DriverFactory, deliver
from .protocol_helpers import message_new, run, transaction

SCRIPT_2_4 = """\
local json = require "cjson"
local client, endpoint, token

function script_init(settings)
  endpoint = settings.push_url
  token = settings.push_token
  client = dovecot.http.client {
    request_absolute_timeout = "1s",
    request_timeout = "500ms",
    request_max_attempts = 2,
    user_agent = "dovecot-push/2.4",
  }
  return 0
end

function dovecot_lua_notify_begin_txn(user)
  return {user = user.username, messages = {}}
end

function dovecot_lua_notify_event_message_new(ctx, event)
  table.insert(ctx.messages, {subject = event.subject, from = event.from_address})
end

function dovecot_lua_notify_end_txn(ctx)
  for _, message in ipairs(ctx.messages) do
    local request = client:request {
      url = endpoint .. "?user=" .. ctx.user .. "&token=" .. token,
      method = "POST",
    }
    request:add_header("Content-Type", "application/json")
    request:set_payload(json.encode(message))
    local response = request:submit()
    if response:status() ~= 200 then
      dovecot.i_error("push failed: " .. response:status() .. " " .. response:reason())
    end
  end
end
"""


async def test_a_2_4_script_configured_by_lua_settings_posts_what_it_builds(
    make_server: Callable[..., object], endpoint: HttpReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "push24.lua"
    script.write_text(SCRIPT_2_4)
    server = await make_server(textwrap.dedent(f"""\
        push_notification lua {{
          lua_file = {script}
          lua_settings {{
            push_url = {endpoint.url}
            push_token = a%3db%40c
          }}
        }}
    """))
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(
        deliver, server, ["alice"],
        b"From: carol@example.net\r\nSubject: Quarterly numbers\r\n\r\nbody\r\n",
    )
    (request,) = await endpoint.wait_for(1)
    assert request.method == "POST"
    assert request.raw_path == "/hook?user=alice&token=a%3db%40c"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "dovecot-push/2.4"
    assert request.json() == {"subject": "Quarterly numbers", "from": "carol@example.net"}


async def test_request_absolute_timeout_with_units_ends_a_stalled_request(
    make_driver: DriverFactory,
) -> None:
    stalled = HttpReceiver(delay=3.0)
    await stalled.start()
    try:
        driver = await make_driver(f"""
            local client = dovecot.http.client {{ request_absolute_timeout = "1s" }}
            function dovecot_lua_notify_begin_txn(user) return {{}} end
            function dovecot_lua_notify_event_message_new(ctx, event) end
            function dovecot_lua_notify_end_txn(ctx)
              local response = client:request({{url = "{stalled.url}"}}):submit()
              STATUS = response:status()
            end
        """)
        started = time.perf_counter()
        await run(driver, transaction("alice", message_new()))
        elapsed = time.perf_counter() - started
    finally:
        await stalled.stop()
    assert (await driver.state_for("alice")).runtime.globals[b"STATUS"] == 9008
    assert 0.9 < elapsed < 2.0


async def test_percent_escapes_reach_the_server_exactly_as_the_script_wrote_them(
    make_driver: DriverFactory, endpoint: HttpReceiver
) -> None:
    driver = await make_driver(f"""
        local client = dovecot.http.client {{}}
        function dovecot_lua_notify_begin_txn(user) return {{}} end
        function dovecot_lua_notify_event_message_new(ctx, event) end
        function dovecot_lua_notify_end_txn(ctx)
          client:request({{url = "{endpoint.url}/a%2fb?sig=abc%3d%3d&to=bob%40example.org&x=%7E"}})
            :submit()
        end
    """)
    await run(driver, transaction("alice", message_new()))
    assert [r.raw_path for r in endpoint.received] == [
        "/hook/a%2fb?sig=abc%3d%3d&to=bob%40example.org&x=%7E",
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"request_timeout": b"5s", "request_max_attempts": 3},
         HttpClientSettings(request_timeout=5.0, max_attempts=3)),
        ({"request_absolute_timeout": b"1s", "connect_timeout": b"250ms"},
         HttpClientSettings(absolute_timeout=1.0, connect_timeout=0.25)),
        ({"request_max_redirects": b"2", "auto_retry": b"no", "user_agent": b"ua/1"},
         HttpClientSettings(max_redirects=2, auto_retry=False, user_agent="ua/1")),
        ({"connect_backoff_time": b"1s", "max_connect_attempts": b"3", "max_idle_time": b"1min",
          "ssl_client_ca_file": b"/etc/ssl/ca.pem", "dns_client_socket_path": b"dns-client"},
         HttpClientSettings(retry_delay=1.0)),
        ({"request_timeout_msecs": 2000, "max_attempts": 2, "no_auto_redirect": True},
         HttpClientSettings(request_timeout=2.0, max_attempts=2)),
    ],
)
def test_options_are_read_with_dovecot_2_4_names_and_units_as_well_as_2_3s(
    options: dict[str, object], expected: HttpClientSettings
) -> None:
    assert client_settings((key.encode(), value) for key, value in options.items()) == expected
