"""Writers in several processes take turns on one file through `<database>.writelock`.

SQLite alone makes a writer that finds the file locked sleep in its busy
handler (up to 100 ms a try) even once the lock is free; the writers' `flock`
wakes the next one when the holder commits, and what queued meanwhile joins
its batch.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.errors import StoreError
from mailpush.store import sqlite_writer
from mailpush.store.sqlite_writer import WRITE_LOCK_SUFFIX, GroupCommitWriter, WriteContext

#: Another process holding the writers' lock until a line arrives on its stdin.
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return conn


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + WRITE_LOCK_SUFFIX)


async def hold_lock_elsewhere(database: Path) -> subprocess.Popen[bytes]:
    """Another process holding `database`'s writers' lock until a line on its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path(database))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert await asyncio.to_thread(holder.stdout.readline) == b"held\n"
    except BaseException:
        holder.kill()
        holder.wait()
        raise
    return holder


def started_writer(database: Path) -> GroupCommitWriter:
    writer = GroupCommitWriter(lambda: connect(database), lock_path=lock_path(database))
    writer.start()
    return writer


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[GroupCommitWriter]:
    database = tmp_path / "w.sqlite"
    writer = GroupCommitWriter(lambda: connect(database), lock_path=lock_path(database))
    writer.start()
    yield writer
    await asyncio.to_thread(writer.stop)


def insert(value: int) -> Callable[[WriteContext], None]:
    def operation(ctx: WriteContext) -> None:
        ctx.conn.execute("INSERT INTO t (v) VALUES (?)", (value,))

    return operation


def count(ctx: WriteContext) -> int:
    return int(ctx.conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])


async def test_writes_wait_while_another_process_holds_the_lock_then_commit_as_one_batch(
    tmp_path: Path, writer: GroupCommitWriter
) -> None:
    await writer.submit(count)  # the writer thread is up and idle
    holder = await hold_lock_elsewhere(tmp_path / "w.sqlite")
    try:
        assert holder.stdin is not None
        batches_before = writer.batches
        first = asyncio.ensure_future(writer.submit(insert(0)))
        await asyncio.sleep(0.1)  # the writer thread took the first job and waits
        rest = [asyncio.ensure_future(writer.submit(insert(n))) for n in range(1, 20)]
        await asyncio.sleep(0.3)
        assert not first.done() and not any(job.done() for job in rest)
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        await asyncio.wait_for(asyncio.gather(first, *rest), 10)
    finally:
        holder.kill()
        holder.wait()
    assert writer.batches == batches_before + 1  # all twenty, one commit
    total, _ = await writer.submit(count)
    assert total == 20


async def test_two_writers_on_one_file_both_finish_everything(tmp_path: Path) -> None:
    """Two stores on one file (two processes' writers) interleave without loss or deadlock."""
    database = tmp_path / "shared.sqlite"
    connect(database).close()  # in WAL already: two first connections would race to convert it
    writers = [
        GroupCommitWriter(lambda: connect(database), lock_path=lock_path(database))
        for _ in range(2)
    ]
    for each in writers:
        each.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(
            each.submit(insert(n)) for n in range(300) for each in writers
        )), 60)
        total, _ = await writers[0].submit(count)
    finally:
        for each in writers:
            await asyncio.to_thread(each.stop)
    assert total == 600


def test_a_lock_file_that_cannot_be_opened_is_a_store_error_naming_it(tmp_path: Path) -> None:
    database = tmp_path / "w.sqlite"
    where = tmp_path / "missing-dir" / ("w.sqlite" + WRITE_LOCK_SUFFIX)
    writer = GroupCommitWriter(lambda: connect(database), lock_path=where)
    with pytest.raises(StoreError, match=f"cannot open the writers' lock file {where}"):
        writer.start()


