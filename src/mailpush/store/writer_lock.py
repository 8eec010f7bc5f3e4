"""The writers' lock: one `flock` that processes writing one SQLite file take in turn.

SQLite makes a writer that finds the file locked sleep in its busy handler (1,
2, 5 … up to 100 ms a try), and polling a non-blocking `flock` has the same
flaw on a smaller scale: a lock freed just after a try is taken only after
the next sleep. With two workers committing and the push dispatcher writing
its bookkeeping in between, those sleeps were most of a delivery's time. A
blocking `flock` is woken by the kernel the moment the holder lets go, but
cannot time out, and a process stopped (SIGSTOP) or hung while holding the
lock must not hold every writer of the others for ever (nor `/readyz` and
`close` with them).

So the blocking call runs on a thread of its own, the waiter, and the writer
thread waits for it with a timeout. A wait that timed out is withdrawn: if
the waiter gets the lock after that, it lets go at once rather than keep
other processes out while this one has nothing to write. The lock belongs
to the open file, not to a thread, so the writer thread releases what the
waiter took.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

__all__ = ["WriterLock"]


class WriterLock:
    """`acquire(timeout)` / `release()` of an exclusive `flock` on `path`, woken at once."""

    def __init__(self, path: Path) -> None:
        """Open (create) the lock file; OSError if it cannot be."""
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._state = threading.Condition()
        #: The writer thread waits for the lock (set by acquire, withdrawn on timeout).
        self._wanted = False
        #: The waiter took the lock for the writer thread, which has not picked it up yet.
        self._handed_over = False
        #: The waiter is in (or about to enter) its blocking flock: the writer thread must
        #: not try for the lock itself, or the two would take it twice over one file.
        self._waiting = False
        self._closing = False
        self._waiter = threading.Thread(target=self._wait_for_lock, name="store-writelock",
                                        daemon=True)
        self._waiter.start()

    def acquire(self, timeout: float) -> bool:
        """Hold the lock within `timeout` seconds: True, or False and not holding it."""
        with self._state:
            if not self._waiting:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True  # free: taken at once, no hand-over
                except BlockingIOError:
                    pass
            self._wanted = True
            self._state.notify_all()
            got = self._state.wait_for(lambda: self._handed_over, timeout)
            if got:
                self._handed_over = False
            else:
                self._wanted = False
            return got

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Stop the waiter and close the file. A waiter still blocked (the holder is
        stopped) is left to end with the process, and so is its descriptor."""
        with self._state:
            self._closing = True
            self._state.notify_all()
        self._waiter.join(timeout=1.0)
        if not self._waiter.is_alive():
            os.close(self._fd)

    def _wait_for_lock(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(lambda: self._wanted or self._closing)
                if self._closing:
                    return
                self._waiting = True
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            with self._state:
                self._waiting = False
                if self._wanted and not self._closing:
                    self._wanted = False
                    self._handed_over = True
                    self._state.notify_all()
                else:
                    # Nobody waits any more (the wait timed out, or the store is closing).
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
