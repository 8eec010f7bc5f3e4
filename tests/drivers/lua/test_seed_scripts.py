"""Both example scripts of Dovecot's Lua push documentation, unchanged, against a real endpoint.

The fixtures simple_http.lua and events_http.lua are those two examples,
verbatim. The expected bodies are the ones real Dovecot 2.3.19 sent for the
same message (docs/dovecot-reference.md#http-requests-of-the-example-scripts),
with one deliberate difference: numbers are Lua integers (`recent=1`,
Dovecot: `1.0`; docs/migrating-from-dovecot.md#lua-push-scripts).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import (
    FIXTURES,
    PLAIN_MESSAGE,
    deliver,
    imap_append,
    imap_status,
    lua_server_config,
)

#: Dovecot's documentation page the examples come from (push-notification-lua.md) is not
#: part of the repository. Only the check that the fixtures are still verbatim copies of it
#: reads it: from $MAILPUSH_SHARED_DIR/seeds/, by default from a `shared` directory beside
#: the checkout; without it that one test is skipped, and the others run.
SHARED_DIR = Path(
    os.environ.get("MAILPUSH_SHARED_DIR", Path(__file__).resolve().parents[4] / "shared")
)
SEED = SHARED_DIR / "seeds" / "push-notification-lua.md"

SIMPLE_BODY = (
    "from=Plain%20Sender%20%3cplain%40example%2enet%3e&to=alice%40example%2eorg"
    "&subject=Hello%20push&snippet=Body%20line%20one%2e%20Body%20line%20two%2e&user={user}"
)
EVENTS_MAIL_BODY = (
    "mailbox=INBOX&from=Plain%20Sender%20%3cplain%40example%2enet%3e&subject=Hello%20push"
)


def test_fixtures_are_the_seed_examples_unchanged() -> None:
    if not SEED.exists():
        pytest.skip(
            f"{SEED} not found: this test compares the fixtures simple_http.lua and"
            " events_http.lua with a copy of Dovecot's Lua push documentation page, which is"
            " not part of the repository; to run it, set MAILPUSH_SHARED_DIR to a directory"
            " holding seeds/push-notification-lua.md"
        )
    examples = re.findall(r"```lua:line-numbers\n(.*?)```", SEED.read_text(), re.DOTALL)
    assert (FIXTURES / "simple_http.lua").read_text() == examples[0]
    assert (FIXTURES / "events_http.lua").read_text() == examples[1]


async def start(make_server: Callable[..., object], script: str, url: str) -> MailpushServer:
    server = await make_server(lua_server_config(FIXTURES / script, url))  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


async def test_simple_script_posts_one_form_per_recipient_of_a_delivery(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, "simple_http.lua", endpoint.url)
    await asyncio.to_thread(deliver, server, ["alice@example.org", "bob@example.org"])
    received = await endpoint.wait_for(2)
    await asyncio.sleep(0.3)
    assert len(endpoint.received) == 2
    assert sorted(r.body.decode() for r in received) == [
        SIMPLE_BODY.format(user="alice"), SIMPLE_BODY.format(user="bob")
    ]
    for request in received:
        assert request.method == "POST"
        assert request.path == "/hook"
        # Dovecot sends neither; aiohttp would add both by default.
        headers = {name.lower() for name in request.headers}
        assert "content-type" not in headers
        assert "user-agent" not in headers


async def test_simple_script_posts_for_an_imap_append(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, "simple_http.lua", endpoint.url)
    await asyncio.to_thread(imap_append, server, "alice", PLAIN_MESSAGE)
    (request,) = await endpoint.wait_for(1)
    assert request.body.decode() == SIMPLE_BODY.format(user="alice")
    await asyncio.sleep(0.3)
    assert len(endpoint.received) == 1


async def test_simple_script_sends_empty_fields_for_a_message_without_headers(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, "simple_http.lua", endpoint.url)
    await asyncio.to_thread(deliver, server, ["carol"], b"\r\njust a body\r\n")
    (request,) = await endpoint.wait_for(1)
    assert request.body == b"from=&to=&subject=&snippet=just%20a%20body&user=carol"


async def test_events_script_posts_the_mail_then_the_mailbox_status(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, "events_http.lua", endpoint.url)
    await asyncio.to_thread(deliver, server, ["alice"])
    mail, status = await endpoint.wait_for(2)
    assert mail.body.decode() == EVENTS_MAIL_BODY
    assert status.body == b"mailbox=INBOX&recent=1&unseen=1&messages=1"
    for request in (mail, status):
        content_type = {k.lower(): v for k, v in request.headers.items()}["content-type"]
        assert content_type == "application/x-www-form-url.escaped"

    await asyncio.to_thread(deliver, server, ["alice"])
    await endpoint.wait_for(4)
    assert endpoint.received[3].body == b"mailbox=INBOX&recent=2&unseen=2&messages=2"


async def test_events_script_counts_match_imap_status_after_an_append(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, "events_http.lua", endpoint.url)
    await asyncio.to_thread(deliver, server, ["alice"])
    await endpoint.wait_for(2)
    await asyncio.to_thread(imap_append, server, "alice", PLAIN_MESSAGE, r"(\Seen)")
    await endpoint.wait_for(4)
    append_mail, append_status = endpoint.received[2:4]
    assert append_mail.body.decode() == EVENTS_MAIL_BODY
    fields = dict(pair.split("=") for pair in append_status.body.decode().split("&"))
    assert fields["messages"] == "2"
    assert fields["unseen"] == "1"
    status = await asyncio.to_thread(imap_status, server, "alice")
    counts = dict(re.findall(rb"(MESSAGES|RECENT|UNSEEN) (\d+)", status))
    assert counts[b"MESSAGES"].decode() == fields["messages"]
    assert counts[b"UNSEEN"].decode() == fields["unseen"]
    assert counts[b"RECENT"].decode() == fields["recent"]


async def test_events_script_logs_its_event_lines(
    endpoint: HttpReceiver, make_server: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    server = await start(make_server, "events_http.lua", endpoint.url)
    await asyncio.to_thread(deliver, server, ["alice"])
    await endpoint.wait_for(2)
    await asyncio.sleep(0.1)
    messages = caplog.messages
    assert "lua: alice: Mail notify status 200" in messages
    assert "lua: alice: Mailbox notify status 200" in messages


async def test_simple_script_runs_unchanged_in_a_2_4_block_reading_lua_settings(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    """The script asks `user:plugin_getenv("push_lua_url")`; in 2.4 the URL lives in the
    block's `lua_settings`, which plugin_getenv falls back to (expanded per user)."""
    config = (
        "push_notification lua {\n"
        f"  lua_file = {FIXTURES / 'simple_http.lua'}\n"
        "  lua_settings {\n"
        f"    push_lua_url = {endpoint.url}?for=%n\n"
        "  }\n"
        "}\n"
    )
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(deliver, server, ["alice@example.org"])
    (request,) = await endpoint.wait_for(1)
    assert request.body.decode() == SIMPLE_BODY.format(user="alice")
    assert request.path == "/hook"
