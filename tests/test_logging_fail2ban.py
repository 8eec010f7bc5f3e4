"""fail2ban's stock `dovecot` filter bans the addresses that fail IMAP logins against mailpush.

A real `mailpush serve` process writes its log to `log_path`; imaplib clients
fail to log in from two loopback addresses, one logs in properly; then
Debian's `fail2ban-regex` reads the file with /etc/fail2ban/filter.d/dovecot.conf
as an admin's fail2ban would, and must find each failed connection once
(not the per-attempt `Login failed` line too) and nothing for the good login.

With `mailpush_workers` > 1 a worker's line carries its tag (`worker1: ` in a
file, `dovecot(worker1)` as the syslog ident, docs/operations.md#workers):
the filter must read those lines too.
"""

from __future__ import annotations

import asyncio
import contextvars
import imaplib
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailpush.logs import worker_tag
from mailpush.logs.line_format import DovecotLineFormatter
from mailpush.logs.session import LogSession, enter_session
from mailpush.logs.syslog import SyslogSocketHandler
from tests.conftest import free_port, imap_listener, write_config
from tests.test_workers import Served, served, start

__all__ = ["served"]  # the fixture, for pytest

FAIL2BAN_REGEX = shutil.which("fail2ban-regex")
DOVECOT_FILTER = Path("/etc/fail2ban/filter.d/dovecot.conf")

pytestmark = pytest.mark.skipif(
    FAIL2BAN_REGEX is None or not DOVECOT_FILTER.exists(),
    reason="needs fail2ban-regex and its dovecot filter (Debian package fail2ban)",
)


class ImapFrom(imaplib.IMAP4):
    """imaplib connecting from a chosen loopback address (fail2ban bans by address)."""

    def __init__(self, port: int, source: str) -> None:
        self._source = source
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, (self._source, 0))


