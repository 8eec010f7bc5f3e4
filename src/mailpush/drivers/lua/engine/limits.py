"""What stops a script: an instruction count, a wall-clock deadline, a memory budget.

`CallLimits` (`lua_max_instructions`, `lua_call_timeout`) and the transaction's
`Deadline` (`lua_txn_timeout`) are handed to `calls.start` in lib/calls.lua,
whose instruction hook checks both every 10 000 instructions and ends
the call with the limit's message; how waiting for I/O counts against them is
`call_runner.py`'s business.

Memory: `lua_max_memory` holds while script code runs, and is lifted while
Python hands values over (`MemoryBudget`): lupa converts them outside Lua's
error handling, where running out of memory aborts the process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = ["TIMER_SLACK", "UNLIMITED_STRING_MAX", "CallLimits", "Deadline", "MemoryBudget"]

#: Seconds before its time at which a deadline counts as passed. A wait is cut by
#: the event loop's timer, and uvloop's timers have millisecond resolution on a clock
#: read once per loop turn: one may fire up to a millisecond before `time.monotonic()`
#: reaches the deadline. Without the slack, the next handler of a transaction cut
#: that way would still be started (and aborted at once) instead of skipped.
TIMER_SLACK = 0.002


@dataclass(frozen=True, slots=True)
class Deadline:
    """When (`time.monotonic()`) a call must have ended, and which limit says so."""

    at: float
    #: `the call took longer than 20s (lua_call_timeout)`.
    reason: str
    #: The error a call gets when it is passed: `aborted: ` + reason, ready for Lua.
    message: bytes = b""

    @classmethod
    def of(cls, at: float, reason: str) -> Deadline:
        return cls(at, reason, f"aborted: {reason}".encode())

    def passed(self) -> bool:
        return time.monotonic() + TIMER_SLACK >= self.at


@dataclass(frozen=True, slots=True)
class CallLimits:
    #: 0 = unlimited.
    max_instructions: int
    #: Seconds; 0 = unlimited.
    timeout: float
    #: The error a call over `timeout` gets (made once: calls are many).
    message: bytes = b""

    @classmethod
    def of(cls, max_instructions: int, timeout: float) -> CallLimits:
        reason = f"aborted: the call took longer than {timeout:g}s (lua_call_timeout)"
        return cls(max_instructions, timeout, reason.encode())

    def deadline(self, outer: Deadline | None = None) -> tuple[float, bytes]:
        """When a call starting now must end (0 = never), and the error it gets then:
        its own timeout, or `outer` if that comes first."""
        if not self.timeout:
            return (outer.at, outer.message) if outer is not None else (0.0, b"")
        return self.earlier(time.monotonic() + self.timeout, outer)

    def earlier(self, own: float, outer: Deadline | None) -> tuple[float, bytes]:
        """The call's own deadline `own`, or `outer` if that comes first, with its error."""
        if outer is not None and outer.at <= own:
            return outer.at, outer.message
        return own, self.message



#: `string.rep` results above this are refused when the state has no memory limit
#: (LuaJIT): built inside one C call, they would stop everything meanwhile.
UNLIMITED_STRING_MAX = 64 * 1024 * 1024


class MemoryBudget:
    """`lua_max_memory`, enforced only while script code runs.

    lupa converts Python values to Lua (call arguments, results, tables it
    builds) outside any protected call: running out of memory there aborts the
    process ("PANIC: unprotected error in call to Lua API") or hangs it. So the
    limit is lifted whenever Python is in control, and enforced again by
    `calls.start`/`calls.resume` right before the script runs; a host function
    the script calls suspends it for its duration (lib/sandbox.lua). A state
    over its limit after a transfer then fails its next allocation inside the
    script's call: a Lua error in that call ("not enough memory"), never an abort.
    """

    def __init__(self, lua: Any, max_memory: int) -> None:
        self._lua = lua
        #: Including lupa's own base usage (get_max_memory(total=True)); 0 = unlimited.
        self._limit: int = lua.get_max_memory(total=True) if max_memory else 0
        self.strict = bool(self._limit)

    @property
    def limited(self) -> bool:
        return bool(self._limit)

    def enforce(self) -> None:
        if self._limit:
            self._lua.set_max_memory(self._limit, total=True)
            self.strict = True

    def suspend(self) -> bool:
        """Lift the limit; whether it was enforced (the caller restores it then)."""
        was = self.strict
        self.lift()
        return was

    def lift(self) -> None:
        if self.strict:
            self._lua.set_max_memory(0)
            self.strict = False

    def remaining(self) -> int | None:
        """Bytes the script may still allocate; None without a limit."""
        if not self._limit:
            return None
        return max(0, self._limit - int(self._lua.get_memory_used(total=True)))
