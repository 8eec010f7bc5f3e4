"""Deliveries into the store itself, SQLite against PostgreSQL: what the driver costs in situ.

8 concurrent writers each call `store.deliver` (one small message into
INBOX, users spread over 8 names) `--per-writer` times, with no push
recorder, on a `SqliteStore` (mail_fsync=optimized: group commit, fsync per
batch) and on a `PostgresStore` over a private server (fsync on). Prints

    pg_store_deliver backend=... deliveries=... per_s=... p50_ms=... p99_ms=...

Usage: python bench/pg_store_deliver.py [--per-writer N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import find_postgres_bin, start_postgres  # noqa: E402

from mailpush.store import DeliveryTarget, MailStore, SqliteStore  # noqa: E402
from mailpush.store.pg_store import PostgresStore  # noqa: E402

WRITERS = 8
MESSAGE = b"From: a@example.org\r\nSubject: bench\r\n\r\n" + b"body line\r\n" * 40


async def run(backend: str, store: MailStore, per_writer: int) -> None:
    latencies: list[float] = []

    async def writer(n: int) -> None:
        for _ in range(per_writer):
            t = time.perf_counter()
            await store.deliver(f"user{n}", MESSAGE, [DeliveryTarget("INBOX")])
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"pg_store_deliver backend={backend} deliveries={len(latencies)}"
        f" per_s={len(latencies) / elapsed:.0f}"
        f" p50_ms={statistics.median(latencies) * 1000:.2f}"
        f" p99_ms={latencies[int(len(latencies) * 0.99) - 1] * 1000:.2f}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-writer", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "mail.sqlite")
        sqlite.open()
        try:
            await run("sqlite", sqlite, args.per_writer)
        finally:
            sqlite.close()
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL binaries not found: install the Debian package postgresql")
    server = start_postgres(bin_dir, durable=True)
    try:
        pg = PostgresStore(server.create_database("bench"))
        pg.open()
        try:
            await run("postgresql", pg, args.per_writer)
        finally:
            pg.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
