"""Text from the network cannot forge log lines: control characters reach the log escaped.

The server logs through `configure_logging` into a real file, exactly as
`mailpush serve` does; the network text comes over loopback from an HTTP
endpoint's error body and an IMAP login name.
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mailpush.logging_config import configure_logging, escape_control_characters
from mailpush.server import MailpushServer
from tests.conftest import free_port, lmtp_port
from tests.support.http_receiver import HttpReceiver

FORGED = "Jan 01 00:00:00 imap-login: Info: Login: user=<root>"
#: A line that begins a log record (Dovecot's shape, the default `log_timestamp`).
RECORD_START = re.compile(
    r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \S+: (Debug|Info|Warning|Error|Fatal): "
)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The process log, configured as `mailpush serve` does; the test runner's restored."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    path = tmp_path / "mailpush.log"
    configure_logging(path)
    yield path
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


async def wait_for_line(path: Path, needle: str, timeout: float = 10.0) -> list[str]:
    """The log's lines once one of them contains `needle`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = path.read_text(encoding="utf-8").splitlines()
        if any(needle in line for line in lines):
            return lines
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{needle!r} never logged:\n" + "\n".join(lines))
        await asyncio.sleep(0.05)


@pytest.fixture
async def endpoint() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(status=500, refusal_body=f"boom\r\n{FORGED}\r\n\x1b[2Jcleared")
    await receiver.start()
    yield receiver
    await receiver.stop()


async def test_an_endpoint_error_body_with_crlf_stays_on_one_log_line(
    log_file: Path, endpoint: HttpReceiver, make_server: Callable[..., object]
) -> None:
    server = await make_server(  # type: ignore[operator]
        "mail_plugins = $mail_plugins notify push_notification\n"
        f"plugin {{\n  push_notification_driver = webhook:url={endpoint.url}\n}}\n"
        "mailpush_push_retry_initial = 5s\n"
    )
    assert isinstance(server, MailpushServer)

    def deliver() -> None:
        with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
            client.sendmail("s@example.net", ["alice"], b"Subject: x\r\n\r\nbody\r\n")

    await asyncio.to_thread(deliver)
    lines = await wait_for_line(log_file, "answered 500")
    refused = [line for line in lines if "answered 500" in line]
    assert "boom\\r\\n" + FORGED + "\\r\\n\\x1b[2Jcleared" in refused[0]
    assert not [line for line in lines if line.startswith(FORGED)]
    assert "\x1b" not in log_file.read_text(encoding="utf-8")
    assert all(RECORD_START.match(line) or line.startswith("  ") for line in lines)


async def test_a_login_name_with_crlf_is_logged_escaped(
    log_file: Path, make_server: Callable[..., object]
) -> None:
    port = free_port()
    server = await make_server(  # type: ignore[operator]
        "protocols = imap lmtp\nauth_failure_delay = 10ms\n"
        f"service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n"
        f"    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
    )
    assert isinstance(server, MailpushServer)

    def login() -> bytes:
        name = f"ghost\r\n{FORGED}".encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            stream = sock.makefile("rwb")
            stream.readline()
            stream.write(b"a LOGIN {%d}\r\n" % len(name))
            stream.flush()
            assert stream.readline().startswith(b"+")
            stream.write(name + b" wrong\r\n")
            stream.flush()
            return stream.readline()

    assert (await asyncio.to_thread(login)).startswith(b"a NO [AUTHENTICATIONFAILED]")
    lines = await wait_for_line(log_file, "Login failed")
    failed = [line for line in lines if "Login failed" in line]
    assert f"user=<ghost\\r\\n{FORGED}>" in failed[0]
    assert not [line for line in lines if line.startswith(FORGED)]


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_record(log_file: Path) -> None:
    log = logging.getLogger("mailpush.test")
    try:
        raise ValueError(f"bad input\n{FORGED}\rsecret http://u:pw@h/")
    except ValueError:
        log.exception("handling %s failed", "network\ntext")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert RECORD_START.match(lines[0]) and lines[0].endswith("handling network\\ntext failed")
    assert lines[1] == "  Traceback (most recent call last):"
    assert any(line.startswith("    File ") for line in lines)
    assert f"  {FORGED}\\rsecret http://u:***@h/" in lines
    assert all(line.startswith("  ") for line in lines[1:])


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("nul\x00 del\x7f esc\x1b", "nul\\x00 del\\x7f esc\\x1b"),
        ("c1\x85 ls\u2028 ps\u2029", "c1\\x85 ls\\u2028 ps\\u2029"),
        ("not utf-8: caf\udce9", "not utf-8: caf\\udce9"),
        ("café C:\\path", "café C:\\path"),
    ],
)
def test_control_characters_are_escaped_and_printable_text_kept(text: str, escaped: str) -> None:
    assert escape_control_characters(text) == escaped
