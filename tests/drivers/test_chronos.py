"""The chronos driver, end to end: LMTP delivery → outbox → PUT to an OX Chronos stand-in."""

from __future__ import annotations

import asyncio
import json
import logging
import smtplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.auth import add_user
from mailpush.config import load_settings
from mailpush.dispatch import FrameworkServices
from mailpush.drivers import driver_configs
from mailpush.drivers.chronos import ChronosDriver
from mailpush.errors import SettingError
from mailpush.server import MailpushServer
from mailpush.store import SqliteStore, flags
from tests.conftest import USERS, lmtp_port, write_config
from tests.drivers.calendar_messages import ics_attachment, invite, plain
from tests.drivers.ox_endpoints import LOGIN, PASSWORD_IN_URL, OxReceiver

FAST_RETRIES = "mailpush_push_retry_initial = 100ms\nmailpush_push_retry_max_interval = 500ms\n"
#: Chronos's own backoff (30 s, then doubling) would outlast the tests.
FAST_CHRONOS_RETRIES = "retry_initial=100ms retry_max_interval=500ms"


def deliver(server: MailpushServer, raw: bytes, rcpt: str = "alice") -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("organizer@example.net")
        client.rcpt(rcpt)
        code, _ = client.data(raw)
    assert code == 250


def chronos_config(url: str, options: str = "", extra: str = "", plugins: str = "") -> str:
    return (
        "mail_plugins = $mail_plugins notify push_notification push_notification_chronos"
        f"{plugins}\n"
        f"plugin {{\n  push_notification_driver = chronos:url={url} {FAST_CHRONOS_RETRIES}"
        f" {options}\n{extra}}}\n"
        + FAST_RETRIES
    )


@pytest.fixture
async def receiver() -> AsyncIterator[OxReceiver]:
    endpoint = OxReceiver("chronos")
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


async def start(make_server: Callable[..., object], config: str) -> MailpushServer:
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


async def test_chronos_puts_an_itip_invite_byte_exact_with_basic_auth(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, chronos_config(receiver.url()))
    raw = invite()
    await asyncio.to_thread(deliver, server, raw)
    (request,) = await receiver.wait_for(1)
    assert receiver.rejected == []
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    document = request.json()
    assert document["body"].encode("utf-8") == raw
    assert server.store is not None
    assert await server.store.raw_message("alice", "INBOX", 1) == raw
    escaped_body = json.dumps(raw.decode("utf-8"), ensure_ascii=False).encode("utf-8")
    assert request.raw == (
        b'{"user":"alice","event":"MessageNew","folder":"INBOX","body":' + escaped_body + b"}"
    )


