"""WAL checkpoints: made after commits by the store's own thread, never by a commit."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mailpush.store import DeliveryTarget, SqliteStore
from mailpush.store.wal_checkpointer import WalCheckpointer


def message(marker: str, size: int = 200) -> bytes:
    head = f"From: a@example.org\r\nSubject: {marker}\r\n\r\n".encode()
    return head + b"x" * size + b"\r\n"


async def wait_for(condition: object, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


@asynccontextmanager
async def opened(path: Path, **settings: float) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path, **settings)
    store.open()
    try:
        yield store
    finally:
        store.close()


async def test_a_delivery_reaches_the_database_file_soon_after_its_commit(
    tmp_path: Path,
) -> None:
    """Not only the WAL holds it: a checkpoint copied it, with no commit after it."""
    async with opened(tmp_path / "mail.db") as store:
        await store.deliver("alice", message("marker-7f3a9c"), [DeliveryTarget("INBOX")])
        assert await wait_for(lambda: b"marker-7f3a9c" in store.path.read_bytes())


async def test_commits_never_copy_the_wal_themselves(tmp_path: Path) -> None:
    """Far past SQLite's 1,000-page autocheckpoint, the database file stays as it was
    while the checkpointer waits out its interval: no commit checkpointed."""
    async with opened(tmp_path / "mail.db", checkpoint_interval=3600) as store:
        await store.deliver("alice", message("first"), [DeliveryTarget("INBOX")])
        assert await wait_for(lambda: store.checkpointer.checkpoints == 1)
        before = store.path.read_bytes()
        for n in range(60):  # about 1,500 pages of bodies
            await store.deliver("alice", message(f"m{n}", 100_000), [DeliveryTarget("INBOX")])
        wal_pages = (tmp_path / "mail.db-wal").stat().st_size // 4096
        assert wal_pages > 1000
        assert store.path.read_bytes() == before
        assert store.checkpointer.checkpoints == 1
    # Nothing was lost by waiting: closing the last connection folds the WAL in.
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (61,)
    finally:
        conn.close()


async def test_an_idle_store_runs_no_checkpoints(tmp_path: Path) -> None:
    async with opened(tmp_path / "mail.db") as store:
        await store.deliver("alice", message("one"), [DeliveryTarget("INBOX")])
        assert await wait_for(lambda: store.checkpointer.checkpoints >= 1)
        settled = store.checkpointer.checkpoints
        await asyncio.sleep(0.6)  # more than two intervals
        assert store.checkpointer.checkpoints == settled


async def test_a_failing_checkpoint_is_logged_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    class Broken:
        def execute(self, sql: str) -> object:
            nonlocal calls
            calls += 1
            if calls <= 2:
                raise sqlite3.OperationalError("disk I/O error")
            return self

        def fetchall(self) -> list[object]:
            return []

        def close(self) -> None:
            pass

    caplog.set_level(logging.INFO, logger="mailpush.store.wal_checkpointer")
    checkpointer = WalCheckpointer(lambda: Broken(), interval=0.01)  # type: ignore[arg-type, return-value]
    checkpointer.start()
    try:
        for _ in range(3):
            checkpointer.committed()
            await asyncio.sleep(0.05)
        assert await wait_for(lambda: checkpointer.checkpoints == 1)
    finally:
        checkpointer.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["WAL checkpoint failed, will retry after the next commit: disk I/O error"]
    assert "WAL checkpoints succeed again" in caplog.text
