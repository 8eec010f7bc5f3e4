"""Wire-level behaviour: literals, limits, BAD handling, TLS and plaintext-auth policy."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpush.auth import add_user
from mailpush.imap import ImapOptions, ImapServer
from mailpush.store import SqliteStore

from .conftest import ImapStack, StackFactory, passwd_authenticator


class RawClient:
    """A line-level IMAP client that sees exactly what the server writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, stack: ImapStack, tls: ssl.SSLContext | None = None
    ) -> tuple[RawClient, bytes]:
        reader, writer = await asyncio.open_connection(stack.host, stack.port, ssl=tls)
        client = cls(reader, writer)
        greeting = await client.line()
        return client, greeting

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 5)

    async def command(self, text: bytes, tag: bytes | None = None) -> list[bytes]:
        tag = tag or text.split(b" ", 1)[0]
        self.writer.write(text + b"\r\n")
        lines = []
        while True:
            line = await self.line()
            if not line:
                return lines
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    async def close(self) -> None:
        self.writer.close()


async def test_synchronising_literal_gets_a_continuation(stack: ImapStack) -> None:
    client, _ = await RawClient.connect(stack)
    client.writer.write(b"a LOGIN {5}\r\n")
    assert (await client.line()).startswith(b"+ ")
    lines = await client.command(b'alice "secret"', tag=b"a")
    assert lines[-1].startswith(b"a OK")
    await client.close()


async def test_non_synchronising_literals_need_no_round_trip(stack: ImapStack) -> None:
    client, _ = await RawClient.connect(stack)
    await client.command(b"a LOGIN alice secret")
    message = b"Subject: x\r\n\r\nbody\r\n"
    lines = await client.command(b"b APPEND INBOX {%d+}\r\n%s" % (len(message), message))
    assert lines[-1].startswith(b"b OK [APPENDUID ")
    await client.close()


async def test_multiappend_saves_every_message_in_one_command(stack: ImapStack) -> None:
    client, _ = await RawClient.connect(stack)
    await client.command(b"a LOGIN alice secret")
    lines = await client.command(b"b APPEND INBOX {3+}\r\none (\\Seen) {3+}\r\ntwo")
    assert b"[APPENDUID" in lines[-1] and b" 1:2]" in lines[-1]
    await client.close()


async def test_a_literal_over_the_append_limit_is_refused_before_it_is_sent(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_literal_size=100)
    client, _ = await RawClient.connect(stack)
    await client.command(b"a LOGIN alice secret")
    lines = await client.command(b"b APPEND INBOX {101}")
    assert lines == [b"b NO [TOOBIG] Literal of 101 bytes exceeds the limit of 100 bytes\r\n"]
    lines = await client.command(b"c APPEND INBOX {101+}\r\n" + b"x" * 101)
    assert lines[-1].startswith(b"c NO [TOOBIG]")
    assert (await client.command(b"d NOOP"))[-1].startswith(b"d OK")
    await client.close()


