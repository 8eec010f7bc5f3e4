"""Parsing stored mail for a client, off the event loop and bounded per user.

What SEARCH over headers and bodies, ENVELOPE, BODYSTRUCTURE and BODY[section]
cost is chosen by the client: a `SEARCH TEXT` walks every byte of a mailbox.
Run on the event loop, four of those over 70 MB pushed another user's LMTP
delivery from 3 ms to 2.5 s. Two things stop that here:

* The work runs in a pool of worker *processes*. Threads were measured too
  (`MAILPUSH_MEASURE_POOLS=1 pytest tests/imap/test_heavy_commands.py`: four
  SEARCH TEXT and a BODYSTRUCTURE FETCH by one user, eight LMTP deliveries
  by another): with the parsing on the loop the slowest delivery took
  1.4-2.4 s, with threads 220-290 ms, with processes under 60 ms. A thread
  parsing mail holds the GIL, the loop gets it back only every switch
  interval, and a delivery needs the loop many times. What crosses the
  process boundary is the raw messages (a memory copy) and the answers.
  Small jobs (`INLINE_BYTES`) are parsed in place: cheaper than the trip.
* A user runs at most `per_user` heavy commands at once; further ones wait
  for a slot (a semaphore per user) instead of queueing more work, so one
  user cannot fill the pool with a pile of pipelined SEARCHes.

The worker functions are module-level and take only picklable values; they
re-parse the command's arguments themselves rather than receiving closures.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

from ..store import MessageInfo
from .binary_fetch import UnknownCteError
from .fetch import FetchPlan, render_fetch, structure_of
from .parser import Tokenizer
from .search import SearchContext, SearchProgram, parse_search

__all__ = [
    "INLINE_BYTES",
    "INLINE_KEY_TESTS",
    "FetchRow",
    "HeavyWork",
    "PoolKind",
    "SearchRow",
    "match_rows",
    "render_fetch_rows",
    "search_rows",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

PoolKind = Literal["process", "thread"]

#: Mail parsed on the event loop itself at most per call: a few milliseconds of work.
INLINE_BYTES = 64 * 1024
#: SEARCH key evaluations (keys x messages) done on the loop at most per call: ~10 ms.
INLINE_KEY_TESTS = 50_000

#: (seq, uid, flags, keywords, recent, info, raw) of one message SEARCH looks at.
SearchRow = tuple[int, int, int, tuple[str, ...], bool, MessageInfo | None, bytes | None]
#: (seq, uid, (flags, keywords), recent, info, raw, structure, include_flags, modseq)
#: for FETCH.
FetchRow = tuple[
    int,
    int,
    tuple[int, tuple[str, ...]],
    bool,
    MessageInfo | None,
    bytes | None,
    tuple[bytes, bytes, bytes] | None,
    bool,
    int,
]


class HeavyWork:
    """The worker pool and the per-user slots of one IMAP server."""

    def __init__(
        self,
        per_user: int = 4,
        workers: int | None = None,
        kind: PoolKind = "process",
        *,
        sharing: int = 1,
    ) -> None:
        """`workers`: the pool's processes; by default the cores shared out among the
        `sharing` serving processes (`mailpush_workers`), at least 2 each: every worker
        has a pool of its own, and one per core in each would be cores² processes."""
        self.per_user = per_user
        self.kind: PoolKind = kind
        self._workers = workers or max(2, (os.cpu_count() or 2) // max(1, sharing))
        self._pool: Executor | None = None
        self._slots: dict[str, _UserSlots] = {}

    @asynccontextmanager
    async def slot(self, user: str) -> AsyncIterator[None]:
        """Hold one of `user`'s heavy-command slots for the duration of a command."""
        slots = self._slots.get(user)
        if slots is None:
            slots = self._slots[user] = _UserSlots(self.per_user)
        slots.holders += 1
        try:
            async with slots.semaphore:
                slots.running += 1
                try:
                    yield
                finally:
                    slots.running -= 1
        finally:
            slots.holders -= 1
            if slots.holders == 0:
                del self._slots[user]

    @property
    def size(self) -> int:
        """How many processes (or threads) the pool runs at most."""
        return self._workers

    @property
    def pool_started(self) -> bool:
        """Whether work has gone to the pool since it was (re)started."""
        return self._pool is not None

    def running(self, user: str) -> int:
        """Heavy commands of `user` holding a slot now."""
        slots = self._slots.get(user)
        return 0 if slots is None else slots.running

    def waiting(self, user: str) -> int:
        """Heavy commands of `user` waiting for a slot."""
        slots = self._slots.get(user)
        return 0 if slots is None else slots.holders - slots.running

    async def run_sized(self, size: int, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` over `size` bytes of mail: in place when that is small.

        Up to `INLINE_BYTES` the parse costs a few milliseconds, less than a trip
        to a worker process (and, for the first heavy command, the pool's start).
        """
        if size <= INLINE_BYTES:
            return function(*args)
        return await self.run(function, *args)

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` in the pool; the caller's task waits without blocking the loop.

        A worker that died (killed for memory, say) breaks the whole pool: it is
        replaced and the work tried once more on the new one.
        """
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            return await loop.run_in_executor(pool, function, *args)
        except BrokenExecutor:
            log.warning("a heavy-work process died; starting a new pool")
            if self._pool is pool:
                self.close()
            return await loop.run_in_executor(self._executor(), function, *args)

    def close(self) -> None:
        """Stop the workers; work still queued is cancelled (its commands are gone too)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _executor(self) -> Executor:
        if self._pool is None:
            if self.kind == "process":
                # spawn, not fork: the server process runs the store's threads, and a
                # forked child could inherit one of their locks held.
                self._pool = ProcessPoolExecutor(
                    self._workers, mp_context=multiprocessing.get_context("spawn")
                )
            else:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="imap-heavy")
        return self._pool


