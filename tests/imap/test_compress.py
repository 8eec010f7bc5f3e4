"""COMPRESS=DEFLATE (RFC 4978): a whole session in raw deflate, through imaplib.

The client side is imaplib with zlib around its socket (deflate_client.py):
if the server did not end each response burst with a sync flush, the client
could not inflate the reply it waits for and these tests would time out.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import socket
import ssl
import tracemalloc
import zlib
from pathlib import Path

from .conftest import PASSWORD, ImapStack, StackFactory
from .deflate_client import DeflateIMAP4, DeflateIMAP4_SSL, deflate_burst
from .test_protocol_limits import certificate, client_context, server_context

__all__ = ["certificate"]  # the module fixture, shared with the TLS tests

MESSAGE = (
    b"From: Amy <amy@example.net>\r\nTo: alice@example.org\r\nSubject: compressed\r\n\r\n"
    + b"".join(b"line %06d of a long body, compressible but not trivially\r\n" % i
               for i in range(20000))
)  # fmt: skip


def _compressed_session(stack: ImapStack) -> DeflateIMAP4:
    client = DeflateIMAP4(stack.host, stack.port, timeout=10)
    client.login("alice", PASSWORD)
    typ, data = client.compress()
    assert (typ, data) == ("OK", [b"Begin compression."])
    return client


async def test_capability_is_offered_after_login_only(stack: ImapStack) -> None:
    def capabilities() -> tuple[tuple[str, ...], str]:
        client = imaplib.IMAP4(stack.host, stack.port)
        before = client.capabilities
        client.login("alice", PASSWORD)
        _, data = client.capability()
        client.logout()
        return before, data[0].decode()

    before, after = await asyncio.to_thread(capabilities)
    assert "COMPRESS=DEFLATE" not in before
    assert "COMPRESS=DEFLATE" in after.split()


async def test_a_compressed_session_reads_writes_and_refuses_a_second_compress(
    stack: ImapStack,
) -> None:
    def session() -> None:
        client = _compressed_session(stack)
        assert client.select("INBOX")[0] == "OK"
        assert client.noop() == ("OK", [b"NOOP completed."])
        typ, data = client._simple_command("COMPRESS", "DEFLATE")
        assert (typ, data) == (
            "NO", [b"[COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled."]
        )
        # Every burst ends with a sync flush: the stream so far ends on its marker.
        assert client.raw_received.endswith(b"\x00\x00\xff\xff")
        assert client.logout()[0] == "BYE"

    await asyncio.to_thread(session)


async def test_unknown_mechanism_and_bad_arguments_answer_as_dovecot(stack: ImapStack) -> None:
    def session() -> list[bytes]:
        with socket.create_connection((stack.host, stack.port), timeout=5) as sock:
            file = sock.makefile("rb")
            file.readline()
            answers = []
            for line in (b"a LOGIN alice secret", b"b COMPRESS GZIP", b"c COMPRESS",
                         b"d COMPRESS DEFLATE X", b"e NOOP"):  # fmt: skip
                sock.sendall(line + b"\r\n")
                answers.append(file.readline())
            return answers

    answers = await asyncio.to_thread(session)
    assert answers[1:] == [
        b"b NO Unknown compression mechanism.\r\n",
        b"c BAD Error in IMAP command COMPRESS: Invalid arguments.\r\n",
        b"d BAD Error in IMAP command COMPRESS: Invalid arguments.\r\n",
        b"e OK NOOP completed.\r\n",  # still uncompressed: nothing was switched
    ]


async def test_spooled_append_and_a_long_fetch_survive_compression(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(append_spool_threshold=64 * 1024)

    def session() -> bytes:
        client = _compressed_session(stack)
        typ, data = client.append("INBOX", None, None, MESSAGE)
        assert typ == "OK", data
        client.select("INBOX")
        typ, fetched = client.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK"
        client.logout()
        return fetched[0][1]  # type: ignore[index]

    assert len(MESSAGE) > 1024 * 1024  # above the spool threshold, and a multi-write FETCH
    assert await asyncio.to_thread(session) == MESSAGE


async def test_idle_pushes_a_delivery_compressed(stack: ImapStack) -> None:
    def session() -> list[bytes]:
        client = _compressed_session(stack)
        client.select("INBOX")
        client.send(b"i1 IDLE\r\n")
        assert client.readline().startswith(b"+ ")
        with smtplib.LMTP("127.0.0.1", stack.lmtp_port) as lmtp:
            lmtp.sendmail("amy@example.net", ["alice@example.org"], MESSAGE[:200])
        pushed = [client.readline()]
        client.send(b"DONE\r\n")
        while not pushed[-1].startswith(b"i1 "):
            pushed.append(client.readline())
        client.logout()
        return pushed

    pushed = await asyncio.to_thread(session)
    assert pushed[0] == b"* 1 EXISTS\r\n"
    assert pushed[-1] == b"i1 OK Idle completed.\r\n"


async def test_commands_pipelined_after_compress_are_inflated(stack: ImapStack) -> None:
    """What follows `COMPRESS DEFLATE` in the same packet is already compressed."""

    def session() -> bytes:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        inflater = zlib.decompressobj(-15)
        with socket.create_connection((stack.host, stack.port), timeout=5) as sock:
            file = sock.makefile("rb")
            file.readline()
            sock.sendall(b"a LOGIN alice secret\r\n")
            file.readline()
            sock.sendall(
                b"b COMPRESS DEFLATE\r\n" + deflate_burst(compressor, b"c NOOP\r\n")
            )
            assert file.readline() == b"b OK Begin compression.\r\n"
            plain = b""
            while not plain.endswith(b"\r\n"):
                plain += inflater.decompress(file.read1(4096))
            return plain

    assert await asyncio.to_thread(session) == b"c OK NOOP completed.\r\n"


async def test_a_deflate_bomb_is_inflated_within_the_line_limit(stack: ImapStack) -> None:
    """64 MiB of one line, sent as ~64 KiB: refused as too long, in bounded memory."""
    bomb = b"x BOMB " + b"a" * (64 * 1024 * 1024) + b"\r\n"

    def session(client: DeflateIMAP4) -> tuple[bytes, tuple[str, list[bytes]]]:
        client.send_raw_compressed(bomb)
        answer = client.readline()
        return answer, client.noop()

    client = await asyncio.to_thread(_compressed_session, stack)
    tracemalloc.start()
    try:
        answer, noop = await asyncio.to_thread(session, client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await asyncio.to_thread(client.logout)
    assert answer == b"x BAD Command line too long\r\n"
    assert noop[0] == "OK"
    # The bomb inflates to 64 MiB; the server holds at most a read buffer or two of it.
    assert peak < 8 * 1024 * 1024, peak


async def test_invalid_deflate_data_ends_the_connection(stack: ImapStack) -> None:
    def session() -> bytes:
        client = _compressed_session(stack)
        client.sock.sendall(b"\xff" * 64)  # not a valid deflate block
        client.sock.settimeout(5)
        rest = b""
        while chunk := client.sock.recv(4096):
            rest += chunk
        return rest

    def greeting() -> bytes:
        with socket.create_connection((stack.host, stack.port), timeout=5) as sock:
            return sock.recv(4096)

    assert await asyncio.to_thread(session) == b""
    assert (await asyncio.to_thread(greeting)).startswith(b"* OK")  # the server lives on


async def test_compression_runs_inside_starttls(
    make_stack: StackFactory, certificate: tuple[Path, Path]
) -> None:
    stack = await make_stack(starttls=server_context(certificate))

    def session() -> tuple[str, bytes]:
        client = DeflateIMAP4(stack.host, stack.port, timeout=10)
        client.starttls(client_context())
        client.login("alice", PASSWORD)
        assert client.compress()[0] == "OK"
        client.append("INBOX", None, None, MESSAGE[:5000])
        client.select("INBOX")
        _, fetched = client.fetch("1", "(BODY.PEEK[])")
        cipher = client.sock.cipher()
        client.logout()
        return str(cipher), fetched[0][1]  # type: ignore[index]

    cipher, body = await asyncio.to_thread(session)
    assert cipher and body == MESSAGE[:5000]


async def test_compression_runs_inside_implicit_tls(
    make_stack: StackFactory, certificate: tuple[Path, Path]
) -> None:
    stack = await make_stack(tls=server_context(certificate))

    def session() -> tuple[str, list[bytes]]:
        client = DeflateIMAP4_SSL(stack.host, stack.port, ssl_context=client_context(),
                                  timeout=10)  # fmt: skip
        client.login("alice", PASSWORD)
        assert client.compress()[0] == "OK"
        assert isinstance(client.sock, ssl.SSLSocket)
        result = client.list()
        client.logout()
        return result[0], result[1]  # type: ignore[return-value]

    typ, boxes = await asyncio.to_thread(session)
    assert typ == "OK" and any(b'"/" INBOX' in box for box in boxes)