async def test_an_overlong_line_is_refused_and_the_connection_survives(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(max_line_length=1000)
    client, _ = await RawClient.connect(stack)
    lines = await client.command(b"a NOOP " + b"x" * 5000)
    assert lines == [b"a BAD Command line too long\r\n"]
    assert (await client.command(b"b NOOP"))[-1].startswith(b"b OK")
    await client.close()


async def test_malformed_commands_get_bad_with_a_reason(stack: ImapStack) -> None:
    client, _ = await RawClient.connect(stack)
    await client.command(b"a LOGIN alice secret")
    await client.command(b"s SELECT INBOX")
    replies = [
        await client.command(b"b FETCH"),
        await client.command(b"c FETCH 1:x FLAGS"),
        await client.command(b"d FROBNICATE"),
        await client.command(b'e LOGIN "x'),
    ]
    for lines in replies:
        assert b" BAD " in lines[-1] and len(lines[-1]) > 10
    assert (await client.command(b"f NOOP"))[-1].startswith(b"f OK")
    await client.close()


async def test_three_bad_commands_before_login_close_the_connection(stack: ImapStack) -> None:
    client, _ = await RawClient.connect(stack)
    for tag in (b"a", b"b"):
        assert b"BAD" in (await client.command(tag + b" BOGUS"))[-1]
    client.writer.write(b"c BOGUS\r\n")
    assert b"BAD" in await client.line()
    assert (await client.line()).startswith(b"* BYE")
    assert await client.line() == b""


async def test_repeated_failed_logins_are_delayed_and_disconnected(stack: ImapStack) -> None:
    client, _ = await RawClient.connect(stack)
    for tag in (b"a", b"b"):
        lines = await client.command(tag + b" LOGIN alice wrong")
        assert lines[-1] == tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    lines = await client.command(b"c LOGIN alice wrong")
    assert lines[0].startswith(b"* BYE")
    assert await client.line() == b""


async def test_idle_connection_is_closed_after_the_timeout(make_stack: StackFactory) -> None:
    stack = await make_stack(idle_timeout=0.2)
    client, _ = await RawClient.connect(stack)
    assert (await client.line()).startswith(b"* BYE Disconnected for inactivity")


async def test_responses_are_written_whole(stack: ImapStack) -> None:
    client, _ = await RawClient.connect(stack)
    await client.command(b"a LOGIN alice secret")
    client.writer.write(b"b SELECT INBOX\r\n")
    await asyncio.sleep(0.2)
    chunk = await asyncio.wait_for(client.reader.read(65536), 5)
    assert chunk.startswith(b"* FLAGS")
    assert chunk.endswith(b"b OK [READ-WRITE] Select completed.\r\n")
    await client.close()


@pytest.fixture(scope="module")
def threaded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A server on its own loop in a thread, so synchronous hypothesis tests can hammer it."""
    directory = tmp_path_factory.mktemp("fuzz")
    users = directory / "users"
    add_user(users, "alice", "secret", "PLAIN")
    store = SqliteStore(directory / "mail.db", fsync="never")
    store.open()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    options = ImapOptions(port=0, auth_failure_delay=0.0, idle_timeout=5)
    server = ImapServer(store, passwd_authenticator(users), options)
    address = asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    yield address
    asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    store.close()


_FRAGMENTS = st.sampled_from(
    [b"a FETCH 1:* (BODY[", b"b SELECT {3}", b"c LOGIN alice secret", b"d SEARCH OR (",
     b"e STORE 1 +FLAGS (\\", b"f APPEND INBOX {2+}", b"g UID FETCH * BODY.PEEK[1.2.MIME]<0.1>",
     b"h IDLE", b"DONE", b"\xff\xfe", b"i SELECT INBOX", b"j APPEND INBOX {3+}\r\nabc",
     b"k FETCH 1 (BODY[] ENVELOPE BODYSTRUCTURE)", b"l STORE 1 FLAGS (\\Seen x)"]
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=60), _FRAGMENTS), max_size=8))
def test_no_input_crashes_the_connection_handler(
    threaded_server: tuple[str, int], lines: list[bytes]
) -> None:
    with socket.create_connection(threaded_server, timeout=5) as sock:
        sock.settimeout(0.5)
        assert sock.recv(4096).startswith(b"* OK")
        sock.sendall(b"".join(line + b"\r\n" for line in lines) + b"DONE\r\nz LOGOUT\r\n")
        try:
            while sock.recv(65536):
                pass
        except TimeoutError:
            pass  # inside a literal, waiting for more: not a crash
    with socket.create_connection(threaded_server, timeout=5) as sock:
        assert sock.recv(4096).startswith(b"* OK")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_starttls_upgrades_and_enables_login_when_plaintext_is_refused(
    make_stack: StackFactory, certificate: tuple[Path, Path]
) -> None:
    stack = await make_stack(starttls=server_context(certificate), allow_plaintext_auth="never")
    client, greeting = await RawClient.connect(stack)
    assert b"STARTTLS" in greeting and b"LOGINDISABLED" in greeting
    lines = await client.command(b"a LOGIN alice secret")
    assert b"[PRIVACYREQUIRED]" in lines[-1]
    assert (await client.command(b"b STARTTLS"))[-1].startswith(b"b OK")
    await client.writer.start_tls(client_context())
    caps = await client.command(b"c CAPABILITY")
    assert b"AUTH=PLAIN" in caps[0] and b"STARTTLS" not in caps[0]
    assert (await client.command(b"d LOGIN alice secret"))[-1].startswith(b"d OK")
    await client.close()


async def test_implicit_tls_listener_speaks_tls_from_the_first_byte(
    make_stack: StackFactory, certificate: tuple[Path, Path]
) -> None:
    stack = await make_stack(tls=server_context(certificate), allow_plaintext_auth="never")
    client, greeting = await RawClient.connect(stack, tls=client_context())
    assert greeting.startswith(b"* OK") and b"AUTH=PLAIN" in greeting
    assert (await client.command(b"a LOGIN alice secret"))[-1].startswith(b"a OK")
    await client.close()


async def test_plaintext_pipelined_after_starttls_is_discarded(
    make_stack: StackFactory, certificate: tuple[Path, Path]
) -> None:
    stack = await make_stack(starttls=server_context(certificate))
    client, _ = await RawClient.connect(stack)
    client.writer.write(b"a STARTTLS\r\nb LOGIN alice secret\r\n")
    assert (await client.line()).startswith(b"a OK")
    await client.writer.start_tls(client_context())
    lines = await client.command(b"c CAPABILITY")
    assert not any(line.startswith(b"b ") for line in lines)
    await client.close()
