"""The IMAP login lines' variants, as fail2ban's stock `dovecot` filter reads them.

tests/test_logging_fail2ban.py covers failed passwords over real connections;
the variants loopback cannot produce (TLS, IPv6 clients, a refused plaintext
login) are written here by the same code into a real log file, and read by
the real `fail2ban-regex`.
"""

from __future__ import annotations

import contextvars
import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from mailpush.imap.login_log import ConnectionLog
from mailpush.logging_config import configure_logging
from mailpush.logs.settings import LogSettings

FAIL2BAN_REGEX = shutil.which("fail2ban-regex")
DOVECOT_FILTER = Path("/etc/fail2ban/filter.d/dovecot.conf")
log = logging.getLogger("mailpush.imap.connection")


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    path = tmp_path / "mailpush.log"
    configure_logging(LogSettings.of(path))
    yield path
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def connection(
    rip: str, steps: Callable[[ConnectionLog], Iterable[str]], tls: bool = False
) -> None:
    """Log each line `steps` gives, as it gives it, as one connection's task would."""
    def run() -> None:
        lines = ConnectionLog(rip, "192.0.2.1", tls=tls, secured=tls)
        lines.begin()
        for line in steps(lines):
            log.info("%s", line)

    contextvars.copy_context().run(run)


def read(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines()


def test_login_line_variants_match_dovecots_and_fail2ban_bans_only_failures(
    log_file: Path,
) -> None:
    connection("198.51.100.7", lambda c: [
        c.auth_failed("alice", "PLAIN"), c.disconnected("Connection closed", 40, 90),
    ], tls=True)  # fmt: skip
    connection("2001:db8::5", lambda c: [
        c.auth_failed("bob", "PLAIN"), c.auth_failed("bob", "PLAIN"),
        c.disconnected("Aborted login by logging out", 70, 120),
    ])  # fmt: skip
    connection("203.0.113.9", lambda c: [
        c.plaintext_refused("", "PLAIN"), c.disconnected("Connection closed", 20, 60),
    ])  # fmt: skip
    connection("192.0.2.200", lambda c: [c.disconnected("Connection closed", 0, 60)])

    def carol(c: ConnectionLog) -> Iterator[str]:
        yield c.login("carol", "PLAIN")
        c.enter_user("carol")
        yield c.disconnected("Logged out", 30, 400)

    connection("192.0.2.201", carol)

    lines = [line.split(" ", 3)[3] for line in read(log_file) if line.split(" ", 3)[3:]]
    session = r"session=<[A-Za-z0-9+/]{16}>"
    expected = [
        r"imap-login: Info: Login failed \(auth failed\): user=<alice>, method=PLAIN,"
        rf" rip=198\.51\.100\.7, lip=192\.0\.2\.1, TLS, {session}",
        r"imap-login: Info: Disconnected: Connection closed \(auth failed, 1 attempts in 0"
        rf" secs\): user=<alice>, method=PLAIN, rip=198\.51\.100\.7, lip=192\.0\.2\.1, TLS,"
        rf" {session}",
        r"imap-login: Info: Login failed .*",
        r"imap-login: Info: Login failed .*",
        r"imap-login: Info: Disconnected: Aborted login by logging out \(auth failed, 2 attempts"
        rf" in 0 secs\): user=<bob>, method=PLAIN, rip=2001:db8::5, lip=192\.0\.2\.1, {session}",
        r"imap-login: Info: Login refused \(plaintext authentication disabled\): user=<>,"
        rf" method=PLAIN, rip=203\.0\.113\.9, lip=192\.0\.2\.1, {session}",
        r"imap-login: Info: Disconnected: Connection closed \(tried to use disallowed plaintext"
        rf" auth\): user=<>, method=PLAIN, rip=203\.0\.113\.9, lip=192\.0\.2\.1, {session}",
        r"imap-login: Info: Disconnected: Connection closed \(no auth attempts in 0 secs\):"
        rf" user=<>, rip=192\.0\.2\.200, lip=192\.0\.2\.1, {session}",
        r"imap-login: Info: Login: user=<carol>, method=PLAIN, rip=192\.0\.2\.201,"
        rf" lip=192\.0\.2\.1, mpid=\d+, {session}",
        r"imap\(carol\)<\d+><[A-Za-z0-9+/]{16}>: Info: Disconnected: Logged out in=30 out=400",
    ]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)

    if FAIL2BAN_REGEX is None or not DOVECOT_FILTER.exists():
        pytest.skip("needs fail2ban-regex and its dovecot filter (Debian package fail2ban)")
    banned = subprocess.run(
        [FAIL2BAN_REGEX, "-o", "ip", str(log_file), str(DOVECOT_FILTER)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    # The refused plaintext login counts too, as in Dovecot; no auth attempt does not.
    assert sorted(banned) == ["198.51.100.7", "2001:db8::5", "203.0.113.9"]
