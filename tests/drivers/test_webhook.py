"""The webhook driver: Standard Webhooks signatures, filters, at-least-once with stable ids."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mailpush.config import load_settings
from mailpush.dispatch import FrameworkServices
from mailpush.drivers import driver_configs
from mailpush.drivers.webhook import WebhookDriver
from mailpush.errors import SettingError
from mailpush.server import MailpushServer
from mailpush.store import NewMessage, SqliteStore
from tests.conftest import lmtp_port, write_config
from tests.support.http_receiver import HttpReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"


@dataclass
class VerifyingReceiver:
    """Checks the signature of every request (even those it refuses) with the reference
    Standard Webhooks library; answers 503 while `refusing`."""

    secret: str
    refusing: bool = False
    accepted: list[tuple[str, Any]] = field(default_factory=list)
    attempted_ids: list[str] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)
    _http: HttpReceiver = field(init=False)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._http = HttpReceiver(self._handle)

    @property
    def url(self) -> str:
        return self._http.url

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[str, Any]]:
        async def enough() -> None:
            while len(self.accepted) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.accepted

    async def _handle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if request.path != "/hook":
            return web.Response(status=404)
        if request.method != "POST":
            return web.Response(status=405)
        headers = dict(request.headers)
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            self.bad_signatures.append(str(exc))
            return web.Response(status=401, text=str(exc))
        self.attempted_ids.append(headers["webhook-id"])
        if self.refusing:
            return web.Response(status=503, text="maintenance")
        self.accepted.append((headers["webhook-id"], payload))
        self._arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[VerifyingReceiver]:
    endpoint = VerifyingReceiver(SECRET)
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def webhook_config(url: str, options: str = "") -> str:
    return (
        "mail_plugins = $mail_plugins notify push_notification\n"
        f"plugin {{\n  push_notification_driver = webhook:url={url} {options}\n}}\n"
        "mailpush_push_retry_initial = 100ms\nmailpush_push_retry_max_interval = 300ms\n"
    )


def deliver(server: MailpushServer, rcpt: str, subject: str) -> None:
    raw = f"From: s@example.net\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("s@example.net")
        client.rcpt(rcpt)
        code, _ = client.data(raw)
    assert code == 250


async def start(make_server: Callable[..., object], config: str) -> MailpushServer:
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


async def test_webhook_requests_are_signed_and_keep_their_ids_through_refusals(
    receiver: VerifyingReceiver, make_server: Callable[..., object]
) -> None:
    receiver.refusing = True
    # ordered=yes: the subjects below come in commit order.
    server = await start(make_server, webhook_config(receiver.url, f"secret={SECRET} ordered=yes"))
    for n in range(3):
        await asyncio.to_thread(deliver, server, "alice", f"alice {n}")
    await asyncio.to_thread(deliver, server, "bob", "bob 0")
    await asyncio.sleep(1.5)
    assert receiver.accepted == [] and len(receiver.attempted_ids) >= 2
    receiver.refusing = False
    # 2 MailboxCreate (INBOX) + 4 MessageNew
    accepted = await receiver.wait_for(6)
    await asyncio.sleep(0.3)
    assert receiver.bad_signatures == []
    ids = [message_id for message_id, _ in accepted]
    assert len(ids) == len(set(ids)) == 6
    assert [payload["id"] for _, payload in accepted] == ids
    # Every id tried while refused is one that finally arrived: retries reuse the id.
    assert set(receiver.attempted_ids) == set(ids)
    subjects = [p["events"][0].get("subject") for _, p in accepted if p["user"] == "alice"]
    assert subjects == [None, "alice 0", "alice 1", "alice 2"]


async def test_webhook_sends_only_the_selected_events_and_mailboxes(
    receiver: VerifyingReceiver, make_server: Callable[..., object]
) -> None:
    options = f"secret={SECRET} events=MessageNew,MessageAppend mailboxes=inbox,Lists/%"
    server = await start(make_server, webhook_config(receiver.url, options))
    assert server.store is not None
    store = server.store
    await asyncio.to_thread(deliver, server, "alice", "to the inbox")
    await store.create_mailbox("alice", "Archive")
    await store.create_mailbox("alice", "Lists/dev")
    await store.create_mailbox("alice", "Lists/dev/deep")
    message = NewMessage(b"Subject: appended\r\n\r\nx\r\n")
    await store.append("alice", "Archive", [message])
    await store.append("alice", "Lists/dev/deep", [message])
    await store.append("alice", "Lists/dev", [message])
    accepted = await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert [(p["events"][0]["name"], p["mailbox"]) for _, p in accepted] == [
        ("MessageNew", "INBOX"),
        ("MessageAppend", "Lists/dev"),
    ]
    # Filtered out while committing: no outbox rows for the rest.
    (stats,) = await store.outbox.stats(0.0)
    assert stats.done + stats.pending + stats.inflight == 2


async def test_webhook_signs_with_every_secret_during_key_rotation(
    make_server: Callable[..., object]
) -> None:
    old = VerifyingReceiver(OLD_SECRET)
    await old.start()
    try:
        server = await start(
            make_server, webhook_config(old.url, f"secret={SECRET},{OLD_SECRET} events=MessageNew")
        )
        await asyncio.to_thread(deliver, server, "alice", "rotated")
        ((_, payload),) = await old.wait_for(1)
        assert payload["events"][0]["subject"] == "rotated"
        assert old.bad_signatures == []
    finally:
        await old.stop()


# --- signing and settings -----------------------------------------------------------------


def build(tmp_path: Path, options: str) -> WebhookDriver:
    path = write_config(
        tmp_path, f"plugin {{\n  push_notification_driver = webhook:url=http://h/x {options}\n}}\n"
    )
    settings = load_settings(path).settings
    services = FrameworkServices(SqliteStore(tmp_path / "unused.sqlite"), settings.plugin,
                                 lambda user: {})
    (config,) = driver_configs(settings)
    return WebhookDriver(config, services)


def test_webhook_signature_matches_the_standard_webhooks_test_vector(tmp_path: Path) -> None:
    driver = build(tmp_path, f"secret={SECRET}")
    headers = driver.signature_headers(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_webhook_without_a_secret_sends_id_and_timestamp_unsigned(tmp_path: Path) -> None:
    assert build(tmp_path, "").signature_headers("abc", 5, b"{}") == {
        "webhook-id": "abc",
        "webhook-timestamp": "5",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("secret=hunter2hunter2hunter2", "webhook secret: a Standard Webhooks secret starts"),
        ("secret=whsec_!!!notbase64", "webhook secret: the part after whsec_ is not valid base64"),
        ("secret=whsec_c2hvcnQ=", "webhook secret: the key is 5 bytes"),
        ("events=MessageNew,MesageRead", "webhook events: unknown event MesageRead (known:"),
        ("timeout=soon", "webhook timeout: expected a duration"),
    ],
)
def test_webhook_refuses_bad_options_naming_them(
    tmp_path: Path, options: str, message: str
) -> None:
    with pytest.raises(SettingError) as raised:
        build(tmp_path, options)
    assert message in str(raised.value)
