"""Write and read transactions of the PostgreSQL store, on worker threads.

The counterpart of `sqlite_writer.GroupCommitWriter`, with the same contract
for an operation (`WriteContext`, `Submit`): each runs in a transaction of
its own, its change records go to the outbox recorder inside that
transaction, and they are published on the event loop after COMMIT — even
when the caller was cancelled meanwhile, as the change stands.

No group commit here: PostgreSQL lets many transactions write at once (one
connection per writer thread, from psycopg's pool) and flushes concurrent
commits' WAL together by itself.

Every write transaction is SERIALIZABLE, retried from the start when
PostgreSQL reports a serialization failure or a deadlock. This is what makes
the shared operations, written for SQLite's single writer, correct with
several writers in several processes or nodes: UID and modseq allocation
(`UPDATE mailboxes SET uidnext = uidnext + n … RETURNING`) and every
read-then-write (a flag change, an outbox claim) behave as if the
transactions had run one after another. An operation must therefore be
re-runnable: it may only change its `WriteContext` and the database.

`durable=False` (the dispatcher's bookkeeping, see `sqlite_writer`) commits
with `synchronous_commit = off`: no wait for the WAL flush, and a server
crash loses at most the last few such commits — a notification sent again.
Reads run at REPEATABLE READ, READ ONLY: all statements of one query see one
snapshot, as a SQLite reader's do.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ..errors import StoreError, StoreFullError
from ..logs.text import mask_secrets
from .changes import Change
from .models import MailboxStatus
from .outbox import OutboxEntry, OutboxRecorder, StatusAt
from .pg_dialect import PgConnection
from .sqlite_writer import Operation, WriteContext

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["MAX_ATTEMPTS", "PgTransactions", "pg_error"]

#: Times one write is tried when concurrent writers keep conflicting with it.
MAX_ATTEMPTS = 30
#: The status of a mailbox as a connection sees it (`sqlite_mailbox_rows.mailbox_status`).
StatusReader = Callable[[sqlite3.Connection, str, str], MailboxStatus]

_RETRIED = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


class PgTransactions:
    """Runs the store's operations as PostgreSQL transactions, off the event loop."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        writers: int,
        readers: int,
        recorder: OutboxRecorder | None,
        on_commit: Callable[[list[Change]], None],
        status_reader: StatusReader,
    ) -> None:
        self._pool = pool
        self._recorder = recorder
        self._on_commit = on_commit
        self._status_reader = status_reader
        self._writer_count = writers
        self._reader_count = readers
        self._writers: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        #: (transactions committed, of them retried at least once): how much writers collide.
        self.commits = 0
        self.retried = 0
        #: Called on the writer thread after each COMMIT with (1, seconds the COMMIT took).
        self.commit_observer: Callable[[int, float], None] | None = None

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def set_recorder(self, recorder: OutboxRecorder | None) -> None:
        self._recorder = recorder

    def start(self) -> None:
        if self._writers is None:
            self._writers = ThreadPoolExecutor(self._writer_count, thread_name_prefix="pg-writer")
            self._readers = ThreadPoolExecutor(self._reader_count, thread_name_prefix="pg-reader")

    def stop(self) -> None:
        """Finish the transactions under way; safe to call twice."""
        for pool in (self._writers, self._readers):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writers = self._readers = None

    async def submit(
        self, operation: Operation[T], *, durable: bool = True, light: bool = False
    ) -> tuple[T, list[Change]]:
        """Run `operation` in a transaction of its own; answered after its COMMIT.

        `light` is ignored: every statement here waits on the network, never on
        the event loop's thread."""
        if self._writers is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._writers, self._write, operation, durable, loop
        )

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a reader thread, all its statements in one snapshot."""
        if self._readers is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read, query)

    # --- worker threads ----------------------------------------------------------

    def _write(
        self, operation: Operation[T], durable: bool, loop: asyncio.AbstractEventLoop
    ) -> tuple[T, list[Change]]:
        try:
            result, changes = self._on_live_connection(
                lambda raw: self._write_on(raw, operation, durable)
            )
        except psycopg.Error as exc:
            raise pg_error(exc, "database error") from None
        except StoreError:
            raise
        except BaseException:
            log.exception("store operation failed unexpectedly")
            raise
        if changes:
            # Published even when the caller was cancelled: the change is committed.
            # Queued before the caller's answer, so subscribers hear of it first.
            try:
                loop.call_soon_threadsafe(self._on_commit, changes)
            except RuntimeError:
                pass  # the loop is gone: nobody is listening any more
        return result, changes

    def _on_live_connection(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work(connection)` on a pooled connection; again on a new one if the first
        turned out dead before `work` sent anything (`_StaleConnection`).

        A pooled connection dies unseen when the server restarts, fails over to a
        standby or ends idle sessions; the pool only learns it when the connection is
        next used. Each writer and reader thread would otherwise fail one call per
        such connection (a 4xx to LMTP, a NO to IMAP) after every failover.
        """
        for attempt in (1, 2):
            try:
                with self._pool.connection() as raw:
                    return work(raw)
            except _StaleConnection as stale:
                if attempt == 2:
                    raise stale.error from None
                log.info("a pooled PostgreSQL connection was closed (%s); using a new one",
                         mask_secrets(str(stale.error).strip()))
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _write_on(
        self, raw: psycopg.Connection[Any], operation: Operation[T], durable: bool
    ) -> tuple[T, list[Change]]:
        conn = PgConnection(raw)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            ctx = WriteContext(_as_connection(conn), recording=self._recorder is not None)
            try:
                _begin(raw, "BEGIN ISOLATION LEVEL SERIALIZABLE", first_use=attempt == 1)
                if not durable:
                    raw.execute("SET LOCAL synchronous_commit = off")
                result = operation(ctx)
                recorder = self._recorder
                if recorder is not None and ctx.changes:
                    now = time.time()
                    for entry in recorder(ctx.changes, self._status_at(conn)):
                        _insert_outbox_entry(conn, entry, now)
                committing = time.perf_counter()
                raw.execute("COMMIT")
            except _RETRIED:
                _rollback(raw)
                if attempt == MAX_ATTEMPTS:
                    raise
                # Spread the retries so that colliding writers do not collide again.
                time.sleep(random.uniform(0, 0.002 * attempt))
                continue
            except BaseException:
                _rollback(raw)
                raise
            self.commits += 1
            self.retried += attempt > 1
            if self.commit_observer is not None:
                self.commit_observer(1, time.perf_counter() - committing)
            return result, ctx.changes
        raise AssertionError("unreachable: the last attempt re-raises")

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        def read_on(raw: psycopg.Connection[Any]) -> T:
            _begin(raw, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", first_use=True)
            try:
                return query(_as_connection(PgConnection(raw)))
            finally:
                _rollback(raw)

        try:
            return self._on_live_connection(read_on)
        except psycopg.Error as exc:
            raise pg_error(exc, "database read failed") from None

    def _status_at(self, conn: PgConnection) -> StatusAt:
        reader = self._status_reader

        def status(user: str, mailbox: str) -> MailboxStatus:
            return reader(_as_connection(conn), user, mailbox)

        return status


def pg_error(exc: psycopg.Error, what: str) -> StoreError:
    """The store error for a failed PostgreSQL call: `StoreFullError` when the disk is full.

    The text is masked: a connection error may quote the `postgresql://` URI.
    """
    text = mask_secrets(str(exc).strip())
    if isinstance(exc, pg_errors.DiskFull):
        return StoreFullError(f"{what}: the disk holding the PostgreSQL store is full ({text})")
    return StoreError(f"{what}: {text}")


def _as_connection(conn: PgConnection) -> sqlite3.Connection:
    # The shared operations are typed against sqlite3.Connection; PgConnection has
    # the part of it they call (see pg_dialect). A protocol naming that part, in
    # the shared modules, would make this cast unnecessary.
    return cast(sqlite3.Connection, conn)


def _insert_outbox_entry(conn: PgConnection, entry: OutboxEntry, now: float) -> None:
    outbox_id = conn.execute(
        "INSERT INTO push_outbox (txn_id, user_name, created, payload) VALUES (?, ?, ?, ?)",
        (entry.txn_id, entry.user, now, entry.payload),
    ).lastrowid
    conn.executemany(
        "INSERT INTO push_deliveries (outbox_id, driver, user_name, state, next_attempt)"
        " VALUES (?, ?, ?, 'pending', ?)",
        [(outbox_id, driver, entry.user, now) for driver in entry.drivers],
    )


class _StaleConnection(Exception):
    """A pooled connection was found closed at the BEGIN of its first transaction of a call:
    nothing was sent, so the call may run again on another connection."""

    def __init__(self, error: psycopg.OperationalError) -> None:
        super().__init__(str(error))
        self.error = error


def _begin(raw: psycopg.Connection[Any], statement: str, *, first_use: bool) -> None:
    """Open a transaction; a connection the server closed meanwhile is `_StaleConnection`
    when this is the call's first use of it (a BEGIN that fails has changed nothing)."""
    try:
        raw.execute(statement)
    except psycopg.OperationalError as exc:
        if first_use and raw.closed:
            raise _StaleConnection(exc) from None
        raise


def _rollback(raw: psycopg.Connection[Any]) -> None:
    try:
        raw.execute("ROLLBACK")
    except psycopg.Error:
        pass  # the connection is broken; the pool replaces it
