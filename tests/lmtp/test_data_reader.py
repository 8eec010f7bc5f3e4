"""DATA read in a few steps gives what aiosmtpd's own line-by-line reader gives.

Two LMTP servers on loopback, sent the same bytes in the same TCP chunks:
aiosmtpd's `LMTP` as it ships, and mailpush's `MailpushLMTP`, whose DATA
section is read by `lmtp/data_reader.py`. Both have the same small line and
size limits, so that long lines and oversized messages are common in the
generated input. For every stream the stored content (or the refusal's
reply code) is the same, and both servers read the next command after it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiosmtpd.lmtp import LMTP
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailpush.lmtp.server import MailpushLMTP
from mailpush.service_metrics import LmtpMetrics

LINE_LIMIT = 60
SIZE_LIMIT = 400


class Recorder:
    """The handler of both servers: accepts every recipient, records each message."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.metrics = LmtpMetrics()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.original_content)
        return "250 OK"

    def opened(self, connection: object) -> None:
        pass

    def closed(self, connection: object) -> None:
        pass


class Theirs(LMTP):
    line_length_limit = LINE_LIMIT


class Ours(MailpushLMTP):
    line_length_limit = LINE_LIMIT


class Pair:
    def __init__(self) -> None:
        self.theirs, self.ours = Recorder(), Recorder()
        self.servers: list[asyncio.Server] = []
        self.ports: list[int] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for make in (
            lambda: Theirs(self.theirs, data_size_limit=SIZE_LIMIT, decode_data=False),
            lambda: Ours(self.ours, data_size_limit=SIZE_LIMIT, decode_data=False,
                         enable_SMTPUTF8=True),
        ):  # fmt: skip
            server = await loop.create_server(make, "127.0.0.1", 0)
            self.servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    started = Pair()
    await started.start()
    yield started
    await started.stop()


def exchange(port: int, chunks: Sequence[bytes]) -> tuple[str, str]:
    """Send one transaction whose DATA section is `chunks`; the reply codes to the
    section and to a NOOP after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()  # greeting
        sock.sendall(b"LHLO test\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        sock.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        for _ in range(3):
            last = reader.readline()
        assert last.startswith(b"354"), last
        for chunk in chunks:
            sock.sendall(chunk)
        data_reply = reader.readline()
        sock.sendall(b"NOOP\r\n")
        noop_reply = reader.readline()
        return data_reply[:3].decode(), noop_reply[:3].decode()


#: Line contents that exercise the reader: dots where they matter, blank lines,
#: bare CR and LF, the terminator's pieces, lines around the line limit.
LINE = st.one_of(
    st.sampled_from([b"", b".", b"..", b".x", b"x.", b"a.b", b"\r", b"\n", b".\r", b"\n.",
                     b"\r\n.", b"x" * (LINE_LIMIT - 2), b"y" * (LINE_LIMIT - 1),
                     b"z" * LINE_LIMIT, b"w" * (LINE_LIMIT + 5)]),
    st.binary(max_size=20),
)  # fmt: skip


@st.composite
def data_sections(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    lines = draw(st.lists(LINE, max_size=14))
    body = b"".join(line + b"\r\n" for line in lines)
    if draw(st.booleans()) and len(body) < 2 * SIZE_LIMIT:
        body += b"v" * draw(st.integers(0, SIZE_LIMIT)) + b"\r\n"  # around the size limit
    stream = body + b".\r\n"
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=6))))
    return stream, cuts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(section=data_sections())
async def test_every_section_is_read_as_aiosmtpd_reads_it(
    pair: Pair, section: tuple[bytes, list[int]]
) -> None:
    stream, cuts = section
    # A line "." inside the section ends it there, and what follows is read as commands:
    # six unknown ones make aiosmtpd answer and close (both servers), and the NOOP after
    # them then races the close (the client may get a reset instead of the replies).
    after_end = (b"\r\n" + stream).split(b"\r\n.\r\n", 1)[1]
    assume(after_end.count(b"\n") <= 3)
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    theirs = await asyncio.to_thread(exchange, pair.ports[0], chunks)
    ours = await asyncio.to_thread(exchange, pair.ports[1], chunks)
    assert ours == theirs, stream
    if theirs[0] == "250":
        assert pair.ours.messages[-1] == pair.theirs.messages[-1], stream


async def test_an_empty_section_is_answered_without_waiting_for_more(pair: Pair) -> None:
    replies = [await asyncio.to_thread(exchange, port, [b".\r\n"]) for port in pair.ports]
    assert replies == [("250", "250"), ("250", "250")]
    assert pair.ours.messages == pair.theirs.messages == [b""]


async def test_a_large_message_read_through_the_reader_limit_is_whole(pair: Pair) -> None:
    """More than the reader's limit (the line limit) between two ends of line: the
    reader takes it in chunks; with no size limit hit, it arrives whole."""
    body = b"".join(b"line %d.\r\n" % n for n in range(30))
    stream = body[:SIZE_LIMIT - 40] + b"\r\n.\r\n"
    replies = [await asyncio.to_thread(exchange, port, [stream]) for port in pair.ports]
    assert replies[0] == replies[1]
    assert pair.ours.messages == pair.theirs.messages