class _UserSlots:
    __slots__ = ("semaphore", "holders", "running")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        #: Commands holding or waiting for a slot; the entry goes when this drops to 0.
        self.holders = 0
        self.running = 0


# --- run in the workers ---------------------------------------------------------------


def search_rows(
    arguments: bytes, start: int, max_seq: int, max_uid: int, rows: list[SearchRow]
) -> list[tuple[int, int]]:
    """(seq, uid) of the rows matching the SEARCH program written at `arguments[start:]`."""
    program = parse_search(Tokenizer(arguments, start))
    return match_rows(program, max_seq, max_uid, rows)


def match_rows(
    program: SearchProgram, max_seq: int, max_uid: int, rows: list[SearchRow]
) -> list[tuple[int, int]]:
    """(seq, uid) of the rows `program` matches."""
    found: list[tuple[int, int]] = []
    for seq, uid, flags, keywords, recent, info, raw in rows:
        context = SearchContext(seq, uid, flags, keywords, recent, info, raw, max_seq, max_uid)
        if program.predicate(context):
            found.append((seq, uid))
    return found


def render_fetch_rows(
    plan: FetchPlan, rows: list[FetchRow]
) -> tuple[list[bytes], dict[int, tuple[bytes, bytes, bytes]]]:
    """The `* n FETCH` lines of `rows`, and the structures computed on the way (to cache)."""
    lines: list[bytes] = []
    computed: dict[int, tuple[bytes, bytes, bytes]] = {}
    for seq, uid, state, recent, info, raw, structure, include_flags, modseq in rows:
        if structure is None and plan.structure_only and raw is not None:
            structure = computed[uid] = structure_of(raw)
        try:
            lines.append(
                render_fetch(
                    plan, seq, uid, state, recent, info, raw, structure, include_flags, modseq
                )
            )
        except UnknownCteError as exc:
            # The lines before, then the failing message's (partial) line: Dovecot's answer.
            raise UnknownCteError((*lines, *exc.answered)) from None
    return lines, computed
