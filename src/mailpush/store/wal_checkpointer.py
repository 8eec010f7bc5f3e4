"""WAL checkpoints on a thread of their own, never inside a commit.

SQLite's default (`wal_autocheckpoint`, 1,000 pages) makes whichever commit
crosses the threshold copy the whole WAL into the database file and, at
`synchronous=FULL`, fsync that file too, all before its COMMIT returns and
while it holds the write lock every process waits for. Measured with 2
workers, 8 LMTP connections and the Lua recording script, one commit in 20
to 25 took 3-6 ms instead of about one, and every delivery queued behind it
waited as long; with this thread, one in 45 to 190.

So the store's writer connection runs with `wal_autocheckpoint=0` and this
thread checkpoints on a connection of its own. A `PASSIVE` checkpoint takes
no write lock: commits go on while it copies, and it copies only what every
reader has moved past (as the automatic one does). It runs when the writer
reports a commit, at most once per `interval`, so it costs nothing while the
store is idle, and under load one copy of a page serves every commit that
rewrote it in the meantime. Other processes writing the file (workers,
`mailpush deliver`) run their own; SQLite lets one checkpoint run at a time
and the others return at once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

__all__ = ["CHECKPOINT_INTERVAL", "WalCheckpointer"]

log = logging.getLogger(__name__)

#: Least seconds between two checkpoints of one process while commits keep coming.
CHECKPOINT_INTERVAL = 0.25


class WalCheckpointer:
    """Copies committed WAL pages into the database file after commits (module docstring)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        interval: float = CHECKPOINT_INTERVAL,
    ) -> None:
        self._connect = connect
        self._interval = interval
        #: Set by `committed`: there may be pages to copy.
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._started = False
        #: Checkpoints run (each may have found nothing new): for tests and metrics.
        self.checkpoints = 0
        #: Whether the last failure was logged: one warning per run of failures.
        self._failing = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def committed(self) -> None:
        """A commit happened (called on the writer thread, so it must be cheap)."""
        self._wake.set()

    def stop(self) -> None:
        """End the thread; a checkpoint under way is finished first."""
        if self._started:
            self._stopping.set()
            self._wake.set()
            self._thread.join()
            self._started = False

    def _run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            # Without checkpoints the WAL only grows; say so, loudly, once.
            log.error("cannot open a connection for WAL checkpoints, the WAL will grow: %s", exc)
            return
        try:
            while True:
                self._wake.wait()
                if self._stopping.is_set():
                    return
                self._wake.clear()
                self._checkpoint(conn)
                if self._stopping.wait(self._interval):
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            if not self._failing:
                log.warning("WAL checkpoint failed, will retry after the next commit: %s", exc)
                self._failing = True
            return
        if self._failing:
            log.info("WAL checkpoints succeed again")
            self._failing = False
        self.checkpoints += 1
