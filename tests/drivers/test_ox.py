"""The ox driver: opt-in by IMAP SETMETADATA, exact JSON for INBOX deliveries, nothing else."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import smtplib
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.dispatch import FrameworkServices
from mailpush.drivers import driver_configs
from mailpush.drivers.ox import OPT_IN_ENTRY, OxDriver, parse_opt_in
from mailpush.errors import SettingError
from mailpush.server import MailpushServer
from mailpush.store import DeliveryTarget, NewMessage, SqliteStore
from tests.conftest import free_port, lmtp_port, write_config
from tests.drivers.ox_endpoints import OxReceiver

OX_USER = "4@464646669"
MESSAGE = (
    b"From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= \"aus\" Bern\r\n"
    b"Message-ID: <ox-1@example.net>\r\n"
    b"\r\n"
    b"Hallo Alice,\r\nbis bald.\r\n"
)


@pytest.fixture
async def receiver() -> AsyncIterator[OxReceiver]:
    endpoint = OxReceiver("ox")
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def ox_config(url: str, options: str = "user_from_metadata") -> str:
    return textwrap.dedent(
        f"""\
        protocols = lmtp imap
        service imap-login {{
          inet_listener imap {{
            address = 127.0.0.1
            port = {free_port()}
          }}
          inet_listener imaps {{
            address = 127.0.0.1
            port = 0
          }}
        }}
        mail_plugins = $mail_plugins notify push_notification
        plugin {{
          push_notification_driver = ox:url={url} {options}
        }}
        mailpush_push_retry_initial = 100ms
        """
    )


async def start(make_server: Callable[..., object], config: str) -> MailpushServer:
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


def imap_port(server: MailpushServer) -> int:
    return next(item.port for item in server.listeners if item.service == "imap")


def set_metadata(server: MailpushServer, user: str, value: str | None) -> None:
    """SETMETADATA on the server entry, over IMAP as OX App Suite does it."""
    with imaplib.IMAP4("127.0.0.1", imap_port(server)) as imap:
        imap.login(user, "secret")
        written = "NIL" if value is None else f'"{value}"'
        typ, data = imap.xatom("SETMETADATA", '""', f"({OPT_IN_ENTRY} {written})")
        assert typ == "OK", data
        imap.logout()


def deliver(server: MailpushServer, rcpt: str, raw: bytes = MESSAGE) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("juergen@example.net")
        client.rcpt(rcpt)
        code, _ = client.data(raw)
    assert code == 250


async def test_ox_opt_in_by_setmetadata_sends_the_exact_json(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, ox_config(receiver.url()))
    await asyncio.to_thread(set_metadata, server, "alice", f"user={OX_USER}")
    await asyncio.to_thread(deliver, server, "alice")
    # `unseen` is counted when the request is made: let the first go before the second.
    await receiver.wait_for(1)
    await asyncio.to_thread(deliver, server, "alice")
    first, second = await receiver.wait_for(2)
    assert server.store is not None
    uidvalidity = (await server.store.status("alice", "INBOX")).uidvalidity
    expected = (
        '{"user":"4@464646669","event":"messageNew","folder":"INBOX",'
        f'"imap-uidvalidity":{uidvalidity},"imap-uid":1,'
        '"from":"=?UTF-8?Q?J=C3=BCrgen?= <juergen@example.net>",'
        '"subject":"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= \\"aus\\" Bern",'
        '"snippet":"Hallo Alice, bis bald.",'
        '"unseen":1}'
    ).encode()
    assert first.raw == expected
    assert first.ignored is None and second.ignored is None
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert (second.json()["imap-uid"], second.json()["unseen"]) == (2, 2)


async def test_ox_without_opt_in_sends_nothing(
    receiver: OxReceiver, make_server: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailpush.drivers.ox")
    server = await start(make_server, ox_config(receiver.url()))
    await asyncio.to_thread(set_metadata, server, "alice", f"user={OX_USER}")
    await asyncio.to_thread(deliver, server, "bob")
    await asyncio.sleep(0.3)
    await asyncio.to_thread(deliver, server, "alice")
    (request,) = await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert request.json()["user"] == OX_USER and len(receiver.accepted) == 1
    assert f"bob: Skipped because not active ({OPT_IN_ENTRY} METADATA not set)" in caplog.text


async def test_ox_ignores_other_folders_and_appends(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, ox_config(receiver.url()))
    assert server.store is not None
    await asyncio.to_thread(set_metadata, server, "alice", f"user={OX_USER}")
    # A delivery into another folder (as Sieve files it), and an APPEND to INBOX.
    await server.store.deliver("alice", MESSAGE, [DeliveryTarget("Work", create=True)])
    await server.store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    await asyncio.sleep(0.3)
    assert receiver.attempts == 0
    await asyncio.to_thread(deliver, server, "alice")
    (request,) = await receiver.wait_for(1)
    assert (request.json()["folder"], request.json()["imap-uid"]) == ("INBOX", 2)
    # Nothing but the INBOX delivery was even queued for the driver.
    (stats,) = await server.store.outbox.stats(0.0)
    assert stats.done + stats.pending + stats.inflight == 1


async def test_ox_sends_the_mailpush_user_unless_user_from_metadata(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(make_server, ox_config(receiver.url(), options=""))
    await asyncio.to_thread(set_metadata, server, "alice", f"user={OX_USER}")
    await asyncio.to_thread(deliver, server, "alice")
    (request,) = await receiver.wait_for(1)
    assert request.json()["user"] == "alice"
    # As with Dovecot: OX answers success but cannot act on a user without a context id.
    assert request.ignored == "user is not <userId>@<contextId>: 'alice'"


async def test_ox_opt_in_without_a_user_is_an_error_and_sends_nothing(
    receiver: OxReceiver, make_server: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    server = await start(make_server, ox_config(receiver.url()))
    await asyncio.to_thread(set_metadata, server, "alice", "folder=INBOX")
    await asyncio.to_thread(deliver, server, "alice")
    for _ in range(100):
        if "No user provided in config" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "alice: No user provided in config" in caplog.text
    assert receiver.attempts == 0


async def test_ox_opt_out_takes_effect_after_the_cache_lifetime(
    receiver: OxReceiver, make_server: Callable[..., object]
) -> None:
    server = await start(
        make_server, ox_config(receiver.url(), "user_from_metadata cache_lifetime=1500ms")
    )
    await asyncio.to_thread(set_metadata, server, "alice", f"user={OX_USER}")
    await asyncio.to_thread(deliver, server, "alice")
    await receiver.wait_for(1)
    await asyncio.to_thread(set_metadata, server, "alice", None)
    await asyncio.to_thread(deliver, server, "alice")  # within the lifetime: still cached
    await receiver.wait_for(2)
    await asyncio.sleep(1.6)
    await asyncio.to_thread(deliver, server, "alice")
    await asyncio.sleep(0.4)
    assert len(receiver.accepted) == 2


# --- settings and the opt-in value -----------------------------------------------------------


def build(tmp_path: Path, config: str) -> OxDriver:
    path = write_config(tmp_path, config)
    settings = load_settings(path).settings
    services = FrameworkServices(
        SqliteStore(tmp_path / "unused.sqlite"), settings.plugin, lambda user: {}
    )
    (driver_config,) = driver_configs(settings)
    return OxDriver(driver_config, services)


def test_ox_reads_the_2_3_options(tmp_path: Path) -> None:
    driver = build(
        tmp_path,
        "plugin {\n  push_notification_driver = ox:url=https://u:p@ox/notify/%u"
        " user_from_metadata cache_lifetime=30s max_retries=0 timeout_msecs=500\n}\n",
    )
    assert driver.user_from_metadata is True
    endpoint = driver.endpoint
    assert (driver.cache_lifetime, endpoint.attempts, endpoint.timeout) == (30.0, 1, 0.5)
    assert driver.endpoint.url.expand("alice") == "https://u:p@ox/notify/alice"


def test_ox_reads_the_2_4_block(tmp_path: Path) -> None:
    driver = build(
        tmp_path,
        "push_notification ox {\n  url = https://u:p@ox:8009/preliminary/http-notify/v1/notify\n"
        "  user_from_metadata = yes\n  cache_ttl = 30s\n"
        "  http_client_request_timeout = 2s\n  http_client_request_max_attempts = 3\n}\n",
    )
    assert (driver.user_from_metadata, driver.cache_lifetime) == (True, 30.0)
    assert (driver.endpoint.timeout, driver.endpoint.attempts) == (2.0, 3)


def test_ox_defaults_follow_dovecot_2_3(tmp_path: Path) -> None:
    driver = build(tmp_path, "plugin {\n  push_notification_driver = ox:url=http://ox/n\n}\n")
    assert (driver.user_from_metadata, driver.cache_lifetime) == (False, 60.0)
    assert (driver.endpoint.timeout, driver.endpoint.attempts) == (2.0, 2)


SECRET = "hunter2secret"
GOOD_URL = f"http://u:{SECRET}@ox/n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ox", "ox url: Driver requires the url parameter"),
        (f"ox:url={GOOD_URL} cache_lifetime=60", "ox cache_lifetime: expected a duration"),
        (f"ox:url={GOOD_URL} cache_lifetime=0s", "ox cache_lifetime: must be more than 0"),
        (f"ox:url={GOOD_URL} user_from_metadata=maybe", "ox user_from_metadata: expected yes"),
        ("ox:url=mailto:ox", "ox url: an http:// or https:// URL is required"),
        (f"ox:url=ftp://u:{SECRET}@ox/n", "ox url: an http:// or https:// URL is required"),
        (f"ox:url=u:{SECRET}@ox/n", "ox url: an http:// or https:// URL is required"),
        (f"ox:url=http://u:{SECRET}@ox:99999/n", "ox url: not a valid URL"),
        (f"ox:url=http://u:{SECRET}@/n", "ox url: not a valid URL"),
        (f"ox:url=http://u:{SECRET}@ox/%x", "ox url: unknown variable '%x'"),
    ],
)
def test_ox_refuses_bad_options_naming_them(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SettingError) as raised:
        build(tmp_path, f"plugin {{\n  push_notification_driver = {value}\n}}\n")
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_ox_masks_the_password_of_a_bad_url_in_a_block(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as raised:
        build(tmp_path, f"push_notification ox {{\n  url = ftp://u:{SECRET}@ox/n\n}}\n")
    assert "ox url: an http:// or https:// URL is required (got ftp://u:***@ox/n)" in str(
        raised.value
    )


def test_opt_in_values_are_tab_separated_and_tab_escaped() -> None:
    assert parse_opt_in("user=4@46\tfolder=INBOX\tnote=a\x01tb\x011") == {
        "user": "4@46",
        "folder": "INBOX",
        "note": "a\tb\x01",
    }
    assert parse_opt_in("") == {}
