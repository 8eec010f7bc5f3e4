"""LMTP against hostile or broken clients: one reply per accepted recipient, always.

An MTA counts the replies after DATA against the recipients it got 250 for; a
reply that is missing or a 5xx for a stored message makes it bounce mail that
was delivered. Everything here talks raw bytes over loopback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from mailpush.auth import add_user
from mailpush.errors import MailboxNotFoundError
from mailpush.server import MailpushServer
from tests.conftest import lmtp_port

MESSAGE = b"From: s@example.net\r\nSubject: hardening\r\n\r\nbody\r\n"


def converse(
    port: int, commands: list[bytes], data: bytes | None = None, data_replies: int = 0
) -> list[bytes]:
    """Send `commands` one by one (each answered before the next), then `data` if given;
    return every final reply line (continuation lines of LHLO are dropped)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rwb")
        stream.readline()
        replies: list[bytes] = []
        for command in commands:
            stream.write(command + b"\r\n")
            stream.flush()
            while True:
                line = stream.readline()
                if line[3:4] != b"-":
                    break
            replies.append(line.rstrip(b"\r\n"))
        if data is not None:
            stream.write(data + b".\r\n")
            stream.flush()
            replies += [stream.readline().rstrip(b"\r\n") for _ in range(data_replies)]
        stream.write(b"QUIT\r\n")
        stream.flush()
        replies.append(stream.readline().rstrip(b"\r\n"))
        # Nothing may follow the QUIT reply: an extra line means a reply count was off.
        assert stream.read() == b""
        return replies


async def messages(server: MailpushServer, user: str) -> int:
    """Messages in the user's INBOX (0 when nothing was ever delivered to them)."""
    assert server.store is not None
    try:
        return (await server.store.status(user, "INBOX")).messages
    except MailboxNotFoundError:
        return 0


async def test_a_recipient_with_bytes_that_are_not_utf8_is_refused_at_rcpt(
    server: MailpushServer,
) -> None:
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<sender@example.net>",
            b"RCPT TO:<alice+caf\xe9@example.org>",
            b"RCPT TO:<bob@example.org>",
            b"DATA",
        ],
        MESSAGE,
        data_replies=1,
    )
    assert replies[2].startswith(b"501 5.1.3 ")
    assert replies[3].startswith(b"250 ")
    assert replies[4].startswith(b"354 ")
    assert replies[5].startswith(b"250 2.0.0 <bob@example.org> Saved")
    assert replies[6].startswith(b"221 ")
    assert await messages(server, "alice") == 0
    assert await messages(server, "bob") == 1


async def test_the_same_recipient_after_smtputf8_is_refused_too(server: MailpushServer) -> None:
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<sender@example.net> SMTPUTF8",
            b"RCPT TO:<alice+caf\xe9@example.org>",
            b"RCPT TO:<carol@example.org>",
            b"DATA",
        ],
        MESSAGE,
        data_replies=1,
    )
    assert replies[1].startswith(b"250 ")
    assert replies[2].startswith(b"501 5.1.3 ")
    assert replies[5].startswith(b"250 2.0.0 <carol@example.org> Saved")
    assert await messages(server, "alice") == 0
    assert await messages(server, "carol") == 1


async def test_a_utf8_recipient_needs_smtputf8_on_mail_from(server: MailpushServer) -> None:
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<sender@example.net>",
            "RCPT TO:<josé@example.org>".encode(),
            b"RCPT TO:<bob@example.org>",
            b"DATA",
        ],
        MESSAGE,
        data_replies=1,
    )
    # RFC 6531: refused before anything is stored, and the reply stays ASCII.
    assert replies[2].startswith(b"553 5.6.7 <jos?@example.org> ")
    assert replies[5].startswith(b"250 2.0.0 <bob@example.org> Saved")
    assert await messages(server, "bob") == 1


