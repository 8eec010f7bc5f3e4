"""The Lua states of one driver instance: one per user, at most `capacity`, LRU.

Dovecot creates a state per mail user session and runs `script_deinit` when
the session ends; mailpush has no sessions on the push side, so it keeps
states across transactions and closes (running `script_deinit`) the least
recently used one when room is needed, those unused for `idle_timeout`, and
all of them at shutdown. A state costs about 180 KB with a small script.

`get` hands out a lease (`ScriptState.in_use`), taken inside the cache before
anything else can run, and `release` gives it back: a leased state — one in
the middle of a transaction, or just opened for one — is never closed. The
cache may hold more than `capacity` states while they are all leased; the
excess is closed as leases come back.

A state whose script failed to load (`disabled`) is kept for
`disabled_retry` seconds only, so a script fixed by the admin, or whose
`script_init` met a passing failure, runs again without a restart — as in
Dovecot, which opens a new state per session. Any other state that ran out
of memory is closed when its last lease comes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .script_state import ScriptState

__all__ = ["DISABLED_RETRY", "StateCache"]

log = logging.getLogger(__name__)


#: How often (seconds) `get` looks for states idle longer than the timeout.
SWEEP_INTERVAL = 10.0
#: Seconds a state whose script failed to load is kept before the next transaction
#: loads the script again.
DISABLED_RETRY = 60.0


class StateCache:
    def __init__(
        self,
        capacity: int,
        opener: Callable[[str], Awaitable[ScriptState]],
        idle_timeout: float = 0.0,
        disabled_retry: float = DISABLED_RETRY,
    ) -> None:
        self.capacity = capacity
        #: Seconds; 0 = keep states until room is needed.
        self.idle_timeout = idle_timeout
        self.disabled_retry = disabled_retry
        self._opener = opener
        self._states: OrderedDict[str, ScriptState] = OrderedDict()
        self._last_used: dict[str, float] = {}
        self._opening: dict[str, _Opening] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._last_sweep = time.monotonic()

    def __len__(self) -> int:
        return len(self._states)

    async def get(self, user: str) -> ScriptState:
        """The user's state, leased, opened (script loaded, `script_init` run) on first use.

        Give it back with `release` once done with it.
        """
        now = time.monotonic()
        self._sweep(now)
        state = self._states.get(user)
        if state is not None and self._expired(state, now):
            log.info("%sloading the script again (it failed %.1fs ago)", state.prefix,
                     now - state.disabled_at)
            self._forget(user)
            self._close_later(state)
            state = None
        if state is not None:
            self._states.move_to_end(user)
            self._last_used[user] = now
            state.in_use += 1
            return state
        opening = self._opening.get(user)
        if opening is None:
            opening = _Opening(asyncio.ensure_future(self._open(user)))
            self._opening[user] = opening
        opening.waiters += 1
        future = opening.future
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.done():
                opening.waiters -= 1  # the state will not count this lease
            elif not future.cancelled() and future.exception() is None:
                self.release(future.result())
            raise

    def release(self, state: ScriptState) -> None:
        """Give back a lease from `get`; the last one closes a state that ran out of memory."""
        state.in_use -= 1
        if state.in_use > 0:
            return
        self._sweep(time.monotonic())
        if state.exhausted and state.disabled is None:
            log.warning(
                "%sthe Lua state ran out of memory (lua_max_memory); it is closed and the"
                " next transaction starts a fresh one", state.prefix,
            )
            self.discard(state)
        else:
            self._evict()

    def discard(self, state: ScriptState) -> None:
        """Close `state` now (e.g. it ran out of memory); the next use opens a fresh one."""
        if self._states.get(state.user) is state:
            self._forget(state.user)
        self._close_later(state)

    async def close(self) -> None:
        """Close every state (`script_deinit`, all at once) and wait for closes under way."""
        states = list(self._states.values())
        self._states.clear()
        self._last_used.clear()
        for state in states:
            self._close_later(state)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _expired(self, state: ScriptState, now: float) -> bool:
        """A disabled state past its back-off, which nobody holds."""
        return (
            state.disabled is not None
            and state.in_use == 0
            and now - state.disabled_at >= self.disabled_retry
        )

    async def _open(self, user: str) -> ScriptState:
        try:
            state = await self._opener(user)
        except BaseException:
            self._opening.pop(user, None)
            raise
        opening = self._opening.pop(user)
        # Leased for every waiter before anything else runs, so `_evict` below (or
        # another user's) cannot close it before its waiters see it.
        state.in_use += opening.waiters
        self._states[user] = state
        self._last_used[user] = time.monotonic()
        self._evict()
        return state

    def _evict(self) -> None:
        excess = len(self._states) - self.capacity
        if excess <= 0:
            return
        idle = [state for state in self._states.values() if state.in_use == 0][:excess]
        for state in idle:
            self._forget(state.user)
            self._close_later(state)

    def _sweep(self, now: float) -> None:
        """Now and then (at each get and release), close the states idle too long."""
        if self.idle_timeout and now - self._last_sweep >= min(SWEEP_INTERVAL, self.idle_timeout):
            self._last_sweep = now
            self._close_idle(now)

    def _close_idle(self, now: float) -> None:
        """Close states unused for `idle_timeout`, oldest first (the LRU order)."""
        for user, state in list(self._states.items()):
            if now - self._last_used.get(user, now) < self.idle_timeout:
                break
            if state.in_use == 0:
                self._forget(user)
                self._close_later(state)

    def _forget(self, user: str) -> None:
        del self._states[user]
        self._last_used.pop(user, None)

    def _close_later(self, state: ScriptState) -> None:
        task = asyncio.create_task(_close(state), name=f"lua-close-{state.user}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


@dataclass
class _Opening:
    """A state being opened, and how many `get` calls wait for it (each gets a lease)."""

    future: asyncio.Future[ScriptState]
    waiters: int = 0


async def _close(state: ScriptState) -> None:
    try:
        await state.close()
    except Exception:
        log.exception("%sclosing the Lua state failed", state.prefix)
