"""The Lua states of one driver instance: one per user, at most `capacity`, LRU.

Dovecot creates a state per mail user session and runs `script_deinit` when
the session ends; mailpush has no sessions on the push side, so it keeps
states across transactions and closes the least recently used idle one
(running its `script_deinit`) when room is needed, and all of them at
shutdown. A state in the middle of a transaction is never evicted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from .script_state import ScriptState

__all__ = ["StateCache"]

log = logging.getLogger("mailpush.push.lua")


class StateCache:
    def __init__(self, capacity: int, opener: Callable[[str], Awaitable[ScriptState]]) -> None:
        self.capacity = capacity
        self._opener = opener
        self._states: OrderedDict[str, ScriptState] = OrderedDict()
        self._opening: dict[str, asyncio.Future[ScriptState]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._states)

    async def get(self, user: str) -> ScriptState:
        """The user's state, opened (script loaded, `script_init` run) on first use."""
        state = self._states.get(user)
        if state is not None:
            self._states.move_to_end(user)
            return state
        pending = self._opening.get(user)
        if pending is None:
            pending = asyncio.ensure_future(self._open(user))
            self._opening[user] = pending
        return await asyncio.shield(pending)

    def discard(self, state: ScriptState) -> None:
        """Close `state` now (e.g. it ran out of memory); the next use opens a fresh one."""
        if self._states.get(state.user) is state:
            del self._states[state.user]
        self._close_later(state)

    async def close(self) -> None:
        """Close every state (`script_deinit`) and wait for closes under way."""
        states = list(self._states.values())
        self._states.clear()
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
        self._evict()
        return state

    def _evict(self) -> None:
        excess = len(self._states) - self.capacity
        if excess <= 0:
            return
        idle = [state for state in self._states.values() if state.in_use == 0][:excess]
        for state in idle:
            del self._states[state.user]
            self._close_later(state)

    def _close_later(self, state: ScriptState) -> None:
        task = asyncio.create_task(_close(state), name=f"lua-close-{state.user}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close(state: ScriptState) -> None:
    try:
        await state.close()
    except Exception:
        log.exception("%sclosing the Lua state failed", state.prefix)