async def test_chronos_skips_plain_mail_and_oversized_invites(
    receiver: OxReceiver, make_server: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailpush.drivers.chronos")
    server = await start(make_server, chronos_config(receiver.url(), "msg_max_size=4k"))
    await asyncio.to_thread(deliver, server, plain())
    await asyncio.to_thread(deliver, server, invite("<big@example.net>", padding=5000))
    await asyncio.to_thread(deliver, server, invite("<small@example.net>"))
    (request,) = await receiver.wait_for(1)
    assert "<small@example.net>" in request.json()["body"]
    await asyncio.sleep(0.3)
    assert len(receiver.accepted) == 1 and receiver.attempts == 1
    assert "Mail exceeds configured max size" in caplog.text
    assert "Mail does not contain calendar invite" in caplog.text
    assert server.store is not None
    # Filtered while committing: nothing for them ever reached the outbox.
    (stats,) = await server.store.outbox.stats(0.0)
    assert (stats.driver, stats.done + stats.pending + stats.inflight) == ("chronos", 1)


async def test_chronos_detects_an_ics_attachment_with_a_generic_type(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, chronos_config(receiver.url()))
    await asyncio.to_thread(deliver, server, ics_attachment())
    (request,) = await receiver.wait_for(1)
    assert request.json()["body"].encode() == ics_attachment()


async def test_chronos_pushes_one_message_id_once_even_after_a_restart(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    config = chronos_config(receiver.url())
    first = await start(make_server, config)
    await asyncio.to_thread(deliver, first, invite("<once@example.net>"))
    await receiver.wait_for(1)
    await first.stop()

    second = await start(make_server, config)
    await asyncio.to_thread(deliver, second, invite("<once@example.net>"))
    await asyncio.to_thread(deliver, second, invite("<other@example.net>"))
    requests = await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert [("<once@" in r.json()["body"], "<other@" in r.json()["body"]) for r in requests] == [
        (True, False),
        (False, True),
    ]
    assert len(receiver.accepted) == 2
    assert second.store is not None
    assert (await second.store.status("alice", "INBOX")).messages == 3


async def test_chronos_pushes_the_same_invite_for_each_user(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, chronos_config(receiver.url()))
    await asyncio.to_thread(deliver, server, invite("<team@example.net>"), "alice")
    await asyncio.to_thread(deliver, server, invite("<team@example.net>"), "bob")
    requests = await receiver.wait_for(2)
    assert sorted(r.json()["user"] for r in requests) == ["alice", "bob"]


async def test_chronos_ignores_a_second_copy_filed_by_sieve(
    receiver: OxReceiver, make_server: Callable[..., object], tmp_path: Path
) -> None:
    script = tmp_path / "before.sieve"
    script.write_text('require ["fileinto", "mailbox"];\nfileinto :create "Invites";\nkeep;\n')
    config = chronos_config(receiver.url(), extra=f"  sieve_before = {script}\n", plugins=" sieve")
    server = await start(make_server, config)
    await asyncio.to_thread(deliver, server, invite("<copied@example.net>"))
    await asyncio.to_thread(deliver, server, invite("<barrier@example.net>"))
    requests = await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert server.store is not None
    assert (await server.store.status("alice", "Invites")).messages == 2
    assert (await server.store.status("alice", "INBOX")).messages == 2
    assert len(receiver.accepted) == 2
    assert ["<copied@" in r.json()["body"] for r in requests] == [True, False]
    assert requests[0].json()["folder"] == "Invites"


async def test_chronos_expands_user_variables_in_the_url(
    receiver: OxReceiver, make_server: Callable[..., object], tmp_path: Path
) -> None:
    users = tmp_path / "users"
    for name in (*USERS, "dave@example.org"):
        add_user(users, name, "secret", "PLAIN")
    url = receiver.url(suffix="?user=%u&local=%n&domain=%d&long=%{user}")
    server = await start(make_server, chronos_config(url))
    await asyncio.to_thread(deliver, server, invite("<d@example.net>"), "Dave@Example.org")
    await asyncio.to_thread(deliver, server, invite("<b@example.net>"), "bob@example.org")
    requests = await receiver.wait_for(2)
    by_user = {request.json()["user"]: request.query for request in requests}
    assert by_user == {
        "dave@example.org": {
            "user": "dave@example.org", "local": "dave", "domain": "example.org",
            "long": "dave@example.org",
        },
        # A passwd-file entry without a domain: bob@ finds `bob`, whose domain is empty.
        "bob": {"user": "bob", "local": "bob", "domain": "", "long": "bob"},
    }


#: The 2.4 / Pro 3.1 `mail_plugins { }` block of Dovecot Pro's Chronos documentation.
MAIL_PLUGINS_2_4 = (
    "mail_plugins {\n  notify = yes\n  push_notification = yes\n"
    "  push_notification_chronos = yes\n}\n"
)


async def test_chronos_pushes_with_the_seed_block_form(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    config = (
        MAIL_PLUGINS_2_4
        + "push_notification chronos {\n  driver = chronos\n"
        f"  url = {receiver.url()}\n  msg_max_size = 500kb\n}}\n"
        + FAST_RETRIES
    )
    server = await start(make_server, config)
    raw = invite()
    await asyncio.to_thread(deliver, server, raw)
    (request,) = await receiver.wait_for(1)
    assert receiver.rejected == []
    assert request.json() == {
        "user": "alice", "event": "MessageNew", "folder": "INBOX", "body": raw.decode("utf-8"),
    }


async def test_chronos_pushes_with_the_2_4_top_level_settings(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    config = (
        MAIL_PLUGINS_2_4
        + f"push_notification_chronos_url = {receiver.url()}\n"
        "push_notification_chronos_msg_max_size = 4k\n"
        "push_notification chronos {\n}\n"
        + FAST_RETRIES
    )
    server = await start(make_server, config)
    await asyncio.to_thread(deliver, server, invite("<big@example.net>", padding=5000))
    await asyncio.to_thread(deliver, server, invite("<small@example.net>"))
    (request,) = await receiver.wait_for(1)
    assert "<small@example.net>" in request.json()["body"]
    await asyncio.sleep(0.3)
    assert receiver.rejected == [] and len(receiver.accepted) == 1


async def test_chronos_retries_a_refusing_endpoint_and_delivers_once(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    receiver.fail_next = 5
    server = await start(make_server, chronos_config(receiver.url(), "max_retries=2"))
    await asyncio.to_thread(deliver, server, invite())
    (request,) = await receiver.wait_for(1, timeout=20)
    assert receiver.attempts == 6
    assert request.json()["user"] == "alice"


async def test_chronos_gives_up_on_a_refused_request_as_a_dead_letter(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    wrong = receiver.url(password="wrong")
    server = await start(make_server, chronos_config(wrong))
    await asyncio.to_thread(deliver, server, invite())
    assert server.store is not None
    for _ in range(100):
        dead = await server.store.outbox.dead_letters()
        if dead:
            break
        await asyncio.sleep(0.05)
    (letter,) = dead
    assert receiver.rejected == [(401, "Basic authentication required")]
    assert "answered 401" in (letter.last_error or "")
    assert "wrong" not in (letter.last_error or "") and f"{LOGIN}:***@" in (letter.last_error or "")


async def test_chronos_sends_nothing_for_an_invite_expunged_before_its_retry(
    receiver: OxReceiver, make_server: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.chronos")
    receiver.fail_next = 1_000_000  # down until the invite is gone
    server = await start(make_server, chronos_config(receiver.url(), "delivery_attempts=0"))
    await asyncio.to_thread(deliver, server, invite())
    for _ in range(100):
        if receiver.attempts >= 2:
            break
        await asyncio.sleep(0.02)
    assert server.store is not None
    await server.store.update_flags("alice", "INBOX", [1], "add", flags.DELETED)
    await server.store.expunge("alice", "INBOX", [1])
    # A retry that read the message just before the expunge must still meet a refusal.
    await asyncio.sleep(0.6)
    receiver.fail_next = 0
    await asyncio.to_thread(deliver, server, invite("<after@example.net>"))
    (request,) = await receiver.wait_for(1, timeout=10)
    assert "<after@example.net>" in request.json()["body"]
    assert "was expunged before its push notification could be sent" in caplog.text


# --- settings ---------------------------------------------------------------------------


def build(tmp_path: Path, config: str) -> ChronosDriver:
    path = write_config(tmp_path, config)
    settings = load_settings(path).settings
    store = SqliteStore(tmp_path / "unused.sqlite")
    services = FrameworkServices(store, settings.plugin, lambda user: {})
    (driver_config,) = driver_configs(settings)
    driver = ChronosDriver(driver_config, services)
    return driver


def test_chronos_reads_the_2_3_driver_options(tmp_path: Path) -> None:
    driver = build(
        tmp_path,
        "plugin {\n  push_notification_driver = chronos:url=https://u:p@ox:8009/x"
        " msg_max_size=500kb max_retries=3 timeout=1500\n}\n",
    )
    endpoint = driver.endpoint
    assert (driver.msg_max_size, endpoint.attempts, endpoint.timeout) == (500 * 1024, 4, 1.5)
    assert driver.endpoint.url.expand("alice") == "https://u:p@ox:8009/x"


def test_chronos_reads_the_seed_block_form(tmp_path: Path) -> None:
    driver = build(
        tmp_path,
        "push_notification chronos {\n  driver = chronos\n"
        f"  url = http://{LOGIN}:{PASSWORD_IN_URL}@node1.domain.tld:8009/chronos/v1/itip/pushmail\n"
        "  msg_max_size = 500kb\n}\n",
    )
    assert driver.msg_max_size == 500 * 1024
    assert (driver.endpoint.attempts, driver.endpoint.timeout) == (2, 2.0)


def test_chronos_reads_the_plugin_keys(tmp_path: Path) -> None:
    driver = build(
        tmp_path,
        "plugin {\n  push_notification_driver = chronos\n"
        "  push_notification_chronos_url = https://ox.example/chronos/v1/itip/pushmail\n"
        "  push_notification_chronos_msg_max_size = 2m\n}\n",
    )
    assert driver.msg_max_size == 2 * 1024 * 1024
    assert driver.endpoint.url.expand("alice") == "https://ox.example/chronos/v1/itip/pushmail"


def test_chronos_block_values_win_over_the_2_4_top_level_settings(tmp_path: Path) -> None:
    config = (
        "push_notification_chronos_url = https://top:pw@ox.example/top\n"
        "push_notification_chronos_msg_max_size = 2m\n"
        "push_notification chronos {\n  url = https://block:pw@ox.example/block\n"
        "  msg_max_size = 500kb\n}\n"
    )
    driver = build(tmp_path, config)
    assert driver.endpoint.url.expand("alice") == "https://block:pw@ox.example/block"
    assert driver.msg_max_size == 500 * 1024
    loaded = load_settings(tmp_path / "mailpush.conf")
    assert not any("push_notification_chronos" in warning for warning in loaded.warnings)


def test_chronos_2_4_top_level_settings_reach_only_chronos_blocks(tmp_path: Path) -> None:
    config = (
        "push_notification_chronos_url = https://u:pw@ox.example/x\n"
        "push_notification chronos {\n}\npush_notification dlog {\n}\n"
    )
    settings = load_settings(write_config(tmp_path, config)).settings
    chronos, dlog = driver_configs(settings)
    assert chronos.options == {"push_notification_chronos_url": "https://u:pw@ox.example/x"}
    assert dlog.options == {}


def test_chronos_defaults_to_one_mebibyte(tmp_path: Path) -> None:
    driver = build(tmp_path, "plugin {\n  push_notification_driver = chronos:url=http://ox/x\n}\n")
    assert driver.msg_max_size == 1024 * 1024


SECRET = "hunter2secret"


@pytest.mark.parametrize(
    ("driver_value", "message"),
    [
        ("chronos", "chronos url: Driver requires the url parameter"),
        (f"chronos:url=ftp://u:{SECRET}@ox/x", "chronos url: an http:// or https:// URL"),
        (f"chronos:url=u:{SECRET}@ox/x", "chronos url: an http:// or https:// URL"),
        (f"chronos:url=http://u:{SECRET}@ox:99999/x", "chronos url: not a valid URL"),
        (f"chronos:url=http://u:{SECRET}@/x", "chronos url: not a valid URL"),
        (
            f"chronos:url=http://u:{SECRET}@ox/x msg_max_size=lots",
            "chronos msg_max_size: expected a size",
        ),
        (
            f"chronos:url=http://u:{SECRET}@ox/x msg_max_size=0",
            "chronos msg_max_size: must be more than 0",
        ),
        (
            f"chronos:url=http://u:{SECRET}@ox/x max_retries=-1",
            "chronos max_retries: expected a number",
        ),
        (f"chronos:url=http://u:{SECRET}@ox/%x", "chronos url: unknown variable '%x'"),
    ],
)
def test_chronos_refuses_bad_settings_naming_the_option(
    tmp_path: Path, driver_value: str, message: str
) -> None:
    with pytest.raises(SettingError) as raised:
        build(tmp_path, f"plugin {{\n  push_notification_driver = {driver_value}\n}}\n")
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "plugin {\n  push_notification_driver = chronos\n"
            f"  push_notification_chronos_url = ftp://u:{SECRET}@ox/x\n}}\n",
            "push_notification_chronos_url: an http:// or https:// URL is required (got "
            "ftp://u:***@ox/x)",
        ),
        (
            f"push_notification chronos {{\n  url = http://u:{SECRET}@ox:port/x\n}}\n",
            "chronos url: not a valid URL",
        ),
        (
            f"push_notification_chronos_url = u:{SECRET}@ox/x\npush_notification chronos {{\n}}\n",
            "chronos push_notification_chronos_url: an http:// or https:// URL is required "
            "(got u:***@ox/x)",
        ),
    ],
)
def test_chronos_masks_the_password_of_a_bad_url_in_every_form(
    tmp_path: Path, config: str, message: str
) -> None:
    with pytest.raises(SettingError) as raised:
        build(tmp_path, config)
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)
