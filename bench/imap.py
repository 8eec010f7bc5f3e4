"""IMAP benchmark: APPEND/s, FETCH 1:* (FLAGS ENVELOPE) msgs/s, IDLE latency, idle cost.

Runs mailpush's IMAP and LMTP servers on their own event loop in a thread and
drives them with plain blocking sockets (TCP_NODELAY), then prints one line:

    python bench/imap.py [--appends 2000] [--messages 10000] [--deliveries 200] [--idlers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import smtplib
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from mailpush.auth import PasswdFile, add_user, verify_password_async
from mailpush.delivery import DefaultFilingPlanner, DeliveryAgent
from mailpush.imap import ImapOptions, ImapServer
from mailpush.lmtp import LmtpOptions, LmtpServer
from mailpush.store import NewMessage, SqliteStore

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

    directory = Path(tempfile.mkdtemp(prefix="mailpush-bench-"))
    users = directory / "users"
    add_user(users, "alice", "secret", "PLAIN")
    add_user(users, "bob", "secret", "PLAIN")
    store = SqliteStore(directory / "mail.db")
    store.open()
    passwd = PasswdFile(users)

    async def authenticate(login: str, password: str) -> str | None:
        record = passwd.lookup(login)
        if record is None or not await verify_password_async(record.password, password):
            return None
        return record.username

    def resolve(address: str) -> str | None:
        record = passwd.lookup(address.partition("@")[0])
        return None if record is None else record.username

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def run(coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, loop).result(600)

    imap = ImapServer(store, authenticate, ImapOptions(port=0))
    address = run(imap.start())
    lmtp = LmtpServer(
        DeliveryAgent(store, DefaultFilingPlanner(store)), resolve, LmtpOptions(port=0)
    )
    lmtp_address = run(lmtp.start())

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
    run(store.ensure_mailboxes("bob", [("INBOX", None)]))
    for offset in range(0, args.messages, 500):
        batch = [
            NewMessage(MESSAGE.replace(b"<bench@", b"<%d@" % (offset + i)))
            for i in range(min(500, args.messages - offset))
        ]
        run(store.append("bob", "INBOX", batch))
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

    # Idle cost: `idlers` connections in IDLE, CPU of this whole process over 5 s.
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
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter()
    time.sleep(5)
    after = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.perf_counter() - wall
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    idle_cost = 100 * cpu / elapsed

    print(
        f"imap: APPEND {append_rate:,.0f}/s | FETCH 1:* (FLAGS ENVELOPE) {args.messages:,} msgs"
        f" {fetch_cold:,.0f} msgs/s cold, {fetch_warm:,.0f} warm | IDLE latency median"
        f" {median:.2f} ms p99 {p99:.2f} ms | {args.idlers} idle connections"
        f" {idle_cost:.2f}% of one core"
    )
    for c in idlers:
        c.sock.close()
    run(imap.stop(2))
    run(lmtp.stop(2))
    store.close()


if __name__ == "__main__":
    main()
