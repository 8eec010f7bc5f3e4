"""The Lua states of one driver instance: one per user, at most `capacity`, LRU.

Dovecot creates a state per mail user session and runs `script_deinit` when
the session ends; mailpush has no sessions on the push side, so it keeps
states across transactions and closes (running `script_deinit`) the least
recently used one when room is needed, those unused for `idle_timeout`, and
all of them at shutdown. A state in the middle of a transaction is never
closed. A state costs about 180 KB with a small script.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from .script_state import ScriptState

__all__ = ["StateCache"]

log = logging.getLogger("mailpush.push.lua")


#: How often (seconds) `get` looks for states idle longer than the timeout.
SWEEP_INTERVAL = 10.0


class StateCache:
    def __init__(
        self,
        capacity: int,
        opener: Callable[[str], Awaitable[ScriptState]],
        idle_timeout: float = 0.0,
    ) -> None:
        self.capacity = capacity
        #: Seconds; 0 = keep states until room is needed.
        self.idle_timeout = idle_timeout
        self._opener = opener
        self._states: OrderedDict[str, ScriptState] = OrderedDict()
        self._last_used: dict[str, float] = {}
        self._opening: dict[str, asyncio.Future[ScriptState]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._last_sweep = time.monotonic()

    def __len__(self) -> int:
        return len(self._states)

    async def get(self, user: str) -> ScriptState:
        """The user's state, opened (script loaded, `script_init` run) on first use."""
        now = time.monotonic()
        if self.idle_timeout and now - self._last_sweep >= min(SWEEP_INTERVAL, self.idle_timeout):
            self._last_sweep = now
            self._close_idle(now)
        state = self._states.get(user)
        if state is not None:
            self._states.move_to_end(user)
            self._last_used[user] = now
            return state
        pending = self._opening.get(user)
        if pending is None:
            pending = asyncio.ensure_future(self._open(user))
            self._opening[user] = pending
        return await asyncio.shield(pending)

    def discard(self, state: ScriptState) -> None:
        """Close `state` now (e.g. it ran out of memory); the next use opens a fresh one."""
        if self._states.get(state.user) is state:
            self._forget(state.user)
        self._close_later(state)

    async def close(self) -> None:
        """Close every state (`script_deinit`) and wait for closes under way."""
        states = list(self._states.values())
        self._states.clear()
        self._last_used.clear()
        for state in states:
            await _close(state)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _open(self, user: str) -> ScriptState:
        try:
            state = await self._opener(user)
        finally:
            self._opening.pop(user, None)
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


async def _close(state: ScriptState) -> None:
    try:
        await state.close()
    except Exception:
        log.exception("%sclosing the Lua state failed", state.prefix)
