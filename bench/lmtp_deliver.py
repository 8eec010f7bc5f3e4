"""LMTP deliveries per second over 1 and over 8 concurrent connections.

Starts `mailpush serve` as its own process on a private data directory
(durable commits: `mail_fsync = optimized`, i.e. SQLite synchronous=FULL, fsync
before every acknowledgement, shared by concurrent deliveries), then sends N
messages over one connection and N over eight, each delivery one LMTP
transaction with one recipient, and prints one summary line:

    lmtp_deliver fsync=optimized n=2000 conn1_per_s=... conn8_per_s=... \
        conn8_p50_ms=... conn8_p99_ms=...

Usage: python bench/lmtp_deliver.py [--messages N] [--fsync optimized|never]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

from mailpush_instance import MailpushProcess, free_port

MESSAGE = (
    b"From: Bench Sender <bench@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: benchmark message\r\n"
    b"Message-ID: <bench@example.net>\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n"
    b"\r\n" + b"Body line of a benchmark message, long enough to be realistic.\r\n" * 40
)


def write_setup(directory: Path, port: int, fsync: str, extra: str = "") -> Path:
    users = directory / "users"
    users.write_text("".join(f"user{i}:{{PLAIN}}pw::::\n" for i in range(8)) + "alice:{PLAIN}pw\n")
    config = directory / "mailpush.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            protocols = lmtp
            mail_fsync = {fsync}
            mailpush_data_dir = {directory / "data"}
            passdb {{
              driver = passwd-file
              args = {users}
            }}
            service lmtp {{
              inet_listener lmtp {{
                address = 127.0.0.1
                port = {port}
              }}
            }}
            """
        )
        + extra
    )
    return config


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return line


async def connection(port: int, rcpt: str, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await read_reply(reader)
    writer.write(b"LHLO bench.example\r\n")
    await read_reply(reader)
    payload = MESSAGE + b".\r\n"
    for _ in range(count):
        start = time.perf_counter()
        # Pipelined as an MTA does: MAIL, RCPT and DATA in one write.
        writer.write(b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<" + rcpt.encode()
                     + b">\r\nDATA\r\n")
        for expected in (b"250", b"250", b"354"):
            reply = await read_reply(reader)
            if not reply.startswith(expected):
                raise RuntimeError(f"unexpected reply {reply!r}")
        writer.write(payload)
        reply = await read_reply(reader)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"delivery failed: {reply!r}")
        latencies.append(time.perf_counter() - start)
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


async def run_load(port: int, connections: int, total: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_connection = total // connections
    start = time.perf_counter()
    await asyncio.gather(
        *(connection(port, f"user{i % 8}", per_connection, latencies) for i in range(connections))
    )
    elapsed = time.perf_counter() - start
    return per_connection * connections / elapsed, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def main_async(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="mailpush-bench-") as tmp:
        directory = Path(tmp)
        port = free_port()
        config = write_setup(directory, port, args.fsync)
        async with MailpushProcess(config, [port], directory / "serve.log"):
            await run_load(port, 1, 50)  # warm-up
            conn1, _ = await run_load(port, 1, args.messages)
            conn8, lat8 = await run_load(port, 8, args.messages)
    return (
        f"lmtp_deliver fsync={args.fsync} n={args.messages}"
        f" conn1_per_s={conn1:.0f} conn8_per_s={conn8:.0f}"
        f" conn8_p50_ms={statistics.median(lat8) * 1000:.1f}"
        f" conn8_p99_ms={percentile(lat8, 0.99) * 1000:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--fsync", choices=["optimized", "always", "never"], default="optimized")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
