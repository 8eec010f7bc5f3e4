"""What a client or a sender controls must not freeze the server or break a mailbox.

Huge sequence sets and long SEARCH programs are evaluated without holding the
event loop (issue 12: nothing a client sends runs unbounded on the loop); a
message nested thousands of multiparts deep is delivered and stays
searchable and fetchable; a literal outside APPEND counts against the line
limit, as in Dovecot.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

from mailpush.store import NewMessage

from .conftest import ImapStack
from .test_protocol_limits import RawClient

T = TypeVar("T")

MESSAGES = 3000
PLAIN = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
#: The longest the loop may stall while one command runs (before the fixes: seconds).
MAX_STALL = 0.4


async def fill_inbox(stack: ImapStack, count: int = MESSAGES) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    for start in range(0, count, 1000):
        await stack.store.append("alice", "INBOX", [NewMessage(PLAIN)] * min(1000, count - start))


async def selected_client(stack: ImapStack) -> RawClient:
    reader, writer = await asyncio.open_connection(stack.host, stack.port, limit=2**24)
    client = RawClient(reader, writer)
    await client.line()
    await client.command(b"a LOGIN alice secret")
    assert (await client.command(b"b SELECT INBOX"))[-1].startswith(b"b OK")
    return client


@asynccontextmanager
async def stall_probe() -> AsyncIterator[list[float]]:
    """Records how late 5 ms sleeps on the loop wake up while the block runs."""
    lateness: list[float] = []

    async def probe() -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.005)
            lateness.append(time.monotonic() - start - 0.005)

    task = asyncio.create_task(probe())
    try:
        yield lateness
    finally:
        task.cancel()


async def while_probing(work: Awaitable[T]) -> tuple[T, float]:
    async with stall_probe() as lateness:
        result = await work
    return result, max(lateness, default=0.0)


async def test_uid_search_with_thousands_of_ranges_keeps_the_loop_responsive(
    stack: ImapStack,
) -> None:
    await fill_inbox(stack)
    client = await selected_client(stack)
    # ~9,000 ranges that match nothing, then two that match: each message meets them all.
    ranges = ",".join(str(100001 + 2 * i) for i in range(9000))
    text = b"c UID SEARCH UID " + ranges.encode() + b",7,2999:3001"
    lines, stall = await while_probing(client.command(text))
    assert lines == [b"* SEARCH 7 2999 3000\r\n", b"c OK Search completed.\r\n"]
    assert stall < MAX_STALL, f"the loop stalled {stall:.2f}s"
    await client.close()


async def test_fetch_and_store_with_thousands_of_overlapping_ranges_keep_the_loop_responsive(
    stack: ImapStack,
) -> None:
    await fill_inbox(stack)
    client = await selected_client(stack)
    everything = b",".join([b"1:*"] * 15000)
    lines, stall = await while_probing(client.command(b"c FETCH " + everything + b" (UID)"))
    assert len(lines) == MESSAGES + 1 and lines[-1].startswith(b"c OK"), lines[-1]
    assert lines[0] == b"* 1 FETCH (UID 1)\r\n"
    assert stall < MAX_STALL, f"FETCH: the loop stalled {stall:.2f}s"
    most = b",".join([b"2:2999"] * 8000)
    lines, stall = await while_probing(
        client.command(b"d UID STORE " + most + b" +FLAGS.SILENT (\\Flagged)")
    )
    assert lines == [b"d OK Store completed.\r\n"]
    assert stall < MAX_STALL, f"UID STORE: the loop stalled {stall:.2f}s"
    lines = await client.command(b"e SEARCH UNFLAGGED")
    assert lines[0] == b"* SEARCH 1 3000\r\n"
    await client.close()


async def test_flag_search_with_thousands_of_keys_keeps_the_loop_responsive(
    stack: ImapStack,
) -> None:
    await fill_inbox(stack)
    client = await selected_client(stack)
    program = b" ".join([b"UNDELETED"] * 6000) + b" 5:6"
    lines, stall = await while_probing(client.command(b"c SEARCH " + program))
    assert lines == [b"* SEARCH 5 6\r\n", b"c OK Search completed.\r\n"]
    assert stall < MAX_STALL, f"the loop stalled {stall:.2f}s"
    await client.close()


def nested(depth: int, text: bytes = b"deepneedle", pad: int = 0) -> bytes:
    """A message whose only text part sits `depth` multiparts deep."""
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return (
        b"From: evil@example.net\r\nSubject: deep\r\n"
        + head
        + b"Content-Type: text/plain\r\n\r\n"
        + text
        + b" "
        + b"y" * pad
        + tail
    )


def deliver(stack: ImapStack, message: bytes) -> tuple[int, bytes]:
    with smtplib.LMTP("127.0.0.1", stack.lmtp_port) as lmtp:
        lmtp.ehlo("test")
        lmtp.mail("evil@example.net")
        lmtp.rcpt("alice")
        return lmtp.data(message)


async def test_deeply_nested_message_is_delivered_and_searched_without_dropping_the_client(
    stack: ImapStack,
) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    comments = b"From: " + b"(" * 5000 + b"evil@example.net\r\n"
    for message in (nested(3), nested(3000), nested(3000, pad=70_000), comments + nested(20_000)):
        code, _ = await asyncio.to_thread(deliver, stack, message)
        assert code == 250
    client = await selected_client(stack)
    # Parts deeper than the MIME depth limit are opaque: their text is not searched.
    lines = await client.command(b"c SEARCH TEXT deepneedle")
    assert lines == [b"* SEARCH 1\r\n", b"c OK Search completed.\r\n"]
    lines = await client.command(b"d SEARCH BODY zzz")
    assert lines == [b"* SEARCH\r\n", b"d OK Search completed.\r\n"]
    lines = await client.command(b"e FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert lines[-1].startswith(b"e OK"), lines[-1]
    section = b".".join([b"1"] * 5000)
    lines = await client.command(b"f FETCH 2:3 (BODY.PEEK[" + section + b"])")
    assert lines[-1].startswith(b"f OK"), lines[-1]
    assert (await client.command(b"g NOOP"))[-1].startswith(b"g OK")
    await client.close()


async def test_a_literal_outside_append_counts_against_the_line_limit(
    stack: ImapStack,
) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    client = await selected_client(stack)
    lines = await client.command(b"c SEARCH TEXT {5}", tag=b"+")
    assert lines[-1].startswith(b"+ ")
    lines = await client.command(b"hello", tag=b"c")
    assert lines[-1].startswith(b"c OK")
    # 45 MB announced for a SEARCH: refused before a byte is read, as Dovecot does.
    client.writer.write(b"d SEARCH TEXT {%d+}\r\n" % (45 * 1024 * 1024) + b"y" * 4096)
    line = await client.line()
    assert line == b"* BYE Literal size too large\r\n"
    assert await client.line() == b""
    await client.close()
