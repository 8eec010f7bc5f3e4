"""Large APPEND literals go to a spool file as they arrive, not into memory.

Four clients append 20 MB each at the same time; the server's Python heap
must not grow by 20 MB per client (before spooling it grew by 181 MB: the
read buffer, the literal and the joined command, per client).
The clients are raw sockets sending one shared bytes object, so the heap
measured is the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import imaplib
import os
import socket
import tracemalloc
from pathlib import Path

from .conftest import PASSWORD, ImapStack, StackFactory

LITERAL = 20 * 1024 * 1024
CLIENTS = 4


def big_message(number: int) -> bytes:
    head = (
        b"From: Joe <joe@example.net>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: Scan %d\r\n"
        b"\r\n" % number
    )
    line = b"%07d The quick brown fox jumps over the lazy dog, again and again.\r\n"
    body = b"".join(line % i for i in range(LITERAL // len(line % 0) + 1))
    return head + body[: LITERAL - len(head)]


def append_over_socket(port: int, message: bytes) -> bytes:
    """APPEND with a synchronising literal; the tagged answer."""
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as reply:
        reply.readline()
        sock.sendall(b"a1 LOGIN alice " + PASSWORD.encode() + b"\r\n")
        while not reply.readline().startswith(b"a1 "):
            pass
        sock.sendall(b"a2 APPEND INBOX {%d}\r\n" % len(message))
        assert reply.readline().startswith(b"+")
        sock.sendall(message)
        sock.sendall(b"\r\n")
        while True:
            line = reply.readline()
            if line.startswith(b"a2 "):
                sock.sendall(b"a3 LOGOUT\r\n")
                return line


def fetch_digests(stack: ImapStack) -> dict[bytes, str]:
    """sha256 of every message in INBOX, by Subject, as FETCH BODY.PEEK[] returns them."""
    client = imaplib.IMAP4(stack.host, stack.port)
    client.login("alice", PASSWORD)
    client.select("INBOX", readonly=True)
    digests = {}
    for number in range(1, CLIENTS + 1):
        status, data = client.fetch(str(number), "(BODY.PEEK[])")
        assert status == "OK", data
        raw = data[0][1]  # type: ignore[index]
        subject = raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
        digests[subject] = hashlib.sha256(raw).hexdigest()
    client.logout()
    return digests


async def test_concurrent_large_appends_are_spooled_and_stored_byte_for_byte(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack()
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    messages = [big_message(n) for n in range(CLIENTS)]

    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        answers = await asyncio.gather(
            *(asyncio.to_thread(append_over_socket, stack.port, m) for m in messages)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert all(b" OK [APPENDUID " in answer for answer in answers), answers
    grown = peak - before
    # At most two messages at once, whatever the number of clients: the one going into
    # the store, and for a moment the previous one, until the store's writer thread
    # lets go of it. Before spooling: 181 MB, about two copies per client.
    assert grown < 2.5 * LITERAL, f"heap grew by {grown / 2**20:.0f} MB"

    digests = await asyncio.to_thread(fetch_digests, stack)
    assert digests == {
        b"Scan %d" % n: hashlib.sha256(m).hexdigest() for n, m in enumerate(messages)
    }


def open_spool_files(directory: Path) -> list[str]:
    """Files of this process still open in `directory` (spool files are unlinked at once)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)):
                found.append(target)
    return found


def multiappend_over_socket(port: int, first: bytes, second: bytes, mailbox: str) -> bytes:
    """MULTIAPPEND of two messages with non-synchronising literals; the tagged answer."""
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as reply:
        reply.readline()
        sock.sendall(b"a1 LOGIN alice " + PASSWORD.encode() + b"\r\n")
        while not reply.readline().startswith(b"a1 "):
            pass
        sock.sendall(
            b"a2 APPEND %s (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n"
            % (mailbox.encode(), len(first), first, len(second), second)
        )
        while True:
            line = reply.readline()
            if line.startswith(b"a2 "):
                return line


async def test_multiappend_of_spooled_literals_stores_both_and_leaves_no_spool_open(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    stack = await make_stack(append_spool_threshold=1000, temp_dir=str(spool))
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    first, second = big_message(1)[:5000], big_message(2)[:3000]

    answer = await asyncio.to_thread(multiappend_over_socket, stack.port, first, second, "INBOX")
    missing = await asyncio.to_thread(
        multiappend_over_socket, stack.port, first, second, "Nowhere"
    )

    assert b" OK [APPENDUID " in answer and b" 1:2]" in answer, answer
    assert missing.startswith(b"a2 NO [TRYCREATE]"), missing
    stored = await stack.store.raw_messages("alice", "INBOX", [1, 2])
    assert stored == {1: first, 2: second}
    assert open_spool_files(spool) == []


async def test_multiappend_spools_once_the_commands_literals_pass_the_threshold(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    """Many literals of exactly the threshold each: all but the first go to spool files.

    Before, only a literal larger than the threshold was spooled, so one MULTIAPPEND
    of 45 literals of 1 MB each was held in memory whole.
    """
    spool = tmp_path / "spool"
    spool.mkdir()
    stack = await make_stack(append_spool_threshold=1000, temp_dir=str(spool))
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    messages = [big_message(n)[:1000] for n in range(5)]
    reader, writer = await asyncio.open_connection(stack.host, stack.port)
    await reader.readline()
    writer.write(b"a1 LOGIN alice " + PASSWORD.encode() + b"\r\n")
    while not (await reader.readline()).startswith(b"a1 "):
        pass
    writer.write(b"a2 APPEND INBOX")
    for message in messages:
        writer.write(b" {%d+}\r\n%s" % (len(message), message))
    await writer.drain()
    spooled: list[str] = []
    for _ in range(200):  # the command is still open: its literals are all read
        spooled = open_spool_files(spool)
        if len(spooled) >= 4:
            break
        await asyncio.sleep(0.01)
    assert len(spooled) == 4, spooled
    writer.write(b"\r\n")
    answer = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert answer.startswith(b"a2 OK [APPENDUID ") and b" 1:5]" in answer, answer
    stored = await stack.store.raw_messages("alice", "INBOX", [1, 2, 3, 4, 5])
    assert stored == dict(enumerate(messages, start=1))
    assert open_spool_files(spool) == []