async def test_a_lock_held_past_the_timeout_fails_the_waiting_writes_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stopped (SIGSTOP) or hung while holding the lock must not hold every
    writer for ever: after the timeout (30 s; 0.5 s here) the waiting operations fail
    with the lock file's name, as SQLite's own busy timeout would, and close returns."""
    monkeypatch.setattr(sqlite_writer, "LOCK_TIMEOUT", 0.5)
    database = tmp_path / "w.sqlite"
    writer = started_writer(database)
    holder = await hold_lock_elsewhere(database)
    try:
        waiting = [writer.submit(insert(n)) for n in range(3)]
        results = await asyncio.wait_for(
            asyncio.gather(*waiting, return_exceptions=True), 10
        )
        assert all(isinstance(r, StoreError) for r in results), results
        assert f"lock {lock_path(database)} for" in str(results[0])
        await asyncio.wait_for(asyncio.to_thread(writer.stop), 10)
    finally:
        holder.kill()
        holder.wait()


#: Another process taking the lock, and letting go of it each time a line arrives on its
#: stdin, printing the moment (time.time()) it let go.
RELEASER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
while sys.stdin.readline():
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.readline()
    fcntl.flock(fd, fcntl.LOCK_UN)
    print(repr(time.time()), flush=True)
"""


async def test_a_waiting_writer_commits_as_soon_as_the_other_process_lets_go(
    tmp_path: Path, writer: GroupCommitWriter
) -> None:
    """The wait is woken by the release itself, not found by a later try: polling every
    few milliseconds added that much to every delivery a busy other worker delayed."""
    await writer.submit(count)
    releaser = subprocess.Popen(
        [sys.executable, "-c", RELEASER, str(lock_path(tmp_path / "w.sqlite"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    delays = []
    try:
        assert releaser.stdin is not None and releaser.stdout is not None
        for n in range(7):
            releaser.stdin.write(b"take\n")
            releaser.stdin.flush()
            assert await asyncio.to_thread(releaser.stdout.readline) == b"held\n"
            job = asyncio.ensure_future(writer.submit(insert_at(n)))
            await asyncio.sleep(0.2)  # long enough for any back-off to reach its longest
            assert not job.done()
            releaser.stdin.write(b"go\n")
            releaser.stdin.flush()
            released = float(await asyncio.to_thread(releaser.stdout.readline))
            taken, _ = await asyncio.wait_for(job, 10)
            delays.append(taken - released)
    finally:
        releaser.kill()
        releaser.wait()
    delays.sort()
    # The median from the release to the operation running, well under a 10 ms polling
    # pause (a loaded CI machine adds scheduling delays, hence the median and the margin).
    assert delays[len(delays) // 2] < 0.003, delays


def insert_at(value: int) -> Callable[[WriteContext], float]:
    """Insert `value`; the moment the operation ran, so the writers' lock was held."""

    def operation(ctx: WriteContext) -> float:
        ctx.conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return time.time()

    return operation


async def test_after_a_wait_that_timed_out_the_lock_is_not_kept_once_it_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiter still blocked when the wait was given up gets the lock later; it must let
    go at once, or this idle process would keep every other writer out."""
    monkeypatch.setattr(sqlite_writer, "LOCK_TIMEOUT", 0.3)
    database = tmp_path / "w.sqlite"
    writer = started_writer(database)
    holder = await hold_lock_elsewhere(database)
    try:
        assert holder.stdin is not None
        with pytest.raises(StoreError):
            await asyncio.wait_for(writer.submit(insert(1)), 10)
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        await asyncio.to_thread(holder.wait, 10)
        # Another process (here: this one through a second descriptor) can take it.
        other = os.open(lock_path(database), os.O_RDWR)
        try:
            deadline = time.monotonic() + 2
            while True:
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    assert time.monotonic() < deadline, "the idle writer kept the lock"
                    await asyncio.sleep(0.01)
            fcntl.flock(other, fcntl.LOCK_UN)
        finally:
            os.close(other)
        # And this writer goes on writing.
        await asyncio.wait_for(writer.submit(insert(2)), 10)
        total, _ = await writer.submit(count)
        assert total == 1
    finally:
        holder.kill()
        holder.wait()
        await asyncio.to_thread(writer.stop)


async def test_a_database_that_cannot_be_opened_fails_each_write_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """The writer thread's connection failed (a locked conversion, a broken file): every
    write is answered with why, none waits for ever."""

    def broken() -> sqlite3.Connection:
        raise sqlite3.OperationalError("database is locked")

    writer = GroupCommitWriter(broken, lock_path=lock_path(tmp_path / "w.sqlite"))
    writer.start()
    try:
        for n in range(2):
            with pytest.raises(StoreError, match="cannot open the store's database"):
                await asyncio.wait_for(writer.submit(insert(n)), 5)
    finally:
        await asyncio.wait_for(asyncio.to_thread(writer.stop), 5)
