"""The control socket and the commands that use it: `mailpush who`, `mailpush kick`.

A real server on loopback, real imaplib and smtplib sessions, and the CLI as
an admin runs it (in a thread: the server answers on this test's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import io
import os
import smtplib
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailpush.cli.main import main
from mailpush.config import load_settings
from mailpush.control_socket import ask, control_socket_path
from mailpush.errors import ServiceError
from mailpush.server import MailpushServer

from .conftest import free_port, imap_listener, lmtp_port, write_config


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[MailpushServer, Path]]:
    extra = imap_listener(free_port()) + "protocols = lmtp imap\nauth_failure_delay = 0\n"
    config = write_config(tmp_path, extra)
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    yield server, config
    await server.stop()


def imap_port(server: MailpushServer) -> int:
    return next(item.port for item in server.listeners if item.service == "imap")


async def cli(*argv: str) -> tuple[int, str]:
    """Run `mailpush ARGV` in a thread; (exit status, stdout)."""

    def run() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(list(argv))
        return code, out.getvalue()

    return await asyncio.to_thread(run)


async def logged_in(server: MailpushServer, user: str) -> imaplib.IMAP4:
    client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port(server))
    await asyncio.to_thread(client.login, user, "secret")
    return client


async def test_the_control_socket_is_in_the_data_dir_and_only_for_its_owner(
    running: tuple[MailpushServer, Path],
) -> None:
    server, _ = running
    path = control_socket_path(server.settings.data_dir)
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    await server.stop()
    assert not path.exists()


async def test_who_lists_imap_and_lmtp_sessions_with_user_service_and_ip(
    running: tuple[MailpushServer, Path],
) -> None:
    server, config = running
    alice = await logged_in(server, "alice")
    bob = await logged_in(server, "bob")
    anonymous = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap_port(server))
    lmtp = await asyncio.to_thread(smtplib.LMTP, "127.0.0.1", lmtp_port(server))
    await asyncio.to_thread(lmtp.ehlo, "test")
    await asyncio.to_thread(lmtp.mail, "s@example.net")
    await asyncio.to_thread(lmtp.rcpt, "carol")
    try:
        code, out = await cli("who", "-c", str(config))
        assert code == 0
        rows = [line.split() for line in out.splitlines()[1:]]
        assert sorted(row[:3] for row in rows) == [
            ["-", "imap", "127.0.0.1"],
            ["alice", "imap", "127.0.0.1"],
            ["bob", "imap", "127.0.0.1"],
            ["carol", "lmtp", "127.0.0.1"],
        ]
        code, out = await cli("who", "-c", str(config), "bob")
        assert [line.split()[:2] for line in out.splitlines()[1:]] == [["bob", "imap"]]
    finally:
        for client in (alice, bob):
            await asyncio.to_thread(client.logout)
        await asyncio.to_thread(anonymous.logout)
        await asyncio.to_thread(lmtp.quit)


async def test_kick_says_bye_to_every_imap_session_of_the_user_and_no_other(
    running: tuple[MailpushServer, Path],
) -> None:
    server, config = running
    first, second = await logged_in(server, "alice"), await logged_in(server, "alice")
    bob = await logged_in(server, "bob")
    code, out = await cli("kick", "-c", str(config), "alice")
    assert code == 0 and "2 IMAP connection(s)" in out
    for client in (first, second):
        line = await asyncio.to_thread(client.readline)
        assert line == b"* BYE Disconnected by administrator.\r\n"
        assert await asyncio.to_thread(client.readline) == b""  # closed after the BYE
    status, _ = await asyncio.to_thread(bob.noop)
    assert status == "OK"
    await asyncio.to_thread(bob.logout)
    async with asyncio.timeout(5):
        while server.sessions():  # each connection's task ends just after its last write
            await asyncio.sleep(0.01)
    # Nobody left to kick: said so, with a failing status for scripts.
    code, out = await cli("kick", "-c", str(config), "alice")
    assert code == 1 and "0 IMAP connection(s)" in out


async def test_a_request_the_server_does_not_know_is_answered_with_the_known_ones(
    running: tuple[MailpushServer, Path],
) -> None:
    server, _ = running
    answer = await ask(control_socket_path(server.settings.data_dir), {"command": "stop"})
    assert answer == {
        "ok": False, "message": "unknown command 'stop' (known: who, kick, reload, metrics, ready)"
    }


async def test_metrics_answers_this_process_s_metrics_in_prometheus_text(
    running: tuple[MailpushServer, Path],
) -> None:
    """What worker 0 asks each other worker for, to answer /metrics for all of them."""
    server, _ = running

    def deliver() -> None:
        with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
            client.sendmail("a@example.org", ["alice"], b"Subject: x\r\n\r\nbody\r\n")

    await asyncio.to_thread(deliver)
    answer = await ask(control_socket_path(server.settings.data_dir), {"command": "metrics"})
    assert answer["ok"] is True
    families = {f.name: f for f in text_string_to_metric_families(answer["text"])}
    delivered = families["mailpush_lmtp_deliveries"].samples
    assert sum(s.value for s in delivered if s.name.endswith("_total")) == 1


async def test_ready_answers_what_keeps_this_process_from_taking_work(
    running: tuple[MailpushServer, Path],
) -> None:
    """What worker 0 asks each other worker, to answer /readyz for all of them."""
    server, _ = running
    path = control_socket_path(server.settings.data_dir)
    assert await ask(path, {"command": "ready"}) == {"ok": True, "problems": []}
    lmtp = server.lmtp.pop()
    try:
        assert await ask(path, {"command": "ready"}) == {
            "ok": True, "problems": ["listeners: 1 of 2 bound"]
        }
    finally:
        server.lmtp.append(lmtp)


async def test_without_a_running_server_the_commands_say_where_they_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code, _ = await cli("who", "-c", str(config))
    assert code == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "data" / "control.sock") in err
    assert "is `mailpush serve` running" in err
    with pytest.raises(ServiceError, match="no mailpush server answers"):
        await ask(tmp_path / "data" / "control.sock", {"command": "who"})


async def test_a_socket_left_by_a_dead_server_is_replaced_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    settings = load_settings(config).settings
    path = control_socket_path(settings.data_dir)
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening: what a killed server leaves behind
    server = MailpushServer(settings)
    await server.start()
    try:
        answer = await ask(path, {"command": "who"})
        assert answer == {"ok": True, "sessions": []}
    finally:
        await server.stop()
