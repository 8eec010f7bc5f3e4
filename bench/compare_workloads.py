"""The workloads of bench/compare.py, each one measurement against one server.

Every function speaks only the wire protocols (LMTP, IMAP) to a port, so the
very same code measures Dovecot and mailpush. Each returns one number for one
round: a rate (higher is better) or a latency in milliseconds. Preparing state
and waiting for a server's pushes to finish happen outside the timed part.

LMTP load is `bench/lmtp_deliver.py`'s `connection()` (pipelined MAIL/RCPT/DATA,
TCP_NODELAY, one recipient per transaction); IMAP uses `bench/imap.py`'s
blocking client.
"""

from __future__ import annotations

import asyncio
import smtplib
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from imap import Client
from lmtp_deliver import MESSAGE, connection

__all__ = [
    "PASSWORD",
    "RecordFile",
    "append_rate",
    "command_rate",
    "fill_mailbox",
    "fill_varied",
    "fetch_rate",
    "idle_latency_ms",
    "imap_login",
    "lmtp_rate",
    "store_seen_rate",
    "unseen_all",
    "wait_until",
]

#: Every benchmark user's password, on both servers.
PASSWORD = "pw"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


async def lmtp_rate(lmtp_port: int, recipients: Sequence[str], messages: int) -> float:
    """Deliveries/s over one connection per recipient, `messages` shared out evenly."""
    per_connection = messages // len(recipients)
    start = time.perf_counter()
    await asyncio.gather(
        *(connection(lmtp_port, recipient, per_connection, []) for recipient in recipients)
    )
    return per_connection * len(recipients) / (time.perf_counter() - start)


async def fill_mailbox(lmtp_port: int, user: str, messages: int, connections: int = 8) -> None:
    """`messages` deliveries to one user's INBOX, the way mail really arrives."""
    shares = [messages // connections + (1 if i < messages % connections else 0)
              for i in range(connections)]
    await asyncio.gather(
        *(connection(lmtp_port, user, share, []) for share in shares if share)
    )


def imap_login(imap_port: int, user: str) -> Client:
    client = Client(("127.0.0.1", imap_port))
    _expect_ok(client.command(b"LOGIN %s %s" % (user.encode(), PASSWORD.encode())))
    return client


def append_rate(imap_port: int, user: str, mailbox: str, count: int) -> float:
    """APPENDs/s on one connection, one message per APPEND (LITERAL+, no round trip)."""
    client = imap_login(imap_port, user)
    try:
        client.command(b"CREATE " + mailbox.encode())  # NO when it exists already: fine
        command = b"APPEND %s {%d+}\r\n%s" % (mailbox.encode(), len(MESSAGE), MESSAGE)
        start = time.perf_counter()
        for _ in range(count):
            _expect_ok(client.command(command))
        return count / (time.perf_counter() - start)
    finally:
        _logout(client)


def fetch_rate(imap_port: int, user: str, expected: int) -> float:
    """Messages/s of one `FETCH 1:* (FLAGS ENVELOPE)` over the user's INBOX."""
    client = imap_login(imap_port, user)
    try:
        _expect_ok(client.command(b"SELECT INBOX"))
        start = time.perf_counter()
        lines = client.command(b"FETCH 1:* (FLAGS ENVELOPE)")
        elapsed = time.perf_counter() - start
        _expect_ok(lines)
        fetched = sum(1 for line in lines if line.startswith(b"* ") and b" FETCH (" in line)
        if fetched != expected:
            raise RuntimeError(f"FETCH 1:* returned {fetched} messages, expected {expected}")
        return expected / elapsed
    finally:
        _logout(client)


def fill_varied(imap_port: int, user: str, messages: int) -> None:
    """`messages` APPENDs of mail worth sorting and threading into the user's INBOX.

    Subjects come from 200 topics with Re:/Fwd:/[list] decorations, senders
    from 50 names, Date headers spread over a year (one in 50 missing), and
    two in three messages reply by References to an earlier one of the same
    topic: the SORT and THREAD rows then do real work, unlike over copies of
    one message.
    """
    client = imap_login(imap_port, user)
    try:
        for number in range(messages):
            topic = number % 200
            decoration = ("", "Re: ", "RE: [list] ", "Fwd: ", "Re: Re: ")[number % 5]
            headers = [
                f"From: Sender {number % 50} <sender{number % 50}@example.net>",
                f"To: user{number % 7}@example.org",
                f"Subject: {decoration}Topic {topic} planning",
                f"Message-ID: <m{number}@example.net>",
            ]
            if number % 50:
                day = 1 + (number * 7919) % 365
                headers.append(
                    f"Date: {day % 28 + 1:02d} {_MONTHS[day % 12]} 2023 "
                    f"{number % 24:02d}:{number % 60:02d}:00 +0000"
                )
            if number >= 200 and number % 3:
                headers.append(f"References: <m{number - 200}@example.net>")
            raw = ("\r\n".join(headers) + f"\r\n\r\nBody of message {number}.\r\n").encode()
            _expect_ok(client.command(b"APPEND INBOX {%d+}\r\n%s" % (len(raw), raw)))
    finally:
        _logout(client)


