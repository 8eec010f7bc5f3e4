"""A change pushes only when the service that made it loads the push plugins.

Real LMTP (smtplib), real IMAP (imaplib), `mailpush deliver` as a process, and
a real HTTP endpoint behind the webhook driver. The outbox is read too: a
service without the plugins must not even queue a transaction.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import smtplib
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.events import transaction_from_json
from mailpush.server import MailpushServer
from tests.conftest import free_port, imap_listener, lmtp_port
from tests.support.http_receiver import HttpReceiver

MESSAGE = b"From: s@example.net\r\nTo: alice@example.org\r\nSubject: %s\r\n\r\nbody\r\n"


@pytest.fixture
async def endpoint() -> AsyncIterator[HttpReceiver]:
    ep = HttpReceiver()
    await ep.start()
    yield ep
    await ep.stop()


def push_config(url: str, sections: str) -> str:
    """IMAP and LMTP, a webhook driver, a global mail_plugins without the push plugins."""
    base = textwrap.dedent(
        f"""\
        protocols = imap lmtp
        mail_plugins = $mail_plugins notify
        plugin {{
          push_notification_driver = webhook:url={url}
        }}
        mailpush_push_retry_initial = 100ms
        """
    )
    return imap_listener(free_port()) + base + textwrap.dedent(sections)


def imap_port(server: MailpushServer) -> int:
    return next(item.port for item in server.listeners if item.service == "imap")


def lmtp_deliver(server: MailpushServer, subject: str) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("s@example.net")
        client.rcpt("alice@example.org")
        code, _ = client.data(MESSAGE % subject.encode())
    assert code == 250


def imap_changes(server: MailpushServer) -> None:
    """APPEND, STORE, EXPUNGE and CREATE, each a push-worthy change in Dovecot."""
    with imaplib.IMAP4("127.0.0.1", imap_port(server)) as client:
        client.login("alice", "secret")
        assert client.append("INBOX", None, None, MESSAGE % b"appended")[0] == "OK"
        client.select("INBOX")
        assert client.store("1:*", "+FLAGS", "(\\Seen)")[0] == "OK"
        assert client.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert client.expunge()[0] == "OK"
        assert client.create("Work")[0] == "OK"
        client.logout()


def mailpush_deliver(config: Path, subject: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", "deliver", "-c", str(config), "-d", "alice"],
        input=MESSAGE % subject.encode(), capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


async def outbox_services(server: MailpushServer) -> list[tuple[str, list[str]]]:
    """(service, event names) of every transaction queued so far, in order."""
    assert server.store is not None
    records = await server.store.outbox.records_after(0)
    txns = [transaction_from_json(record.payload) for record in records]
    return [(txn.service, [event.name for event in txn.events]) for txn in txns]


async def test_plugins_only_in_protocol_lmtp_push_deliveries_and_not_imap_changes(
    endpoint: HttpReceiver,
    make_server: Callable[..., object],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.server")
    server = await make_server(  # type: ignore[operator]
        push_config(
            endpoint.url,
            """\
            protocol lmtp {
              mail_plugins = $mail_plugins push_notification
            }
            """,
        )
    )
    assert isinstance(server, MailpushServer)
    assert "push: lmtp → webhook; imap → (none); lda → (none)" in caplog.messages

    await asyncio.to_thread(imap_changes, server)
    assert await outbox_services(server) == []

    await asyncio.to_thread(mailpush_deliver, tmp_path / "mailpush.conf", "by lda")
    assert await outbox_services(server) == []

    await asyncio.to_thread(lmtp_deliver, server, "by lmtp")
    assert await outbox_services(server) == [("lmtp", ["MessageNew"])]
    (request,) = await endpoint.wait_for(1)
    body = request.json()
    assert body["service"] == "lmtp"
    assert body["events"][0]["subject"] == "by lmtp"


async def test_plugins_only_in_protocol_imap_push_imap_changes_and_not_deliveries(
    endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await make_server(  # type: ignore[operator]
        push_config(
            endpoint.url,
            """\
            protocol imap {
              mail_plugins = $mail_plugins push_notification
            }
            """,
        )
    )
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(lmtp_deliver, server, "by lmtp")
    assert await outbox_services(server) == []

    await asyncio.to_thread(imap_changes, server)
    queued = await outbox_services(server)
    assert {service for service, _ in queued} == {"imap"}
    assert [names for _, names in queued] == [
        ["MessageAppend"],
        ["FlagsClear", "FlagsSet", "MessageRead"] * 2,
        ["FlagsClear", "FlagsSet", "MessageTrash"],
        ["MessageExpunge"],
        ["MailboxCreate"],
    ]
    received = await endpoint.wait_for(len(queued))
    assert {request.json()["service"] for request in received} == {"imap"}


async def test_mailpush_deliver_pushes_as_lda_when_protocol_lda_loads_the_plugins(
    endpoint: HttpReceiver, make_server: Callable[..., object], tmp_path: Path
) -> None:
    server = await make_server(  # type: ignore[operator]
        push_config(
            endpoint.url,
            """\
            protocol lda {
              mail_plugins = $mail_plugins push_notification
            }
            """,
        )
    )
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(lmtp_deliver, server, "by lmtp")
    assert await outbox_services(server) == []

    await asyncio.to_thread(mailpush_deliver, tmp_path / "mailpush.conf", "by lda")
    assert await outbox_services(server) == [("lda", ["MessageNew"])]
    (request,) = await endpoint.wait_for(1)
    assert request.json()["service"] == "lda"
    assert request.json()["events"][0]["subject"] == "by lda"


def test_config_check_lists_which_services_push_to_which_drivers(tmp_path: Path) -> None:
    # `config check` compiles the Lua script as `serve` does, so it must exist.
    script = tmp_path / "push.lua"
    script.write_text("function dovecot_lua_notify_begin_txn(user) return {} end\n")
    config = tmp_path / "mailpush.conf"
    config.write_text(
        textwrap.dedent(
            """\
            mail_plugins = notify push_notification
            protocol lmtp {
              mail_plugins = $mail_plugins mail_lua push_notification_lua
            }
            protocol imap {
              mail_plugins = notify
            }
            plugin {
              push_notification_driver = lua:file=SCRIPT
              push_notification_driver2 = chronos:url=http://127.0.0.1:1/chronos
            }
            """
        ).replace("SCRIPT", str(script))
    )
    result = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", "config", "check", "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "push: lmtp → lua, chronos; imap → (none); lda → chronos" in result.stdout.splitlines()
