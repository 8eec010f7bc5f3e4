"""IMAP benchmark: APPEND/s, FETCH 1:* (FLAGS ENVELOPE) msgs/s, IDLE latency, idle cost.

Runs `mailpush serve` (bench/mailpush_instance.py) and drives it with plain
blocking sockets (TCP_NODELAY), then prints one line; the idle cost is the CPU
time of the server process alone:

    python bench/imap.py [--appends 2000] [--messages 10000] [--deliveries 200] [--idlers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import smtplib
import socket
import statistics
import time
from pathlib import Path

from mailpush_instance import MailpushInstance

MESSAGE = (
    b"From: Sender Name <sender@example.net>\r\n"
    b"To: Alice <alice@example.org>, bob@example.org\r\n"
    b"Cc: carol@example.org\r\n"
    b"Subject: Quarterly planning meeting notes\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0100\r\n"
    b"Message-ID: <bench@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n" + b"Some body text for the benchmark message.\r\n" * 20
)


class Client:
    """A minimal blocking IMAP client: send a command, read up to its tagged reply."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.counter = 0

    def command(self, text: bytes) -> list[bytes]:
        self.counter += 1
        tag = b"t%d" % self.counter
        self.sock.sendall(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--idlers", type=int, default=1000)
    args = parser.parse_args()

    # Up to `idlers` connections of one user from one address.
    mailpush = MailpushInstance(
        [("alice", "secret"), ("bob", "secret")], settings={"mail_max_userip_connections": "0"}
    )
    asyncio.run(mailpush.start())
    try:
        _measure(args, mailpush)
    finally:
        asyncio.run(mailpush.stop())


def _measure(args: argparse.Namespace, mailpush: MailpushInstance) -> None:
    address = ("127.0.0.1", mailpush.imap_port)
    lmtp_address = ("127.0.0.1", mailpush.lmtp_port)

    # APPEND/s: one connection, one message per APPEND, LITERAL+.
    client = Client(address)
    client.command(b"LOGIN alice secret")
    client.command(b"CREATE Bench")
    start = time.perf_counter()
    for _ in range(args.appends):
        lines = client.command(b"APPEND Bench {%d+}\r\n%s" % (len(MESSAGE), MESSAGE))
        assert b"OK" in lines[-1], lines
    append_rate = args.appends / (time.perf_counter() - start)

    # FETCH 1:* (FLAGS ENVELOPE) on a mailbox of `messages` messages (first, uncached run).
    filler = Client(address)
    filler.command(b"LOGIN bob secret")
    for number in range(args.messages):
        message = MESSAGE.replace(b"<bench@", b"<%d@" % number)
        lines = filler.command(b"APPEND INBOX {%d+}\r\n%s" % (len(message), message))
        assert b"OK" in lines[-1], lines
    filler.sock.close()
    reader = Client(address)
    reader.command(b"LOGIN bob secret")
    reader.command(b"SELECT INBOX")
    start = time.perf_counter()
    lines = reader.command(b"FETCH 1:* (FLAGS ENVELOPE)")
    fetch_cold = args.messages / (time.perf_counter() - start)
    assert len(lines) == args.messages + 1, len(lines)
    start = time.perf_counter()
    reader.command(b"FETCH 1:* (FLAGS ENVELOPE)")
    fetch_warm = args.messages / (time.perf_counter() - start)

    # IDLE latency: LMTP 250 received → `* n EXISTS` received by an idling client.
    idler = Client(address)
    idler.command(b"LOGIN alice secret")
    idler.command(b"SELECT INBOX")
    idler.sock.sendall(b"i IDLE\r\n")
    idler.file.readline()
    latencies = []
    with smtplib.LMTP(*lmtp_address) as sender:
        for _ in range(args.deliveries):
            sender.sendmail("s@example.net", ["alice@example.org"], MESSAGE)
            accepted = time.perf_counter()
            while True:
                line = idler.file.readline()
                if line.endswith(b" EXISTS\r\n"):
                    break
            latencies.append(max(0.0, time.perf_counter() - accepted) * 1000)
    idler.sock.sendall(b"DONE\r\n")
    latencies.sort()
    median = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

    # Idle cost: `idlers` connections in IDLE, CPU of the server process over 5 s.
    idlers = []
    for _ in range(args.idlers):
        c = Client(address)
        c.command(b"LOGIN bob secret")
        c.command(b"SELECT INBOX")
        c.sock.sendall(b"i IDLE\r\n")
        idlers.append(c)
    for c in idlers:
        c.file.readline()
    time.sleep(1)
    before = _cpu_seconds(mailpush.pid)
    wall = time.perf_counter()
    time.sleep(5)
    after = _cpu_seconds(mailpush.pid)
    elapsed = time.perf_counter() - wall
    idle_cost = 100 * (after - before) / elapsed

    print(
        f"imap: APPEND {append_rate:,.0f}/s | FETCH 1:* (FLAGS ENVELOPE) {args.messages:,} msgs"
        f" {fetch_cold:,.0f} msgs/s cold, {fetch_warm:,.0f} warm | IDLE latency median"
        f" {median:.2f} ms p99 {p99:.2f} ms | {args.idlers} idle connections"
        f" {idle_cost:.2f}% of one core"
    )
    for c in idlers:
        c.sock.close()


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
