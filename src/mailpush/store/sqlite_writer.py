"""One writer thread that commits many operations with one fsync (group commit).

SQLite allows one writer at a time and a durable commit costs an fsync. Rather
than paying one fsync per delivery, the writer drains every operation waiting
in its queue, runs each inside its own SAVEPOINT (so a failing operation is
rolled back alone, exactly as if it had been its own transaction), and then
commits the batch once. Callers are answered only after that COMMIT returns,
so an acknowledged operation is on disk; concurrent operations share the cost.

Change records an operation produces are handed to the outbox recorder inside
its savepoint (the transactional outbox) and returned to the caller with the
result after commit. The recorder gets all of one operation's records at
once — their push transactions form one group, whose calls interleave as
Dovecot's do (events/mapping.py) — and a way to read a mailbox's status
inside the still-open transaction, so a transaction can carry the status its
commit leaves (what Dovecot's synchronous `mailbox:status()` sees).

Some writes need no fsync of their own: the push dispatcher's bookkeeping
(claimed, done, retry at) only decides whether a notification is sent again
after a crash, and sending again is what at-least-once allows. Such jobs are
submitted with `durable=False`; a batch made only of them commits with
`synchronous=NORMAL` (WAL: no fsync; safe against a process crash, and a
later durable commit syncs them too). Without this every dispatcher round
cost an fsync of its own, and LMTP deliveries queued behind it.

The operations themselves run on the writer thread, unless every one in the
batch is light (a delivery: a few rows) and came from one event loop: then
the writer, holding the lock and the open transaction, hands them to that
loop and waits. Each SQLite call gives up the GIL, and taking it back from a
busy event loop (which lets go only between Python bytecodes, not inside
uvloop's C) cost up to tens of microseconds a statement, a dozen statements a
delivery, all while holding the lock every writing process waits for. On the
loop they run without that tug of war; the loop waits for them instead, a
fraction of a millisecond a batch. The writer thread still waits for the
lock, begins and commits (the fsync), so the loop never blocks on either;
and a loop that does not take the batch up within `HANDOFF_PATIENCE` has it
run by the writer thread after all, so a busy loop cannot keep the lock held.
Heavy operations (a STORE or COPY over a mailbox) stay on the writer thread:
the loop serves every other session of the process meanwhile.

Several processes write one file (workers, `mailpush deliver`, other nodes of
a shared data directory). SQLite makes a writer that finds the file locked
wait in its busy handler, which sleeps 1, 2, 5 … up to 100 ms between tries:
with two busy processes most of the time went to sleeping while the lock was
free. So each writer first takes an exclusive `flock` on `<database>.writelock`
(`writer_lock.py`: woken the moment the holder lets go, given up after
`LOCK_TIMEOUT`), and drains its queue only then, so what arrived meanwhile
joins its batch. The lock is held from BEGIN to COMMIT only; a process that
dies drops it with its descriptor. Writers that do not take it (an SQLite
shell) are still serialised by SQLite's own lock.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from ..errors import StoreError, StoreFullError
from .changes import Change
from .models import MailboxStatus
from .outbox import OutboxEntry, OutboxRecorder, StatusAt
from .writer_lock import WriterLock

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Appended to the database's file name: the lock file writers `flock` (see above).
WRITE_LOCK_SUFFIX = ".writelock"

#: Seconds a writer waits for the writers' lock before failing the waiting operations.
LOCK_TIMEOUT = 30.0

#: Operations run together in one commit at most; bounds the latency one batch adds.
MAX_BATCH = 512


#: How the writer reads a status on its own connection (`sqlite_mailbox_rows.mailbox_status`).
StatusReader = Callable[[sqlite3.Connection, str, str], MailboxStatus]


class WriteContext:
    """What an operation sees: the connection and a place to report its changes.

    `recording`: whether an outbox recorder will turn the changes into push
    transactions (a store without push drivers has none), so whether a save
    needs its messages' summaries.
    """

    __slots__ = ("conn", "changes", "recording")

    def __init__(self, conn: sqlite3.Connection, *, recording: bool = False) -> None:
        self.conn = conn
        self.changes: list[Change] = []
        self.recording = recording

    def record(self, change: Change) -> None:
        self.changes.append(change)


Operation = Callable[[WriteContext], T]


class Submit(Protocol):
    """`GroupCommitWriter.submit`, as the store's parts (outbox, mailboxes, …) take it.

    `light`: the operation is small (a few rows, no loop over a mailbox), so the
    writer may run it on the caller's event loop (module docstring); a backend
    that cannot (PostgreSQL, whose statements wait on the network) ignores it.
    """

    def __call__(
        self, operation: Callable[[WriteContext], T], *, durable: bool = True, light: bool = False
    ) -> Awaitable[tuple[T, list[Change]]]: ...


@dataclass(slots=True)
class _Job(Generic[T]):
    operation: Operation[T]
    future: asyncio.Future[tuple[T, list[Change]]]
    loop: asyncio.AbstractEventLoop
    durable: bool = True
    light: bool = False


#: What running a batch's operations gives: the failure that undid the whole
#: transaction (None: it stands) and each operation's (succeeded, value).
Outcomes = tuple[BaseException | None, list[tuple[bool, Any]]]

#: Seconds the writer waits for the event loop to take up a batch it was handed
#: before running the batch itself. The loop may be inside a long call (a Lua
#: handler, which runs without the GIL; a large response being built), stopped,
#: or blocked in `stop` on its own thread; meanwhile the writer holds the lock
#: every process waits for. With 8 LMTP connections (and another benchmark
#: running beside them), over 99 % of batches were taken up within 3 ms.
HANDOFF_PATIENCE = 0.005


class _Handoff:
    """A batch's operations, run once by whichever thread comes first: the event
    loop it was handed to, or the writer thread when that loop cannot."""

    def __init__(self, run: Callable[[], Outcomes]) -> None:
        self._run = run
        self._claimed = threading.Lock()
        self._done = threading.Event()
        self.outcomes: Outcomes = (StoreError("the write was not run"), [])

    def run(self) -> None:
        if not self._claimed.acquire(blocking=False):
            return  # run, or running, on the other thread
        try:
            self.outcomes = self._run()
        except BaseException as exc:  # noqa: B036 - reported to every caller of the batch
            log.exception("store operations failed unexpectedly")
            self.outcomes = (StoreError(f"database error: {exc}"), [])
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


_STOP = object()


class GroupCommitWriter:
    """Runs write operations on a dedicated thread, committing them in batches."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        recorder: OutboxRecorder | None = None,
        on_commit: Callable[[list[Change]], None] | None = None,
        status_reader: StatusReader | None = None,
        lock_path: Path | None = None,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._connect = connect
        #: Told of each COMMIT on the writer thread (the WAL checkpointer); must be cheap.
        self._after_commit = after_commit
        #: The file whose `flock` serialises writers across processes (None: not taken).
        self._lock_path = lock_path
        self._lock: WriterLock | None = None
        self._recorder = recorder
        self._status_reader = status_reader
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._started = False
        #: Whether the connection commits with synchronous=FULL (read when it opens).
        self._full_sync = False
        #: Whether the connection is at `synchronous=NORMAL` now (`_run_batch`).
        self._relaxed = False
        self.batches = 0
        self.operations = 0
        #: Called on the writer thread after each COMMIT with (operations, seconds the
        #: COMMIT took, its fsync included): the store metrics. Must be cheap.
        self.commit_observer: Callable[[int, float], None] | None = None

    def set_recorder(self, recorder: OutboxRecorder | None) -> None:
        self._recorder = recorder

    @property
    def recording(self) -> bool:
        """Whether changes are recorded for push now (a recorder is installed)."""
        return self._recorder is not None

    def start(self) -> None:
        """Start the writer thread; raises StoreError if the lock file cannot be opened."""
        if not self._started:
            try:
                self._lock = None if self._lock_path is None else WriterLock(self._lock_path)
            except OSError as exc:
                raise StoreError(
                    f"cannot open the writers' lock file {self._lock_path}: {exc.strerror}"
                ) from exc
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        """Finish every queued operation, then close the connection."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join()
            self._started = False

    async def submit(
        self, operation: Operation[T], *, durable: bool = True, light: bool = False
    ) -> tuple[T, list[Change]]:
        """Run `operation` in the next batch; answered after its commit.

        `durable=False`: the commit need not be fsynced before answering (see the
        module docstring); only for writes whose loss a crash may tolerate.
        `light`: it may run on this event loop (`Submit`).
        """
        if not self._started:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[T, list[Change]]] = loop.create_future()
        self._queue.put(_Job(operation, future, loop, durable, light))
        return await future

    # --- writer thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
            self._full_sync = conn.execute("PRAGMA synchronous").fetchone()[0] >= 2
        except sqlite3.Error as exc:
            # Answered, not left waiting: every write fails with why, until `stop`.
            self._refuse_all(database_error(exc, "cannot open the store's database"))
            return
        lock = self._lock
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Job[Any]] = [first]  # type: ignore[list-item]
                if lock is not None and not lock.acquire(LOCK_TIMEOUT):
                    self._refuse_waiting(batch)
                    del first, batch
                    continue
                stop_after = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop_after = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
                try:
                    self._run_batch(conn, batch)
                finally:
                    if lock is not None:
                        lock.release()
                # Let go of the jobs: each holds its result (an appended message's body)
                # until its caller took it, and waiting here would keep the last one alive.
                del first, batch
                item = None
                if stop_after:
                    return
        finally:
            conn.close()
            if lock is not None:
                lock.close()

    def _refuse_all(self, error: StoreError) -> None:
        """The connection could not be opened: fail every write, queued or to come."""
        log.error("%s", error)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                _resolve(item, False, error)  # type: ignore[arg-type]
        finally:
            if self._lock is not None:
                self._lock.close()

    def _refuse_waiting(self, batch: list[_Job[Any]]) -> None:
        """Fail `batch` and whatever queued behind it: the lock was not to be had."""
        error = StoreError(
            f"another process has held the writers' lock {self._lock_path} for"
            f" {LOCK_TIMEOUT:.0f}s (a stopped or hung mailpush process?)"
        )
        log.error("%s", error)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # seen by the loop right after
                break
            batch.append(item)  # type: ignore[arg-type]
        for job in batch:
            _resolve(job, False, error)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        if self._full_sync:
            # Changed only when this batch needs the other level: in the dispatcher's
            # process nearly every batch is relaxed, in a delivering one durable, and
            # each PRAGMA is a statement run while holding the writers' lock.
            relaxed = not any(job.durable for job in batch)
            if relaxed != self._relaxed:
                conn.execute("PRAGMA synchronous=NORMAL" if relaxed else "PRAGMA synchronous=FULL")
                self._relaxed = relaxed
        self._run_transaction(conn, batch)

    def _run_transaction(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        try:
            self._begin(conn)
        except sqlite3.Error as exc:
            error = database_error(exc, "cannot start a database transaction")
            for job in batch:
                _resolve(job, False, error)
            return
        failure, outcomes = self._run_operations(conn, batch)
        if failure is not None:
            if conn.in_transaction:  # an operation failed unexpectedly (`_Handoff`)
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            for each in batch:
                _resolve(each, False, failure)
            return
        try:
            committing = time.perf_counter()
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store commit failed, %d operations rolled back: %s", len(batch), exc)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            error = database_error(exc, "database commit failed")
            for job in batch:
                _resolve(job, False, error)
            return
        if self._after_commit is not None:
            self._after_commit()
        if self.commit_observer is not None:
            self.commit_observer(len(batch), time.perf_counter() - committing)
        self.batches += 1
        self.operations += len(batch)
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            _resolve(job, ok, value, self._on_commit)

    def _run_operations(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> Outcomes:
        """Run the batch's operations inside the open transaction: on their event
        loop when every one is light and all came from one loop, else here."""
        loop = batch[0].loop
        if not all(job.light and job.loop is loop for job in batch):
            return self._run_each(conn, batch)
        handoff = _Handoff(lambda: self._run_each(conn, batch))
        try:
            loop.call_soon_threadsafe(handoff.run)
        except RuntimeError:
            pass  # the loop is closed: run here, now
        if not handoff.wait(HANDOFF_PATIENCE):
            handoff.run()  # returns at once if the loop took it up meanwhile
            handoff.wait()
        return handoff.outcomes

    def _run_each(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> Outcomes:
        outcomes: list[tuple[bool, Any]] = []
        for job in batch:
            outcomes.append(self._run_one(conn, job))
            if not conn.in_transaction:
                # SQLite rolled the whole transaction back (it may on SQLITE_FULL or an
                # I/O error): nothing of this batch stands, so no job may report success.
                ok, value = outcomes[-1]
                failure = value if not ok else StoreError("the transaction was rolled back")
                return failure, outcomes
        return None, outcomes

    def _begin(self, conn: sqlite3.Connection) -> None:
        # IMMEDIATE takes the write lock now: another process (`mailpush deliver`)
        # writing at the same time makes us wait (busy_timeout) instead of failing
        # later with an unresolvable lock upgrade.
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _run_one(self, conn: sqlite3.Connection, job: _Job[Any]) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT op")
        ctx = WriteContext(conn, recording=self._recorder is not None)
        try:
            result = job.operation(ctx)
            if self._recorder is not None and ctx.changes:
                now = time.time()
                for entry in self._recorder(ctx.changes, self._status_at(conn)):
                    _insert_outbox_entry(conn, entry, now)
        except BaseException as exc:  # noqa: B036 - the operation's failure is its caller's
            if conn.in_transaction:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            if isinstance(exc, sqlite3.Error) and _is_disk_full(exc):
                log.warning("store write refused, the disk is full: %s", exc)
                exc = database_error(exc, "database error")
            elif not isinstance(exc, StoreError):
                log.exception("store operation failed unexpectedly")
                if isinstance(exc, sqlite3.Error):
                    exc = database_error(exc, "database error")
            return False, exc
        conn.execute("RELEASE op")
        return True, (result, ctx.changes)


    def _status_at(self, conn: sqlite3.Connection) -> StatusAt:
        reader = self._status_reader

        def status(user: str, mailbox: str) -> MailboxStatus:
            if reader is None:
                raise StoreError("this store cannot read a mailbox status while writing")
            return reader(conn, user, mailbox)

        return status


def database_error(exc: sqlite3.Error, what: str) -> StoreError:
    """The store error for a failed SQLite call: `StoreFullError` when the disk is full."""
    if _is_disk_full(exc):
        return StoreFullError(f"{what}: the disk holding the store is full ({exc})")
    return StoreError(f"{what}: {exc}")


def _is_disk_full(exc: sqlite3.Error) -> bool:
    # SQLITE_FULL is what SQLite reports for ENOSPC (and for max_page_count); the
    # extended code keeps the primary one in its low byte.
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL


def _insert_outbox_entry(conn: sqlite3.Connection, entry: OutboxEntry, now: float) -> None:
    cur = conn.execute(
        "INSERT INTO push_outbox (txn_id, user_name, created, payload) VALUES (?, ?, ?, ?)",
        (entry.txn_id, entry.user, now, entry.payload),
    )
    conn.executemany(
        "INSERT INTO push_deliveries (outbox_id, driver, user_name, state, next_attempt)"
        " VALUES (?, ?, ?, 'pending', ?)",
        [(cur.lastrowid, driver, entry.user, now) for driver in entry.drivers],
    )


def _resolve(
    job: _Job[Any],
    ok: bool,
    value: Any,
    on_commit: Callable[[list[Change]], None] | None = None,
) -> None:
    def settle() -> None:
        if ok and on_commit is not None and value[1]:
            # Published even when the caller was cancelled: the change is committed.
            on_commit(value[1])
        if job.future.done():
            return  # the caller gave up (cancelled); the change stands regardless
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)

    try:
        job.loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop is gone: nobody is waiting any more