def command_rate(imap_port: int, user: str, command: bytes, expected: int) -> float:
    """Messages/s of one command (SORT, THREAD) over the user's INBOX of `expected` messages.

    The answer must name every message: a SORT's numbers, a THREAD's too.
    """
    client = imap_login(imap_port, user)
    try:
        _expect_ok(client.command(b"SELECT INBOX"))
        start = time.perf_counter()
        lines = client.command(command)
        elapsed = time.perf_counter() - start
        _expect_ok(lines)
        answer = b"".join(lines[:-1])
        named = len(answer.replace(b"(", b" ").replace(b")", b" ").split()) - 2
        if named != expected:
            raise RuntimeError(f"{command!r} named {named} messages, expected {expected}")
        return expected / elapsed
    finally:
        _logout(client)


def store_seen_rate(imap_port: int, user: str, expected: int) -> float:
    """Messages/s of one `STORE 1:* +FLAGS (\\Seen)` over an INBOX of unseen messages."""
    client = imap_login(imap_port, user)
    try:
        _expect_ok(client.command(b"SELECT INBOX"))
        start = time.perf_counter()
        lines = client.command(b"STORE 1:* +FLAGS (\\Seen)")
        elapsed = time.perf_counter() - start
        _expect_ok(lines)
        return expected / elapsed
    finally:
        _logout(client)


def unseen_all(imap_port: int, user: str) -> None:
    """Clear \\Seen on every message again (untimed), for the next STORE round."""
    client = imap_login(imap_port, user)
    try:
        _expect_ok(client.command(b"SELECT INBOX"))
        _expect_ok(client.command(b"STORE 1:* -FLAGS.SILENT (\\Seen)"))
    finally:
        _logout(client)


def idle_latency_ms(lmtp_port: int, imap_port: int, user: str, deliveries: int) -> float:
    """Median time from LMTP's 250 to `* n EXISTS` reaching a client idling on INBOX."""
    idler = imap_login(imap_port, user)
    latencies = []
    try:
        _expect_ok(idler.command(b"SELECT INBOX"))
        idler.sock.sendall(b"idle IDLE\r\n")
        if not idler.file.readline().startswith(b"+"):
            raise RuntimeError("IDLE was not accepted")
        with smtplib.LMTP("127.0.0.1", lmtp_port) as sender:
            for _ in range(deliveries):
                sender.sendmail("bench@example.net", [user], MESSAGE)
                accepted = time.perf_counter()
                while not idler.file.readline().endswith(b" EXISTS\r\n"):
                    pass
                # mailpush may tell the idler before its LMTP reply has reached us.
                latencies.append(max(0.0, time.perf_counter() - accepted) * 1000)
        idler.sock.sendall(b"DONE\r\n")
        while not idler.file.readline().startswith(b"idle "):
            pass
    finally:
        _logout(idler)
    return statistics.median(latencies)


class RecordFile:
    """The recording Lua script's output: one `Name user mailbox uid` line per event."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self, event_name: str) -> int:
        prefix = event_name.encode() + b" "
        with self.path.open("rb") as lines:
            return sum(1 for line in lines if line.startswith(prefix))


async def wait_until(
    what: str, current: Callable[[], int], expected: int, timeout: float
) -> float:
    """Poll until current() reaches expected; seconds waited. For pushes still running."""
    start = time.monotonic()
    while True:
        value = await asyncio.to_thread(current)
        if value >= expected:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise RuntimeError(
                f"{what}: {value} of {expected} pushes done after {timeout:.0f} s; "
                "events were lost or the driver is stuck (see the server's log)"
            )
        await asyncio.sleep(0.05)


def _expect_ok(lines: list[bytes]) -> None:
    last = lines[-1]
    if last.split(b" ", 2)[1:2] != [b"OK"]:
        raise RuntimeError(f"IMAP command failed: {last!r}")


def _logout(client: Client) -> None:
    try:
        client.command(b"LOGOUT")
    except (OSError, ConnectionError):
        pass
    finally:
        client.file.close()
        client.sock.close()
