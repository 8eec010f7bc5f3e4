"""The SQLite mail store: every mutation one transaction, committed in groups.

Writes go through `GroupCommitWriter` (one thread, one connection, batched
fsync); reads run on a small pool of reader threads with their own
connections, so the event loop never waits on SQLite. WAL mode lets readers
proceed while the writer commits, and `WalCheckpointer` copies the WAL into
the database file on a thread of its own, so no commit pays for that.

This module holds the lifecycle (threads, connections, `sqlite_schema`'s
migrations at open) and the `MailStore` methods; each job is a module of its
own sharing the writer and readers: `sqlite_mailboxes`, `sqlite_messages`,
`sqlite_metadata`, `sqlite_outbox`, `sqlite_pushed_ids`.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from ..errors import (
    StoreError,
)
from .change_hub import ChangeHub
from .outbox import OutboxRecorder
from .sqlite_mailbox_rows import mailbox_status
from .sqlite_mailboxes import SqliteMailboxes
from .sqlite_messages import SqliteMessages
from .sqlite_metadata import SqliteMetadata
from .sqlite_outbox import SqliteOutbox
from .sqlite_pushed_ids import SqlitePushedMessageIds
from .sqlite_schema import SCHEMA_VERSION, SchemaUpgrade, migrate_schema
from .sqlite_writer import WRITE_LOCK_SUFFIX, GroupCommitWriter
from .store_operations import StoreOperations
from .wal_checkpointer import CHECKPOINT_INTERVAL, WalCheckpointer

T = TypeVar("T")

FsyncPolicy = Literal["optimized", "always", "never"]

__all__ = ["SCHEMA_VERSION", "FsyncPolicy", "SqliteStore", "mailbox_status"]

READER_THREADS = 2
PARSER_THREADS = 2


class SqliteStore(StoreOperations):
    """Mail, mailboxes and the push outbox of every user, in one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        fsync: FsyncPolicy = "optimized",
        recorder: OutboxRecorder | None = None,
        hub: ChangeHub | None = None,
        mailbox_count_limit: int = 0,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> None:
        self.path = path
        self.fsync = fsync
        #: `quota_mailbox_count`: most mailboxes a user may create (0: no limit).
        self.mailbox_count_limit = mailbox_count_limit
        self.hub = hub or ChangeHub()
        self.checkpointer = WalCheckpointer(self._connect, checkpoint_interval)
        self._writer = GroupCommitWriter(
            self._connect_writer, recorder, self.hub.publish, status_reader=mailbox_status,
            lock_path=path.with_name(path.name + WRITE_LOCK_SUFFIX),
            after_commit=self.checkpointer.committed,
        )
        self._local = threading.local()
        self._readers: ThreadPoolExecutor | None = None
        self._parsers = None
        self.outbox = SqliteOutbox(self._writer.submit, self._read)
        self.pushed_ids = SqlitePushedMessageIds(self._writer.submit)
        self.metadata = SqliteMetadata(self._writer.submit, self._read)
        self._mailboxes = SqliteMailboxes(
            self._writer.submit, self._read, lambda: self.mailbox_count_limit
        )
        self._messages = SqliteMessages(
            self._writer.submit, self._read, self._summaries, lambda: self.mailbox_count_limit
        )

    # --- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Create or migrate the database file and start the worker threads."""
        self.migrate()
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="store-reader")
        self._parsers = ThreadPoolExecutor(PARSER_THREADS, thread_name_prefix="store-parser")
        self.checkpointer.start()
        self._writer.start()

    def migrate(self) -> SchemaUpgrade:
        """Create the file's schema or run the migrations it lacks (`sqlite_schema`), alone:
        `open` calls it, and `mailpush store migrate` calls nothing else."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            upgrade = migrate_schema(conn, self.path)
        finally:
            conn.close()
        os.chmod(self.path, 0o600)
        return upgrade

    def close(self) -> None:
        """Finish queued writes and stop the threads; safe to call twice."""
        self._writer.stop()
        self.checkpointer.stop()
        for pool in (self._readers, self._parsers):
            if pool is not None:
                pool.shutdown(wait=True)
        self._readers = self._parsers = None

    def set_recorder(self, recorder: OutboxRecorder | None) -> None:
        self._writer.set_recorder(recorder)

    def _recording(self) -> bool:
        return self._writer.recording

    def observe_commits(self, observer: Callable[[int, float], None] | None) -> None:
        """`observer(operations, seconds)` after each COMMIT, on the writer thread (metrics)."""
        self._writer.commit_observer = observer

    async def check_writable(self) -> None:
        """Take the write lock and commit nothing: raises StoreError if the store cannot
        write now (closed, writer stuck behind a lock, database unusable); for `/readyz`."""
        await self._writer.submit(lambda ctx: None, durable=False)

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches committed, operations committed): how well group commit groups."""
        return self._writer.batches, self._writer.operations

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL fsyncs the WAL at every commit: an acknowledged mail survives power loss.
        sync = "NORMAL" if self.fsync == "never" else "FULL"
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        # Its commits leave checkpoints to `self.checkpointer` (wal_checkpointer.py).
        conn = self._connect()
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._in_reader, query)

    def _in_reader(self, query: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
        conn.execute("BEGIN")  # one snapshot for all statements of the query
        try:
            return query(conn)
        finally:
            conn.execute("COMMIT")