async def test_smtputf8_delivers_to_a_user_with_a_utf8_name(
    server: MailpushServer, tmp_path: Path
) -> None:
    add_user(tmp_path / "users", "josé", "secret", "PLAIN")
    features = await asyncio.to_thread(converse, lmtp_port(server), [b"LHLO client.example"])
    assert features[0].startswith(b"250 ")
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            "MAIL FROM:<expéditeur@example.net> SMTPUTF8".encode(),
            "RCPT TO:<josé+reçu@example.org>".encode(),
            b"RCPT TO:<bob@example.org>",
            b"DATA",
        ],
        MESSAGE,
        data_replies=2,
    )
    assert replies[1].startswith(b"250 ")
    assert replies[2].startswith(b"250 ")
    assert replies[5].startswith("250 2.0.0 <josé+reçu@example.org> Saved".encode())
    assert replies[6].startswith(b"250 2.0.0 <bob@example.org> Saved")
    assert await messages(server, "josé") == 1
    assert await messages(server, "bob") == 1


async def test_lhlo_advertises_smtputf8(server: MailpushServer) -> None:
    def lhlo() -> list[bytes]:
        with socket.create_connection(("127.0.0.1", lmtp_port(server)), timeout=10) as sock:
            stream = sock.makefile("rwb")
            stream.readline()
            stream.write(b"LHLO client.example\r\n")
            stream.flush()
            lines = [stream.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(stream.readline())
            return [line[4:].strip() for line in lines]

    assert b"SMTPUTF8" in await asyncio.to_thread(lhlo)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (b"garbage", b"500 5.5.2 "),
        (b"\x00\x00\x00", b"500 5.5.2 "),
        (b"MAIL\x00FROM:<a@example.net>", b"500 5.5.2 "),
        (b"RCPT TO:<" + b"a" * 5000 + b"@example.org>", b"500 5.5.2 "),
        (b"MAIL FROM:<a@example.net> SIZE=lots", b"501 5.5.4 "),
        (b"MAIL FROM:<a@example.net> SMTPUTF8=yes", b"501 5.5.4 "),
        (b"MAIL FROM:<a@example.net> BODY=9BIT", b"501 5.5.4 "),
        (b"MAIL FROM:<a@example.net> XUNKNOWN=1", b"555 5.5.4 "),
        (b"MAIL FROM:<a@example.net> X-UNKNOWN=1", b"501 5.5.4 "),
        (b"MAIL FROM:<se\x00nder@example.net>", b"501 5.1.7 "),
        (b"MAIL FROM:<se\rnder@example.net>", b"501 5.1.7 "),
        (b"MAIL FROM:<\xff\xfe@example.net>", b"501 5.1.7 "),
        (b"MAIL FROM:<<<>>>", b"501 5.1.7 Invalid FROM: Invalid character in path"),
    ],
)
async def test_malformed_commands_get_an_error_reply_and_no_traceback(
    server: MailpushServer,
    caplog: pytest.LogCaptureFixture,
    command: bytes,
    code: bytes,
) -> None:
    caplog.set_level(logging.DEBUG)
    replies = await asyncio.to_thread(
        converse, lmtp_port(server), [b"LHLO client.example", command, b"NOOP"]
    )
    assert replies[1].startswith(code), replies[1]
    # The reply echoes nothing the client could use to break the reply framing.
    assert all(32 <= byte < 127 for byte in replies[1])
    assert replies[2].startswith(b"250 ")  # the session goes on
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_recipient_with_a_nul_byte_is_refused_and_the_rest_delivered(
    server: MailpushServer, caplog: pytest.LogCaptureFixture
) -> None:
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<sender@example.net>",
            b"RCPT TO:<ali\x00ce@example.org>",
            b"RCPT TO:<alice@example.org>",
            b"DATA",
        ],
        MESSAGE,
        data_replies=1,
    )
    assert replies[2].startswith(b"501 5.1.3 ")
    assert replies[5].startswith(b"250 2.0.0 <alice@example.org> Saved")
    assert not [r for r in caplog.records if r.exc_info]


