"""One log line per filed message, in Dovecot's `deliver_log_format` shape.

Dovecot 2.3.19 logs (bench/dovecot_instance.py, one LMTP delivery):
`lmtp(alice)<6365><kG9cISPGE2vdGAAAg+zDdQ>: Info: msgid=<abc@example>: saved mail to INBOX`;
mailpush's default format adds the size and the client's address. Messages go
over real LMTP into an in-process server whose log is a real file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import smtplib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailpush.logging_config import configure_logging
from mailpush.logs.settings import LogSettings
from mailpush.server import MailpushServer
from tests.conftest import lmtp_port, write_config

MESSAGE = b"Message-ID: <abc@example>\r\nFrom: Ann <ann@example.org>\r\nSubject: hi\r\n\r\nbody\r\n"
SESSION_ID = r"[A-Za-z0-9+/]{22}(?::T\d+)?(?::R\d+)?"
PREFIX = rf"lmtp\((?P<user>\w+)\)<{os.getpid()}><(?P<session>{SESSION_ID})>"


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The process log in a file, as `mailpush serve` sets it up; the test runner's restored."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    path = tmp_path / "mailpush.log"
    configure_logging(LogSettings(path, path, path))
    yield path
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def delivery_lines(log: Path) -> list[re.Match[str]]:
    found = []
    for line in log.read_text(encoding="utf-8").splitlines():
        match = re.search(PREFIX + r": Info: (?P<text>.*)$", line)
        if match is not None:
            found.append(match)
    return found


def lmtp_transactions(port: int, transactions: list[tuple[list[str], bytes]]) -> None:
    """Each (recipients, message) as one LMTP transaction on one connection; every
    recipient's reply is read (smtplib reads only the first)."""
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo("test")
        for recipients, message in transactions:
            client.mail("sender@example.net")
            for rcpt in recipients:
                client.rcpt(rcpt)
            assert client.data(message)[0] == 250
            for _ in recipients[1:]:
                assert client.getreply()[0] == 250


async def test_a_delivery_logs_msgid_size_client_and_mailbox_under_the_session_prefix(
    log_file: Path, make_server: Callable[..., object]
) -> None:
    server = await make_server()  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(lmtp_transactions, lmtp_port(server), [(["alice"], MESSAGE)])

    [line] = delivery_lines(log_file)
    assert line["user"] == "alice"
    assert line["text"] == (
        f"msgid=<abc@example>, size={len(MESSAGE)}, rip=127.0.0.1: saved mail to INBOX"
    )


async def test_session_ids_follow_dovecot_per_recipient_and_per_transaction(
    log_file: Path, make_server: Callable[..., object]
) -> None:
    """Observed in Dovecot 2.3.19: `<id>`, `<id>:R2` for the second recipient, `<id>:T2`
    for the second transaction of the connection."""
    server = await make_server()  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    await asyncio.to_thread(
        lmtp_transactions, lmtp_port(server),
        [(["alice", "bob"], MESSAGE), (["carol"], b"Subject: no id\r\n\r\nx\r\n")],
    )  # fmt: skip

    lines = sorted(delivery_lines(log_file), key=lambda m: m["session"])
    base = lines[0]["session"]
    assert [(m["user"], m["session"]) for m in lines] == [
        ("alice", base), ("bob", f"{base}:R2"), ("carol", f"{base}:T2"),
    ]  # fmt: skip
    assert lines[2]["text"].startswith("msgid=unspecified, ")


async def test_deliver_log_format_takes_dovecots_variables(
    log_file: Path, make_server: Callable[..., object]
) -> None:
    server = await make_server(  # type: ignore[operator]
        'deliver_log_format = "%m|%s|%f|%e|%p|%w|%{session}|%{nope}: %$"\n'
        "lda_mailbox_autocreate = yes\nlmtp_save_to_detail_mailbox = yes\n"
    )
    assert isinstance(server, MailpushServer)
    message = (
        b"Message-ID: <id@x>\r\nFrom: Ann <ann@example.org>\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n"
        b"\r\nbare\nlf\r\n"
    )
    await asyncio.to_thread(lmtp_transactions, lmtp_port(server), [(["alice+Work"], message)])

    [line] = delivery_lines(log_file)
    vsize = len(message) + 1  # the bare LF counts as CRLF
    assert line["text"] == (
        f"<id@x>|hé|ann@example.org|sender@example.net|{len(message)}|{vsize}"
        f"|{line['session']}|%{{nope}}: saved mail to Work"
    )


async def test_network_text_in_a_header_cannot_forge_a_line(
    log_file: Path, make_server: Callable[..., object]
) -> None:
    server = await make_server()  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    forged = "Dec 05 08:00:00 imap-login: Info: Login: user=<root>"
    message = f"Message-ID: <a@b>\x1b[2J\r\n {forged}\r\n\r\nx\r\n".encode()
    await asyncio.to_thread(lmtp_transactions, lmtp_port(server), [(["alice"], message)])

    text = log_file.read_text(encoding="utf-8")
    assert "\x1b" not in text
    assert "msgid=<a@b>\\x1b[2J " + forged in text
    assert not any(line.startswith(forged) for line in text.splitlines())


def test_mailpush_deliver_logs_under_dovecot_lda_prefix(tmp_path: Path) -> None:
    log = tmp_path / "mailpush.log"
    config = write_config(tmp_path, f"log_path = {log}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", "deliver", "--config", str(config), "-d", "alice"],
        input=MESSAGE, capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    [line] = [line for line in log.read_text(encoding="utf-8").splitlines() if "msgid=" in line]
    assert re.fullmatch(
        r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d lda\(alice\)<\d+><[A-Za-z0-9+/]{22}>: Info: "
        rf"msgid=<abc@example>, size={len(MESSAGE)}, rip=: saved mail to INBOX",
        line,
    ), line
