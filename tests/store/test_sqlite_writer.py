"""The writer's commits: durable by default, fsync-free only for jobs that say so."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpush.store.sqlite_writer import GroupCommitWriter, WriteContext


def connect(path: Path, sync: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return conn


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[GroupCommitWriter]:
    writer = GroupCommitWriter(lambda: connect(tmp_path / "w.sqlite", "FULL"))
    writer.start()
    yield writer
    await asyncio.to_thread(writer.stop)


def insert_and_read_sync(ctx: WriteContext) -> int:
    ctx.conn.execute("INSERT INTO t (v) VALUES (1)")
    return int(ctx.conn.execute("PRAGMA synchronous").fetchone()[0])


async def test_a_batch_of_only_non_durable_jobs_commits_without_fsync(
    writer: GroupCommitWriter,
) -> None:
    level, _ = await writer.submit(insert_and_read_sync, durable=False)
    assert level == 1  # NORMAL


async def test_full_sync_is_restored_after_a_non_durable_batch(writer: GroupCommitWriter) -> None:
    await writer.submit(insert_and_read_sync, durable=False)
    level, _ = await writer.submit(insert_and_read_sync)
    assert level == 2  # FULL


async def test_a_durable_job_makes_its_whole_batch_durable(writer: GroupCommitWriter) -> None:
    results = await asyncio.gather(
        *(writer.submit(insert_and_read_sync, durable=n != 0) for n in range(20))
    )
    # Batches holding the durable job (the first) run FULL; the others may run NORMAL.
    assert results[0][0] == 2
    count, _ = await writer.submit(
        lambda ctx: int(ctx.conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    )
    assert count == 20


async def test_a_connection_without_full_sync_is_left_alone(tmp_path: Path) -> None:
    writer = GroupCommitWriter(lambda: connect(tmp_path / "n.sqlite", "OFF"))
    writer.start()
    try:
        level, _ = await writer.submit(insert_and_read_sync, durable=False)
        assert level == 0
    finally:
        await asyncio.to_thread(writer.stop)


async def test_the_sync_level_changes_only_between_batches_that_need_different_ones(
    tmp_path: Path,
) -> None:
    """The dispatcher's process commits mostly non-durable batches: one PRAGMA when the
    kind changes, not two for every batch (each was a statement inside the writers' lock)."""
    statements: list[str] = []

    def traced() -> sqlite3.Connection:
        conn = connect(tmp_path / "t.sqlite", "FULL")
        conn.set_trace_callback(statements.append)
        return conn

    writer = GroupCommitWriter(traced)
    writer.start()
    try:
        for durable in (False, False, False, True, True, False):
            await writer.submit(insert_and_read_sync, durable=durable)
    finally:
        await asyncio.to_thread(writer.stop)
    changes = [s for s in statements if s.startswith("PRAGMA synchronous=")]
    assert changes == [
        "PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL",
    ]


# --- where operations run ------------------------------------------------------


def where(ctx: WriteContext) -> str:
    ctx.conn.execute("INSERT INTO t (v) VALUES (1)")
    return threading.current_thread().name


def rows(path: Path) -> int:
    """Rows committed to `t`, as another process sees them (0 before the table exists)."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


class Gate:
    """A heavy operation that keeps the writer busy until opened, so that what is
    submitted meanwhile makes up the next batch together."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, ctx: WriteContext) -> None:
        self.entered.set()
        assert self.opened.wait(10)


async def test_light_operations_run_on_the_event_loop_that_submitted_them(
    writer: GroupCommitWriter,
) -> None:
    light, _ = await writer.submit(where, light=True)
    heavy, _ = await writer.submit(where)
    assert light == threading.current_thread().name
    assert heavy == "store-writer"


async def test_one_heavy_operation_keeps_its_whole_batch_on_the_writer_thread(
    writer: GroupCommitWriter,
) -> None:
    gate = Gate()
    busy = asyncio.ensure_future(writer.submit(gate))
    await asyncio.to_thread(gate.entered.wait, 10)
    batch = [asyncio.ensure_future(writer.submit(where, light=n != 2)) for n in range(5)]
    await asyncio.sleep(0.05)  # all five queued behind the gate
    gate.opened.set()
    await busy
    assert {(await job)[0] for job in batch} == {"store-writer"}


async def test_stop_called_on_the_loop_thread_still_runs_a_batch_handed_to_that_loop(
    tmp_path: Path,
) -> None:
    """`close` at shutdown blocks the loop while the writer finishes: a light batch
    handed to the loop meanwhile is run by the writer, not waited for for ever."""
    writer = GroupCommitWriter(lambda: connect(tmp_path / "s.sqlite", "FULL"))
    writer.start()
    gate = Gate()
    busy = asyncio.ensure_future(writer.submit(gate))
    await asyncio.to_thread(gate.entered.wait, 10)
    late = asyncio.ensure_future(writer.submit(where, light=True))
    await asyncio.sleep(0.05)  # queued behind the gate
    threading.Timer(0.05, gate.opened.set).start()
    writer.stop()  # on the loop's thread, as SqliteStore.close is
    await busy
    assert (await late)[0] == "store-writer"
    assert rows(tmp_path / "s.sqlite") == 1


async def test_a_light_operation_from_a_loop_that_stopped_is_committed_all_the_same(
    tmp_path: Path,
) -> None:
    writer = GroupCommitWriter(lambda: connect(tmp_path / "l.sqlite", "FULL"))
    writer.start()
    try:
        gate = Gate()
        busy = asyncio.ensure_future(writer.submit(gate))
        await asyncio.to_thread(gate.entered.wait, 10)

        def submit_and_stop() -> None:
            other = asyncio.new_event_loop()
            try:
                async def queue_one() -> None:
                    asyncio.ensure_future(writer.submit(where, light=True))
                    await asyncio.sleep(0)  # the job is queued; the loop stops after this

                other.run_until_complete(queue_one())
                gate.opened.set()
                # The loop is stopped, not closed: the writer must not wait for it.
                for _ in range(100):
                    if rows(tmp_path / "l.sqlite") == 1:
                        return
                    threading.Event().wait(0.05)
            finally:
                other.close()

        await asyncio.to_thread(submit_and_stop)
        await busy
        assert rows(tmp_path / "l.sqlite") == 1
    finally:
        await asyncio.to_thread(writer.stop)


async def test_a_loop_busy_in_a_long_call_does_not_hold_up_its_batch(tmp_path: Path) -> None:
    """The writer holds the lock every process waits for while a batch is on the loop:
    a loop inside a long call (a Lua handler) has the batch taken back and committed."""
    path = tmp_path / "b.sqlite"
    writer = GroupCommitWriter(lambda: connect(path, "FULL"))
    writer.start()
    try:
        job = asyncio.ensure_future(writer.submit(where, light=True))
        await asyncio.sleep(0)  # queued; now this loop is busy for a while
        deadline = time.monotonic() + 0.5
        while rows(path) == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert rows(path) == 1  # committed while the loop was still busy
        assert (await job)[0] == "store-writer"
    finally:
        await asyncio.to_thread(writer.stop)