@pytest.fixture
def lone_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`mailpush serve` with `log_path` set: its IMAP port and its log file."""
    port = free_port()
    log = tmp_path / "log" / "mailpush.log"
    config = write_config(
        tmp_path,
        imap_listener(port)
        + f"protocols = imap lmtp\nauth_failure_delay = 10ms\nlog_path = {log}\n",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpush.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("wb"),
    )  # fmt: skip
    try:
        _wait_for_imap(port, proc, tmp_path / "stderr")
        yield port, log
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_fail2ban_dovecot_filter_finds_each_failed_login_connection_once(
    lone_server: tuple[int, Path],
) -> None:
    port, log = lone_server
    # Two attempts on one connection, then LOGOUT: one line ("Aborted login by logging out").
    with ImapFrom(port, "127.0.0.2") as client:
        for password in ("wrong", "also wrong"):
            with pytest.raises(imaplib.IMAP4.error):
                client.login("alice", password)
    # One attempt, then the client just closes: one line ("Connection closed").
    client = ImapFrom(port, "127.0.0.3")
    with pytest.raises(imaplib.IMAP4.error):
        client.login("mallory", "guess")
    client.shutdown()
    # A good login and logout: not a failure.
    with ImapFrom(port, "127.0.0.4") as client:
        client.login("bob", "secret")

    lines = wait_for_lines(log, "Disconnected", 4)
    found = _fail2ban_finds(log)
    assert sorted(found) == ["127.0.0.2", "127.0.0.3"], "\n".join(lines)

    failed = [line for line in lines if "auth failed, " in line]
    assert re.fullmatch(
        # The worker's tag when mailpush_workers (default: one per core) is above 1.
        r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d (?:worker\d+: )?imap-login: Info: Disconnected:"
        r" Aborted login by"
        r" logging out \(auth failed, 2 attempts in \d+ secs\): user=<alice>, method=PLAIN,"
        r" rip=127\.0\.0\.2, lip=127\.0\.0\.1, secured, session=<[A-Za-z0-9+/]{16}>",
        failed[0],
    ), failed
    assert "Disconnected: Connection closed (auth failed, 1 attempts" in failed[1]
    assert "user=<mallory>" in failed[1] and "rip=127.0.0.3" in failed[1]
    assert not any("guess" in line or "wrong" in line for line in lines)


def test_login_and_logout_lines_share_the_session_id_as_in_dovecot(
    lone_server: tuple[int, Path],
) -> None:
    port, log = lone_server
    with ImapFrom(port, "127.0.0.4") as client:
        client.login("bob", "secret")
        client.select("INBOX")

    lines = wait_for_lines(log, "Logged out", 1)
    login = next(line for line in lines if " imap-login: Info: Login: user=<bob>" in line)
    match = re.search(
        r"Login: user=<bob>, method=PLAIN, rip=127\.0\.0\.4, lip=127\.0\.0\.1, mpid=(\d+),"
        r" secured, session=<([A-Za-z0-9+/]{16})>$",
        login,
    )
    assert match is not None, login
    pid, session = match.groups()
    logout = next(line for line in lines if "Logged out" in line)
    assert re.search(
        rf" imap\(bob\)<{pid}><{re.escape(session)}>: Info: Disconnected: Logged out"
        r" in=[1-9]\d* out=[1-9]\d*$",
        logout,
    ), logout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")
async def test_fail2ban_dovecot_filter_finds_a_failed_login_a_worker_logged(
    tmp_path: Path, served: list[Served]
) -> None:
    log = tmp_path / "log" / "mailpush.log"
    server = await start(tmp_path, served, f"log_path = {log}\n")

    def fail_to_log_in() -> None:
        with ImapFrom(server.imap_port, "127.0.0.5") as client:
            with pytest.raises(imaplib.IMAP4.error):
                client.login("alice", "wrong")

    await asyncio.to_thread(fail_to_log_in)
    lines = await asyncio.to_thread(wait_for_lines, log, "auth failed, ", 1)
    (failed,) = [line for line in lines if "auth failed, " in line]
    assert re.fullmatch(
        r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d worker[01]: imap-login: Info: Disconnected: Aborted"
        r" login by logging out \(auth failed, 1 attempts in \d+ secs\): user=<alice>,"
        r" method=PLAIN, rip=127\.0\.0\.5, .*",
        failed,
    ), failed
    assert _fail2ban_finds(log) == ["127.0.0.5"], "\n".join(lines)


def test_fail2ban_dovecot_filter_finds_a_workers_failed_login_in_the_syslog_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The datagram a worker sends to /dev/log, filed as rsyslog files it (a host name
    after the time stamp): the tag is in the ident, where the filter allows it."""
    monkeypatch.setattr(worker_tag, "_TAG", "")
    worker_tag.name_worker_in_log(1)
    directory = Path(tempfile.mkdtemp(prefix="syslog-"))
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        receiver.bind(str(directory / "log"))
        receiver.settimeout(5)
        handler = SyslogSocketHandler("mail", str(directory / "log"))
        handler.setFormatter(DovecotLineFormatter(for_syslog=True))
        record = logging.LogRecord(
            "mailpush.imap.login_log", logging.INFO, __file__, 1,
            "Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<bob>,"
            " method=PLAIN, rip=192.0.2.66, lip=192.0.2.1, session=<Rsgzet5hoJZ/AAAB>",
            None, None,
        )  # fmt: skip

        def emit() -> None:
            enter_session(LogSession("imap-login"))
            handler.emit(record)

        contextvars.copy_context().run(emit)
        handler.close()
        datagram = receiver.recv(65536).decode()
    finally:
        receiver.close()
        shutil.rmtree(directory)
    filed = re.sub(r"^<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d) ", r"\1 mailhost ", datagram)
    assert " mailhost dovecot(worker1): imap-login: Disconnected: " in filed, filed
    syslog_file = tmp_path / "mail.log"
    syslog_file.write_text(filed + "\n")
    assert _fail2ban_finds(syslog_file) == ["192.0.2.66"], filed


def _fail2ban_finds(log: Path) -> list[str]:
    assert FAIL2BAN_REGEX is not None
    return subprocess.run(
        [FAIL2BAN_REGEX, "-o", "ip", str(log), str(DOVECOT_FILTER)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip


def wait_for_lines(log: Path, needle: str, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        if sum(needle in line for line in lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _wait_for_imap(port: int, proc: subprocess.Popen[bytes], stderr: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early: {stderr.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"server did not listen on {port}: {stderr.read_text()}")
