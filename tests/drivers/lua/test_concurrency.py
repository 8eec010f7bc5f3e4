"""submit() never blocks: a slow endpoint delays only the script that waits for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from mailpush.auth import add_user
from mailpush.server import MailpushServer
from tests.support.http_receiver import HttpReceiver

from .conftest import FIXTURES, DriverFactory, deliver, lua_server_config
from .protocol_helpers import message_new, run, transaction

USERS = [f"user{n}" for n in range(8)]


async def test_a_slow_endpoint_does_not_serialise_different_users(
    make_server: Callable[..., object], tmp_path: Path
) -> None:
    slow = HttpReceiver(delay=0.2)
    await slow.start()
    try:
        for name in ("alice", "bob", "carol", *USERS):
            add_user(tmp_path / "users", name, "secret", "PLAIN")
        config = lua_server_config(FIXTURES / "simple_http.lua", slow.url, imap=False)
        server = await make_server(config)  # type: ignore[operator]
        assert isinstance(server, MailpushServer)
        started = time.perf_counter()
        await asyncio.to_thread(deliver, server, USERS)
        delivered = time.perf_counter() - started
        await slow.wait_for(len(USERS))
        elapsed = time.perf_counter() - started
    finally:
        await slow.stop()
    assert delivered < 0.2, "LMTP must not wait for the push script"
    # One after the other this would take 8 x 0.2 s.
    assert elapsed < 0.8
    assert sorted(r.body.decode().rsplit("=", 1)[1] for r in slow.received) == USERS


async def test_scripts_of_many_users_wait_for_their_requests_at_the_same_time(
    make_driver: DriverFactory,
) -> None:
    slow = HttpReceiver(delay=0.2)
    await slow.start()
    try:
        driver = await make_driver(
            (FIXTURES / "simple_http.lua").read_text(), plugin={"push_lua_url": slow.url}
        )
        users = [f"u{n}" for n in range(20)]
        started = time.perf_counter()
        await asyncio.gather(*(run(driver, transaction(user, message_new())) for user in users))
        elapsed = time.perf_counter() - started
    finally:
        await slow.stop()
    assert len(slow.received) == 20
    assert elapsed < 0.6


async def test_one_slow_endpoint_serves_as_many_users_at_once_as_the_push_concurrency(
    make_driver: DriverFactory,
) -> None:
    """Dovecot's documented setup: one URL for everyone. The shared HTTP client must not queue
    requests to that one host below mailpush_push_concurrency (64 by default)."""
    slow = HttpReceiver(delay=0.5)
    await slow.start()
    try:
        driver = await make_driver(
            (FIXTURES / "simple_http.lua").read_text(), plugin={"push_lua_url": slow.url}
        )
        users = [f"u{n}" for n in range(60)]
        for user in users:
            await driver.state_for(user)
        started = time.perf_counter()
        await asyncio.gather(*(run(driver, transaction(user, message_new())) for user in users))
        elapsed = time.perf_counter() - started
    finally:
        await slow.stop()
    assert len(slow.received) == 60
    # 32 connections per host (as before) would take two rounds: 1 s.
    assert elapsed < 0.9
