"""A COPY of many messages while LMTP delivers: how long each takes, side by side.

The store has one writer: an operation that does much inside its write
transaction holds up every delivery queued behind it. This starts `mailpush
serve` with the Lua recording script (a push driver that wants the mailbox
status, as the lua_record rows of compare.py), fills alice's INBOX with N
messages, then, while 8 LMTP connections deliver to other users without
pause, runs `UID COPY 1:* Archive<k>` over IMAP `--rounds` times. It prints
one summary line (medians over the rounds):

    copy_during_lmtp n=1000 rounds=3 copy_s=... lmtp_p50_ms=... lmtp_p99_ms=...
        lmtp_max_ms=... lmtp_per_s=...

where the lmtp_ figures are those of the deliveries that ran during a COPY.

Usage: python bench/copy_during_lmtp.py [--messages N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import socket
import statistics
import time
from pathlib import Path

from lmtp_deliver import MESSAGE, connection, percentile, read_reply
from mailpush_instance import MailpushInstance

RECORD_SCRIPT = Path(__file__).parent / "lua" / "record.lua"
USERS = [("alice", "pw"), *((f"user{i}", "pw") for i in range(8))]


async def deliver_until(port: int, rcpt: str, stop: asyncio.Event,
                        samples: list[tuple[float, float]]) -> None:
    """Deliver to `rcpt` over one connection until `stop`; (start, latency) of each."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await read_reply(reader)
    writer.write(b"LHLO bench.example\r\n")
    await read_reply(reader)
    while not stop.is_set():
        start = time.perf_counter()
        writer.write(b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<" + rcpt.encode()
                     + b">\r\nDATA\r\n")
        for expected in (b"250", b"250", b"354"):
            if not (await read_reply(reader)).startswith(expected):
                raise RuntimeError("unexpected LMTP reply")
        writer.write(MESSAGE + b".\r\n")
        if not (await read_reply(reader)).startswith(b"250"):
            raise RuntimeError("delivery failed")
        samples.append((start, time.perf_counter() - start))
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


def copy_all(port: int, dest: str) -> float:
    imap = imaplib.IMAP4("127.0.0.1", port)
    try:
        imap.login("alice", "pw")
        imap.create(dest)
        imap.select("INBOX")
        start = time.perf_counter()
        typ, data = imap.uid("COPY", "1:*", dest)
        elapsed = time.perf_counter() - start
        if typ != "OK":
            raise RuntimeError(f"COPY failed: {data!r}")
        return elapsed
    finally:
        imap.logout()


async def main_async(args: argparse.Namespace) -> str:
    copies: list[float] = []
    p50: list[float] = []
    p99: list[float] = []
    worst: list[float] = []
    rates: list[float] = []
    async with MailpushInstance(USERS, lua_script=RECORD_SCRIPT) as mailpush:
        await mailpush.stop(keep_workdir=True)
        mailpush.plugin_settings["record_file"] = str(mailpush.output_file("record.txt"))
        await mailpush.start()
        port = mailpush.lmtp_port
        await _fill(port, args.messages)
        for round_ in range(args.rounds):
            stop = asyncio.Event()
            samples: list[tuple[float, float]] = []
            load = [asyncio.create_task(deliver_until(port, f"user{i}", stop, samples))
                    for i in range(8)]
            await asyncio.sleep(0.5)  # deliveries under way before the COPY starts
            began = time.perf_counter()
            copies.append(await asyncio.to_thread(copy_all, mailpush.imap_port,
                                                  f"Archive{round_}"))
            ended = time.perf_counter()
            stop.set()
            await asyncio.gather(*load)
            during = [lat for start, lat in samples if start < ended and start + lat > began]
            p50.append(statistics.median(during) * 1000)
            p99.append(percentile(during, 0.99) * 1000)
            worst.append(max(during) * 1000)
            rates.append(len(during) / (ended - began))
    return (
        f"copy_during_lmtp n={args.messages} rounds={args.rounds}"
        f" copy_s={statistics.median(copies):.3f}"
        f" lmtp_p50_ms={statistics.median(p50):.1f} lmtp_p99_ms={statistics.median(p99):.1f}"
        f" lmtp_max_ms={statistics.median(worst):.1f}"
        f" lmtp_per_s={statistics.median(rates):.0f}"
    )


async def _fill(port: int, count: int) -> None:
    """`count` deliveries to alice over 8 connections, pushes included."""
    latencies: list[float] = []
    await asyncio.gather(*(
        connection(port, "alice", count // 8 + (1 if i < count % 8 else 0), latencies)
        for i in range(8)
    ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
