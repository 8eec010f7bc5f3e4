"""psycopg 3 against asyncpg for the PostgreSQL store: the measurement behind the choice.

Starts a private PostgreSQL server (as the tests do: tests/support/postgres.py,
fsync on unless --no-fsync) and times, for each driver, the two shapes the
store has:

- writes: 8 concurrent writers, each a loop of one single-row INSERT and
  COMMIT (a delivery's round trips, minus the mail work);
- reads: one SELECT of 1,000 rows (uid, flags, keywords, size, bytea of
  200 bytes), as a FETCH of a large mailbox.

Drivers: `asyncpg` (its pool, on the event loop), `psycopg-async` (psycopg's
AsyncConnectionPool, on the event loop), `psycopg-threads` (psycopg's sync
ConnectionPool, each call on a worker thread: what `PostgresStore` does).
It prints one line per driver and shape, e.g.

    pg_drivers driver=asyncpg shape=write8 ops=4000 per_s=... p50_ms=... p99_ms=...

Needs asyncpg besides the postgresql extra (`pip install asyncpg`).

Usage: python bench/pg_drivers.py [--writes N] [--reads N] [--no-fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import psycopg  # noqa: E402
from psycopg_pool import AsyncConnectionPool, ConnectionPool  # noqa: E402
from tests.support.postgres import find_postgres_bin, start_postgres  # noqa: E402

WRITERS = 8
ROWS = 1000

Timed = Callable[[], Awaitable[None]]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=4000, help="total INSERT+COMMITs")
    parser.add_argument("--reads", type=int, default=200, help="1,000-row SELECTs")
    parser.add_argument("--no-fsync", action="store_true", help="server with fsync=off")
    args = parser.parse_args()
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL binaries not found: install the Debian package postgresql")
    server = start_postgres(bin_dir, durable=not args.no_fsync)
    try:
        uri = server.create_database("bench")
        _prepare(uri)
        with psycopg.connect(uri) as conn:
            fsync = conn.execute("SHOW fsync").fetchone()
            sync = conn.execute("SHOW synchronous_commit").fetchone()
        print(f"pg_drivers server fsync={fsync and fsync[0]} synchronous_commit={sync and sync[0]}")
        for name, make in (("asyncpg", _asyncpg), ("psycopg-async", _psycopg_async),
                           ("psycopg-threads", _psycopg_threads)):
            del name
            await make(uri, args.writes, args.reads)
    finally:
        server.stop()


def _prepare(uri: str) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE w (id BIGINT GENERATED ALWAYS AS IDENTITY, v BYTEA)")
        conn.execute(
            "CREATE TABLE r (uid BIGINT PRIMARY KEY, flags INTEGER, keywords TEXT,"
            " size BIGINT, raw BYTEA)"
        )
        conn.execute(
            "INSERT INTO r SELECT g, g %% 16, 'Junk $Work', 200, decode(repeat('ab', 200), 'hex')"
            " FROM generate_series(1, %s) g",
            (ROWS,),
        )


async def _report(driver: str, shape: str, ops: int, run: Callable[[list[float]], Timed]) -> None:
    latencies: list[float] = []
    started = time.perf_counter()
    await run(latencies)()
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"pg_drivers driver={driver} shape={shape} ops={ops} per_s={ops / elapsed:.0f}"
        f" p50_ms={statistics.median(latencies) * 1000:.2f}"
        f" p99_ms={latencies[int(len(latencies) * 0.99) - 1] * 1000:.2f}",
        flush=True,
    )


async def _asyncpg(uri: str, writes: int, reads: int) -> None:
    pool = await asyncpg.create_pool(uri, min_size=WRITERS, max_size=WRITERS)
    try:
        async def write(latencies: list[float]) -> None:
            async with pool.acquire() as conn:
                for _ in range(writes // WRITERS):
                    t = time.perf_counter()
                    async with conn.transaction():
                        await conn.execute("INSERT INTO w (v) VALUES ($1)", b"x" * 100)
                    latencies.append(time.perf_counter() - t)

        async def read(latencies: list[float]) -> None:
            async with pool.acquire() as conn:
                for _ in range(reads):
                    t = time.perf_counter()
                    rows = await conn.fetch("SELECT uid, flags, keywords, size, raw FROM r")
                    assert len(rows) == ROWS
                    latencies.append(time.perf_counter() - t)

        await _shapes("asyncpg", writes, reads, write, read)
    finally:
        await pool.close()


async def _psycopg_async(uri: str, writes: int, reads: int) -> None:
    async with AsyncConnectionPool(uri, min_size=WRITERS, max_size=WRITERS, open=False) as pool:
        await pool.wait()

        async def write(latencies: list[float]) -> None:
            async with pool.connection() as conn:
                for _ in range(writes // WRITERS):
                    t = time.perf_counter()
                    async with conn.transaction():
                        await conn.execute("INSERT INTO w (v) VALUES (%s)", (b"x" * 100,))
                    latencies.append(time.perf_counter() - t)

        async def read(latencies: list[float]) -> None:
            async with pool.connection() as conn:
                for _ in range(reads):
                    t = time.perf_counter()
                    cur = await conn.execute("SELECT uid, flags, keywords, size, raw FROM r")
                    assert len(await cur.fetchall()) == ROWS
                    await conn.commit()
                    latencies.append(time.perf_counter() - t)

        await _shapes("psycopg-async", writes, reads, write, read)


async def _psycopg_threads(uri: str, writes: int, reads: int) -> None:
    pool = ConnectionPool(uri, min_size=WRITERS, max_size=WRITERS, open=True,
                          kwargs={"autocommit": True})
    threads = ThreadPoolExecutor(WRITERS)
    loop = asyncio.get_running_loop()
    try:
        def insert() -> None:
            with pool.connection() as conn:
                conn.execute("BEGIN")
                conn.execute("INSERT INTO w (v) VALUES (%s)", (b"x" * 100,))
                conn.execute("COMMIT")

        def select() -> None:
            with pool.connection() as conn:
                rows = conn.execute("SELECT uid, flags, keywords, size, raw FROM r").fetchall()
                assert len(rows) == ROWS

        async def write(latencies: list[float]) -> None:
            for _ in range(writes // WRITERS):
                t = time.perf_counter()
                await loop.run_in_executor(threads, insert)
                latencies.append(time.perf_counter() - t)

        async def read(latencies: list[float]) -> None:
            for _ in range(reads):
                t = time.perf_counter()
                await loop.run_in_executor(threads, select)
                latencies.append(time.perf_counter() - t)

        await _shapes("psycopg-threads", writes, reads, write, read)
    finally:
        threads.shutdown()
        pool.close()


async def _shapes(
    driver: str,
    writes: int,
    reads: int,
    write: Callable[[list[float]], Awaitable[None]],
    read: Callable[[list[float]], Awaitable[None]],
) -> None:
    def eight_writers(latencies: list[float]) -> Timed:
        async def run() -> None:
            await asyncio.gather(*(write(latencies) for _ in range(WRITERS)))

        return run

    def one_reader(latencies: list[float]) -> Timed:
        async def run() -> None:
            await read(latencies)

        return run

    await _report(driver, "write8", writes // WRITERS * WRITERS, eight_writers)
    await _report(driver, "read1000", reads, one_reader)


if __name__ == "__main__":
    asyncio.run(main())