async def test_malformed_paths_are_refused_with_the_reason_and_nothing_is_stored(
    server: MailpushServer,
) -> None:
    """aiosmtpd's reading took all of these with 250; Dovecot refuses each with 501."""
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<bad address@example.net>",
            b"MAIL FROM:sender@example.net",
            b"MAIL FROM: <sender@example.net>",
            b"MAIL FROM:<sender@example.net",
            b"MAIL FROM:<sender@example.net>",
            b"RCPT TO:<alice@example.org",
            b"RCPT TO:<>",
            b"RCPT TO:<al ice@example.org>",
            b"RCPT TO:<bob@example.org>",
            b"DATA",
        ],
        MESSAGE,
        data_replies=1,
    )
    assert replies[1:9] == [
        b"501 5.1.7 Invalid FROM: Invalid character in local part",
        b"501 5.1.7 Invalid FROM: Missing '<' at beginning of path",
        b"501 5.1.7 Invalid FROM: Unexpected whitespace before path",
        b"501 5.1.7 Invalid FROM: Missing '>' at end of path",
        b"250 2.1.0 OK",
        b"501 5.1.3 Invalid TO: Missing '>' at end of path",
        b"501 5.1.3 Invalid TO: Null path not allowed",
        b"501 5.1.3 Invalid TO: Invalid character in local part",
    ]
    assert replies[11].startswith(b"250 2.0.0 <bob@example.org> Saved")
    assert await messages(server, "alice") == 0
    assert await messages(server, "bob") == 1


async def test_the_null_sender_and_a_source_route_are_taken(server: MailpushServer) -> None:
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<>",
            b"RCPT TO:<@relay.example:alice@example.org>",
            b"RCPT TO:<\"bob\"@example.org>",
            b"DATA",
        ],
        MESSAGE,
        data_replies=2,
    )
    assert replies[1:4] == [b"250 2.1.0 OK", b"250 2.1.5 OK", b"250 2.1.5 OK"]
    assert replies[5].startswith(b"250 2.0.0 <alice@example.org> Saved")
    assert replies[6].startswith(b"250 2.0.0 <bob@example.org> Saved")


async def test_a_line_too_long_in_data_is_refused_once_per_recipient(
    server: MailpushServer,
) -> None:
    body = b"Subject: long\r\n\r\n" + b"y" * (2 * 1024 * 1024) + b"\r\n"
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<sender@example.net>",
            b"RCPT TO:<alice@example.org>",
            b"RCPT TO:<bob@example.org>",
            b"DATA",
        ],
        body,
        data_replies=2,
    )
    assert [reply[:4] for reply in replies[5:7]] == [b"500 ", b"500 "], replies
    assert replies[7].startswith(b"221 ")  # and nothing after it (checked by converse)
    assert await messages(server, "alice") == 0


async def test_a_message_over_the_size_limit_is_refused_once_per_recipient(
    make_server: Callable[..., object],
) -> None:
    server = await make_server("mailpush_max_message_size = 1k\n")  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<sender@example.net>",
            b"RCPT TO:<alice@example.org>",
            b"RCPT TO:<bob@example.org>",
            b"RCPT TO:<carol@example.org>",
            b"DATA",
        ],
        b"Subject: big\r\n\r\n" + b"z" * 2000 + b"\r\n",
        data_replies=3,
    )
    assert [reply[:10] for reply in replies[6:9]] == [b"552 5.3.4 "] * 3, replies
    assert replies[9].startswith(b"221 ")


async def test_a_refused_data_command_gets_one_reply(server: MailpushServer) -> None:
    replies = await asyncio.to_thread(
        converse,
        lmtp_port(server),
        [
            b"LHLO client.example",
            b"MAIL FROM:<sender@example.net>",
            b"RCPT TO:<alice@example.org>",
            b"RCPT TO:<bob@example.org>",
            b"DATA now",
            b"NOOP",
        ],
    )
    assert replies[4].startswith(b"501 ")
    assert replies[5].startswith(b"250 ")
