"""The HTTP drivers against endpoints that misbehave: huge answers, slowness, one refusal.

- An answer's body is read up to `response_max_size` and the connection dropped.
- Chronos and OX send one notification a few times at most (`delivery_attempts`,
  default 3), and a request that timed out is not repeated at once.
- Chronos, OX and an unordered webhook never hold a user's later pushes behind a
  failing one; a webhook with `ordered = yes` does.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from mailpush.config import load_settings
from mailpush.dispatch import FrameworkServices, RetryPolicy
from mailpush.drivers import PushDriver, RetryOptions, default_registry, driver_configs
from mailpush.drivers.ox import OPT_IN_ENTRY
from mailpush.errors import SettingError
from mailpush.server import MailpushServer
from mailpush.store import SqliteStore
from tests.conftest import lmtp_port, write_config
from tests.drivers.calendar_messages import invite
from tests.support.http_receiver import HttpReceiver

#: What the endpoint below offers as one answer's body: 300 MB.
HUGE = 300 * 1024 * 1024
CHUNK = 64 * 1024
FAST_RETRIES = "retry_initial=50ms retry_max_interval=100ms"


def deliver(server: MailpushServer, raw: bytes, rcpt: str = "alice") -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("organizer@example.net")
        client.rcpt(rcpt)
        code, _ = client.data(raw)
    assert code == 250


def mail(subject: str) -> bytes:
    return f"From: bob@example.net\r\nSubject: {subject}\r\n\r\nHello\r\n".encode()


def driver_config(driver: str, url: str, options: str = "") -> str:
    return (
        "mail_plugins = $mail_plugins notify push_notification\n"
        f"plugin {{\n  push_notification_driver = {driver}:url={url} {options}\n}}\n"
    )


async def start(make_server: Callable[..., object], config: str) -> MailpushServer:
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


async def dead_letters(server: MailpushServer, count: int, timeout: float = 10) -> list[str]:
    assert server.store is not None
    async with asyncio.timeout(timeout):
        while True:
            letters = await server.store.outbox.dead_letters()
            if len(letters) >= count:
                return [letter.last_error or "" for letter in letters]
            await asyncio.sleep(0.05)


# --- answers too big to read ------------------------------------------------------------


async def test_webhook_reads_a_300mb_error_answer_only_up_to_its_cap_and_drops_it(
    make_server: Callable[..., object],
) -> None:
    sent: list[int] = []

    async def huge_error(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(status=503)
        response.content_length = HUGE
        await response.prepare(request)
        written = 0
        try:
            while written < HUGE:
                await response.write(b"E" * CHUNK)
                written += CHUNK
        except (ConnectionError, RuntimeError):
            pass  # the driver hung up
        finally:
            sent.append(written)
        return response

    endpoint = HttpReceiver(huge_error)
    await endpoint.start()
    try:
        server = await start(make_server, driver_config(
            "webhook", endpoint.url, f"delivery_attempts=2 events=MessageNew {FAST_RETRIES}"
        ))
        await asyncio.to_thread(deliver, server, mail("hello"))
        (error,) = await dead_letters(server, 1)
        await endpoint.until(lambda: len(sent) == 2)
    finally:
        await endpoint.stop()
    # 64 KiB were read; what else got out before the drop sat in socket buffers.
    assert max(sent) < 16 * 1024 * 1024, sent
    assert "answered 503 Service Unavailable: EEEE" in error
    assert "gave up after 2 attempts (delivery_attempts = 2)" in error
    assert len(error) < 400


async def test_webhook_response_max_size_option_sets_the_cap(
    make_server: Callable[..., object],
) -> None:
    async def two_kib(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=500, body=b"x" * 2048)

    endpoint = HttpReceiver(two_kib)
    await endpoint.start()
    try:
        # Below the body size: the answer is cut, still a retryable 500.
        server = await start(make_server, driver_config(
            "webhook", endpoint.url,
            f"response_max_size=1k delivery_attempts=1 events=MessageNew {FAST_RETRIES}",
        ))
        await asyncio.to_thread(deliver, server, mail("hello"))
        (error,) = await dead_letters(server, 1)
    finally:
        await endpoint.stop()
    assert "answered 500 Internal Server Error: xxx" in error


# --- how often one notification is sent ---------------------------------------------------


async def test_chronos_endpoint_slower_than_the_timeout_gets_the_invite_three_times_at_most(
    make_server: Callable[..., object],
) -> None:
    async def slow(request: web.Request, body: bytes) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return web.json_response({"success": True})

    endpoint = HttpReceiver(slow)
    await endpoint.start()
    try:
        # timeout 200 (ms), max_retries left at its default of 1.
        server = await start(make_server, driver_config(
            "chronos", endpoint.url, f"timeout=200 {FAST_RETRIES}"
        ))
        await asyncio.to_thread(deliver, server, invite())
        (error,) = await dead_letters(server, 1)
        await asyncio.sleep(0.5)
    finally:
        await endpoint.stop()
    assert len(endpoint.arrivals) == 3
    assert "no answer within 0.2s (timeout)" in error
    assert "delivery_attempts = 3" in error


async def test_ox_gives_a_refused_notification_three_attempts_in_all(
    make_server: Callable[..., object],
) -> None:
    async def refuse(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=503, text="down")

    endpoint = HttpReceiver(refuse)
    await endpoint.start()
    try:
        server = await start(make_server, driver_config(
            "ox", endpoint.url, f"max_retries=0 {FAST_RETRIES}"
        ))
        await opt_in(server, "alice")
        await asyncio.to_thread(deliver, server, mail("one"))
        await dead_letters(server, 1)
        await asyncio.sleep(0.5)
    finally:
        await endpoint.stop()
    assert len(endpoint.arrived_with(b'"subject":"one"')) == 3


# --- one failing push and the user's later ones ----------------------------------------------


def refusing(marker: bytes) -> tuple[HttpReceiver, list[bool]]:
    """An endpoint that answers 503 to bodies holding `marker` while `down[0]`."""
    down = [True]

    async def answer(request: web.Request, body: bytes) -> web.StreamResponse:
        if marker in body and down[0]:
            return web.Response(status=503, text="not now")
        return web.json_response({"success": True})

    return HttpReceiver(answer), down


async def test_a_refused_chronos_invite_does_not_hold_back_the_next_one(
    make_server: Callable[..., object],
) -> None:
    endpoint, _ = refusing(b"first-invite")
    await endpoint.start()
    try:
        server = await start(make_server, driver_config("chronos", endpoint.url))
        await asyncio.to_thread(deliver, server, invite("<first-invite@example.net>"))
        await endpoint.until(lambda: bool(endpoint.arrived_with(b"first-invite")))
        await asyncio.to_thread(deliver, server, invite("<second-invite@example.net>"))
        # The first waits 30 s for its retry (Chronos's default backoff).
        await endpoint.until(lambda: bool(endpoint.accepted_with(b"second-invite")), 5)
    finally:
        await endpoint.stop()


async def opt_in(server: MailpushServer, user: str) -> None:
    await asyncio.to_thread(deliver, server, mail("creates INBOX"), user)
    assert server.store is not None
    await server.store.set_metadata(user, None, OPT_IN_ENTRY, "user=4@464646669")


async def test_a_refused_ox_notification_does_not_hold_back_the_next_one(
    make_server: Callable[..., object],
) -> None:
    endpoint, _ = refusing(b"first mail")
    await endpoint.start()
    try:
        server = await start(make_server, driver_config("ox", endpoint.url))
        await opt_in(server, "alice")
        await asyncio.to_thread(deliver, server, mail("first mail"))
        await endpoint.until(lambda: bool(endpoint.arrived_with(b"first mail")))
        await asyncio.to_thread(deliver, server, mail("second mail"))
        await endpoint.until(lambda: bool(endpoint.accepted_with(b"second mail")), 5)
    finally:
        await endpoint.stop()


async def test_an_unordered_webhook_sends_later_transactions_past_a_refused_one(
    make_server: Callable[..., object],
) -> None:
    endpoint, _ = refusing(b"first mail")
    await endpoint.start()
    try:
        server = await start(make_server, driver_config(
            "webhook", endpoint.url, "events=MessageNew"
        ) + "mailpush_push_retry_initial = 30s\n")
        await asyncio.to_thread(deliver, server, mail("first mail"))
        await endpoint.until(lambda: bool(endpoint.arrived_with(b"first mail")))
        await asyncio.to_thread(deliver, server, mail("second mail"))
        await endpoint.until(lambda: bool(endpoint.accepted_with(b"second mail")), 5)
    finally:
        await endpoint.stop()


async def test_an_ordered_webhook_holds_later_transactions_behind_a_refused_one(
    make_server: Callable[..., object],
) -> None:
    endpoint, down = refusing(b"first mail")
    await endpoint.start()
    try:
        server = await start(make_server, driver_config(
            "webhook", endpoint.url, f"ordered=yes events=MessageNew {FAST_RETRIES}"
        ))
        await asyncio.to_thread(deliver, server, mail("first mail"))
        await asyncio.to_thread(deliver, server, mail("second mail"))
        await endpoint.until(lambda: len(endpoint.arrived_with(b"first mail")) >= 3)
        assert endpoint.arrived_with(b"second mail") == []
        down[0] = False
        await endpoint.until(lambda: bool(endpoint.accepted_with(b"second mail")))
    finally:
        await endpoint.stop()
    subjects = [b"first" if b"first mail" in body else b"second" for body in endpoint.accepted]
    assert subjects == [b"first", b"second"]


# --- the options ------------------------------------------------------------------------------


def built(tmp_path: Path, config: str) -> PushDriver:
    settings = load_settings(write_config(tmp_path, config)).settings
    services = FrameworkServices(SqliteStore(tmp_path / "unused.sqlite"), settings.plugin,
                                 lambda user: {})
    (config_of_driver,) = driver_configs(settings)
    return default_registry().get(config_of_driver.driver, "test")(config_of_driver, services)


def test_each_driver_has_its_retry_defaults_and_options_replace_them(tmp_path: Path) -> None:
    chronos = built(tmp_path, driver_config("chronos", "http://ox/x"))
    assert chronos.retry == RetryOptions(3, 30.0, 300.0, 3600.0)
    assert chronos.ordered is False
    ox = built(tmp_path, driver_config("ox", "http://ox/x"))
    assert ox.retry == RetryOptions(3, 10.0, 60.0, 900.0)
    webhook = built(tmp_path, driver_config("webhook", "http://h/x"))
    assert webhook.retry == RetryOptions() and webhook.ordered is False
    tuned = built(tmp_path, (
        "push_notification hook {\n  driver = webhook\n  url = http://h/x\n  ordered = yes\n"
        "  delivery_attempts = 5\n  retry_initial = 2s\n  max_age = 10min\n}\n"
    ))
    assert tuned.retry == RetryOptions(5, 2.0, None, 600.0) and tuned.ordered is True
    policy = RetryPolicy(initial=1.0, max_interval=300.0, max_age=86400.0)
    assert policy.with_options(tuned.retry) == RetryPolicy(2.0, 300.0, 600.0, max_attempts=5)


def test_a_bad_retry_option_stops_start_up_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="chronos delivery_attempts"):
        built(tmp_path, driver_config("chronos", "http://ox/x", "delivery_attempts=many"))
    with pytest.raises(SettingError, match="webhook response_max_size"):
        built(tmp_path, driver_config("webhook", "http://h/x", "response_max_size=0"))
