"""Reloading a running `mailpush serve` (SIGHUP, `mailpush reload`), as Dovecot reloads.

The server is a real subprocess; the push target is the real local HTTP
receiver; the clients that stay connected across the reload are smtplib's
LMTP and imaplib.
"""

from __future__ import annotations

import asyncio
import imaplib
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from mailpush.auth import add_user
from mailpush.config import load_settings
from mailpush.server import MailpushServer
from tests.conftest import free_port, imap_listener, lmtp_port, write_config
from tests.drivers.lua.conftest import lua_server_config
from tests.support.http_receiver import HttpReceiver
from tests.test_server import start_serve, wait_for_port

MESSAGE = b"From: a@example.net\r\nSubject: %s\r\n\r\nbody\r\n"


def push_config(url: str) -> str:
    return (
        "mail_plugins = $mail_plugins notify push_notification\n"
        f"plugin {{\n  push_notification_driver = webhook:url={url}\n}}\n"
        "auth_failure_delay = 0\n"
    )


def rewrite(config: Path, text: str) -> None:
    """Replace the file's text; a new inode, as editors write files."""
    temporary = config.with_suffix(".new")
    temporary.write_text(text)
    temporary.replace(config)


async def wait_for_log(log: Path, text: str, after: int = 0, timeout: float = 20) -> str:
    """The log's text from offset `after`, once `text` appears in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = log.read_text(errors="replace")[after:]
        if text in tail:
            return tail
        await asyncio.sleep(0.05)
    pytest.fail(f"no {text!r} in the log: {log.read_text()[after:]}")


def lmtp_send(client: smtplib.LMTP, subject: bytes) -> int:
    client.mail("a@example.net")
    client.rcpt("alice")
    code, _ = client.data(MESSAGE % subject)
    return code


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[HttpReceiver, HttpReceiver]]:
    old, new = HttpReceiver(), HttpReceiver()
    await old.start()
    await new.start()
    yield old, new
    await old.stop()
    await new.stop()


async def test_sighup_applies_a_new_push_url_and_keeps_connections_open(
    tmp_path: Path, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    old, new = receivers
    lmtp_port, imap_port = free_port(), free_port()
    base = imap_listener(imap_port) + "protocols = lmtp imap\n"
    config = write_config(tmp_path, base + push_config(old.url), lmtp_port=lmtp_port)
    log = tmp_path / "serve.log"
    proc = start_serve(config, log)
    try:
        await asyncio.to_thread(wait_for_port, lmtp_port, proc, log)
        lmtp = await asyncio.to_thread(smtplib.LMTP, "127.0.0.1", lmtp_port)
        await asyncio.to_thread(lmtp.ehlo, "test")
        imap = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port)
        await asyncio.to_thread(imap.login, "alice", "secret")
        assert await asyncio.to_thread(lmtp_send, lmtp, b"before") == 250
        await old.until(lambda: len(old.accepted_with(b"before")) == 1)

        rewrite(config, config.read_text().replace(old.url, new.url))
        mark = len(log.read_text())
        proc.send_signal(signal.SIGHUP)
        await wait_for_log(log, "reload: configuration reloaded", mark)

        # The LMTP connection opened before the reload delivers; the push goes to the new URL.
        assert await asyncio.to_thread(lmtp_send, lmtp, b"after") == 250
        await new.until(lambda: len(new.accepted_with(b"after")) == 1)
        assert old.accepted_with(b"after") == []
        # The IMAP session logged in before the reload still works and sees both messages.
        status, data = await asyncio.to_thread(imap.select, "INBOX")
        assert (status, data) == ("OK", [b"2"])

        # A bad edit: refused with file:line in one log line, the running configuration stays.
        rewrite(config, config.read_text() + "service lmtp {\n")
        mark = len(log.read_text())
        proc.send_signal(signal.SIGHUP)
        tail = await wait_for_log(log, "reload refused", mark)
        refusal = next(line for line in tail.splitlines() if "reload refused" in line)
        assert f"{config}:" in refusal and "never closed" in refusal
        assert await asyncio.to_thread(lmtp_send, lmtp, b"kept") == 250
        await new.until(lambda: len(new.accepted_with(b"kept")) == 1)
        status, _ = await asyncio.to_thread(imap.noop)
        assert status == "OK"
        await asyncio.to_thread(imap.logout)
        await asyncio.to_thread(lmtp.quit)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
    assert code == 0, log.read_text()
    assert proc.returncode == 0


async def test_mailpush_reload_asks_the_running_server_and_reports_the_outcome(
    tmp_path: Path, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    old, new = receivers
    lmtp_port = free_port()
    config = write_config(tmp_path, push_config(old.url), lmtp_port=lmtp_port)
    log = tmp_path / "serve.log"
    proc = start_serve(config, log)

    def reload() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailpush.cli", "reload", "-c", str(config)],
            capture_output=True, text=True, timeout=60,
        )

    try:
        await asyncio.to_thread(wait_for_port, lmtp_port, proc, log)
        # A changed listener port is named as needing a restart; the rest applies.
        text = config.read_text().replace(old.url, new.url)
        rewrite(config, text.replace(f"port = {lmtp_port}", f"port = {free_port()}"))
        result = await asyncio.to_thread(reload)
        assert result.returncode == 0, result.stderr
        assert "configuration reloaded" in result.stdout
        assert "listeners" in result.stdout and "needs a restart" in result.stdout
        await wait_for_log(log, "needs a restart to apply")
        # Still on the old port, pushing to the new URL.
        lmtp = await asyncio.to_thread(smtplib.LMTP, "127.0.0.1", lmtp_port)
        await asyncio.to_thread(lmtp.ehlo, "test")
        assert await asyncio.to_thread(lmtp_send, lmtp, b"moved") == 250
        await new.until(lambda: len(new.accepted_with(b"moved")) == 1)
        # A file that does not check is not sent at all: said so, and nothing changes.
        rewrite(config, config.read_text() + "lmtp_save_to_detail_mailbox = perhaps\n")
        result = await asyncio.to_thread(reload)
        assert result.returncode == 78
        assert "lmtp_save_to_detail_mailbox" in result.stderr
        assert "not reloaded: the running server keeps its configuration" in result.stderr
        assert await asyncio.to_thread(lmtp_send, lmtp, b"unchanged") == 250
        await new.until(lambda: len(new.accepted_with(b"unchanged")) == 1)
        await asyncio.to_thread(lmtp.quit)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
    assert code == 0, log.read_text()


# --- in-process: what a reload swaps, and what it keeps ----------------------------------


async def started(config: Path) -> MailpushServer:
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    return server


def deliver(server: MailpushServer, subject: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        assert lmtp_send(client, subject) == 250


RETRY_FAST = "mailpush_push_retry_initial = 100ms\nmailpush_push_retry_max_interval = 200ms\n"


async def test_queued_pushes_of_a_driver_the_reload_removed_stay_pending_until_it_returns(
    tmp_path: Path,
    receivers: tuple[HttpReceiver, HttpReceiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver, _ = receivers
    receiver.status = 503
    with_driver = push_config(receiver.url) + RETRY_FAST
    config = write_config(tmp_path, with_driver)
    server = await started(config)
    try:
        assert server.store is not None
        await asyncio.to_thread(deliver, server, b"queued")
        await receiver.until(lambda: receiver.refused >= 2)  # MailboxCreate, MessageNew
        rewrite(config, config.read_text().replace(with_driver, RETRY_FAST))
        outcome = await server.reload()
        assert outcome.applied, outcome.message
        assert (
            "push driver instance webhook was removed; its 2 queued transaction(s) stay pending"
            in caplog.text
        )
        refused = receiver.refused
        await asyncio.sleep(1)  # several retry intervals: nobody takes them, nobody buries them
        assert receiver.refused == refused
        stats = {row.driver: row for row in await server.store.outbox.stats(time.time())}
        waiting = stats["webhook"]
        assert (waiting.pending + waiting.retrying, waiting.inflight, waiting.dead) == (2, 0, 0)
        # The instance comes back: the kept transactions go out.
        receiver.status = 200
        rewrite(config, config.read_text() + with_driver)
        assert (await server.reload()).applied
        await receiver.until(lambda: len(receiver.accepted_with(b"MessageNew")) == 1)
    finally:
        await server.stop()


async def test_a_push_running_at_reload_finishes_at_the_old_url(
    tmp_path: Path, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    old, new = receivers
    old.delay = 1.0
    config = write_config(tmp_path, push_config(old.url))
    server = await started(config)
    try:
        await asyncio.to_thread(deliver, server, b"slow")
        await old.until(lambda: len(old.arrivals) >= 1)  # under way when the reload comes
        rewrite(config, config.read_text().replace(old.url, new.url))
        assert (await server.reload()).applied
        await old.until(lambda: len(old.received) == len(old.arrivals) >= 1)
        await asyncio.to_thread(deliver, server, b"fresh")
        await new.until(lambda: len(new.accepted_with(b"fresh")) == 1)
        assert old.arrived_with(b"fresh") == []
    finally:
        await server.stop()


async def test_a_new_passwd_file_applies_to_the_next_login_and_keeps_open_sessions(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, imap_listener(free_port()) + "protocols = lmtp imap\n"
                          "auth_failure_delay = 0\n")  # fmt: skip
    server = await started(config)
    other_users = tmp_path / "other-users"
    add_user(other_users, "alice", "changed", "PLAIN")
    port = next(item.port for item in server.listeners if item.service == "imap")
    try:
        before = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", port)
        await asyncio.to_thread(before.login, "alice", "secret")
        rewrite(config, config.read_text().replace(
            f"args = {tmp_path / 'users'}", f"args = {other_users}"
        ))  # fmt: skip
        assert (await server.reload()).applied

        def login(password: str) -> str:
            with imaplib.IMAP4("127.0.0.1", port) as client:
                try:
                    return str(client.login("alice", password)[0])
                except imaplib.IMAP4.error:
                    return "NO"

        assert await asyncio.to_thread(login, "changed") == "OK"
        assert await asyncio.to_thread(login, "secret") == "NO"
        assert (await asyncio.to_thread(before.noop))[0] == "OK"
        await asyncio.to_thread(before.logout)
    finally:
        await server.stop()


async def test_a_new_certificate_serves_new_connections_and_open_ones_stay(
    tmp_path: Path,
) -> None:
    first_ca, second_ca = trustme.CA(), trustme.CA()
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"

    def install(ca: trustme.CA) -> None:
        issued = ca.issue_cert("127.0.0.1")
        issued.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
        issued.private_key_pem.write_to_path(str(key_path))

    def trusting(ca: trustme.CA) -> ssl.SSLContext:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        return context

    install(first_ca)
    imaps_port = free_port()
    tls = f"ssl = yes\nssl_cert = <{cert_path}\nssl_key = <{key_path}\nprotocols = lmtp imap\n"
    listener = imap_listener(free_port()).replace("port = 0", f"port = {imaps_port}")
    config = write_config(tmp_path, listener.replace(
        "inet_listener imaps {", "inet_listener imaps {\n    address = 127.0.0.1"
    ) + tls)  # fmt: skip
    server = await started(config)
    try:
        before = await asyncio.to_thread(
            imaplib.IMAP4_SSL, "127.0.0.1", imaps_port, ssl_context=trusting(first_ca)
        )
        install(second_ca)
        assert (await server.reload()).applied
        after = await asyncio.to_thread(
            imaplib.IMAP4_SSL, "127.0.0.1", imaps_port, ssl_context=trusting(second_ca)
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(
                imaplib.IMAP4_SSL, "127.0.0.1", imaps_port, ssl_context=trusting(first_ca)
            )
        for client in (before, after):
            assert (await asyncio.to_thread(client.login, "alice", "secret"))[0] == "OK"
            await asyncio.to_thread(client.logout)
    finally:
        await server.stop()


async def test_a_bad_driver_option_is_refused_naming_it_and_the_old_drivers_keep_pushing(
    tmp_path: Path, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    receiver, _ = receivers
    config = write_config(tmp_path, push_config(receiver.url))
    server = await started(config)
    try:
        rewrite(config, config.read_text().replace(
            "webhook:url=", "webhook:max_retries=lots url="
        ))  # fmt: skip
        outcome = await server.reload()
        assert not outcome.applied
        assert f"{config}:" in outcome.message and "max_retries" in outcome.message
        await asyncio.to_thread(deliver, server, b"still")
        await receiver.until(lambda: len(receiver.accepted_with(b"still")) == 1)
    finally:
        await server.stop()


LUA_PUSH = """\
local http = require "socket.http"

