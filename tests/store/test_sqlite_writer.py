"""The writer's commits: durable by default, fsync-free only for jobs that say so."""

from __future__ import annotations

import asyncio
import sqlite3
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