function dovecot_lua_notify_begin_txn(user)
  return {endpoint = user:plugin_getenv("push_lua_url")}
end

function dovecot_lua_notify_event_message_new(ctx, event)
  http.request(ctx.endpoint, "version=%s&subject=" .. event.subject)
end

function dovecot_lua_notify_end_txn(ctx)
end
"""


async def test_an_edited_lua_script_runs_after_the_reload_and_a_broken_one_is_refused(
    tmp_path: Path, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    receiver, _ = receivers
    script = tmp_path / "push.lua"
    script.write_text(LUA_PUSH % "1")
    config = write_config(tmp_path, lua_server_config(script, receiver.url, imap=False))
    server = await started(config)
    try:
        await asyncio.to_thread(deliver, server, b"first")
        await receiver.until(lambda: receiver.accepted_with(b"version=1&subject=first") != [])
        script.write_text(LUA_PUSH % "2")
        assert (await server.reload()).applied
        await asyncio.to_thread(deliver, server, b"second")
        await receiver.until(lambda: receiver.accepted_with(b"version=2&subject=second") != [])
        # A script that does not compile: refused with its file and line; version 2 goes on.
        script.write_text(LUA_PUSH % "3" + "function broken(\n")
        outcome = await server.reload()
        assert not outcome.applied and f"{script}:" in outcome.message
        await asyncio.to_thread(deliver, server, b"third")
        await receiver.until(lambda: receiver.accepted_with(b"version=2&subject=third") != [])
    finally:
        await server.stop()
