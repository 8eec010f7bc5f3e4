"""Drives one call into a script (a Lua coroutine) to its end, doing its I/O in between.

`calls.start` runs the function until it finishes, fails, or yields an I/O
request; the request is awaited here — the event loop keeps serving
everyone else meanwhile — and the coroutine resumed with the answer.

Time limits. A call inside a transaction has `lua_call_timeout` for running
Lua: the time it waits for I/O does not count (its deadline moves on by each
wait), because a script that POSTs each message from end_txn waits for as
many answers as there are messages; its waits are bounded by the HTTP
timeouts and by the transaction's deadline (`lua_txn_timeout` per event),
which ends the call — Lua code checks it from its instruction hook, a wait is
cut off when it passes. A call outside any transaction (script_init,
script_deinit) has no such outer bound, so there `lua_call_timeout` counts
its waits too.

Nothing but `asyncio.CancelledError` leaves `run_call`: whatever goes wrong is
the call's outcome, so a failing script never makes the dispatcher retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..lua_strings import text
from .limits import CallLimits, Deadline
from .runtime import ScriptRuntime

__all__ = ["CallOutcome", "run_call"]

log = logging.getLogger(__name__)

PerformIO = Callable[[object, tuple[object, ...]], Awaitable[tuple[object, ...]]]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How a call ended. `values` are Lua values as lupa hands them over."""

    values: tuple[Any, ...] = ()
    #: The error message with the Lua traceback; None on success.
    error: str | None = None
    #: Set when a limit aborted the call (the error says which).
    limit: str | None = None
    out_of_memory: bool = False
    #: `mailpush.retry_later()` / `mailpush.dead_letter()`: (kind, reason).
    signal: tuple[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.signal is None

    @property
    def value(self) -> Any:
        return self.values[0] if self.values else None


async def run_call(
    runtime: ScriptRuntime,
    perform: PerformIO,
    function: object,
    args: tuple[object, ...],
    limits: CallLimits,
    outer: Deadline | None = None,
) -> CallOutcome:
    """Call `function` (a Lua function, or a global's name as bytes) with `args`.

    `outer` is the transaction's deadline, if the call belongs to one.
    """
    own = time.monotonic() + limits.timeout if limits.timeout else 0.0
    at, message = limits.deadline(outer)
    try:
        started = _tuple(
            runtime.calls.start(function, limits.max_instructions, at, message, *args)
        )
        call, answer = started[0], started[1:]
        while answer[0] == b"io":
            if outer is None:
                result = await _perform(perform, answer[1], answer[2:], at, message)
            else:
                # Waiting is not running Lua: only the transaction's deadline cuts it,
                # and the call's own limit moves on by the time it took.
                waited = time.monotonic()
                result = await _perform(perform, answer[1], answer[2:], outer.at,
                                        outer.message)
                if own:
                    own += time.monotonic() - waited
                    at, message = limits.earlier(own, outer)
                    call[b"deadline"], call[b"deadline_reason"] = at, message
            result = _fitting(result, answer[1], runtime.memory.remaining())
            answer = _tuple(runtime.calls.resume(call, *result))
    except runtime.memory_error:
        return CallOutcome(error="not enough memory (the state reached lua_max_memory)",
                           out_of_memory=True)
    except runtime.error as exc:
        return CallOutcome(error=str(exc))
    except Exception as exc:
        # A Python exception lupa let through (from a host function): still only this
        # call's failure.
        log.debug("a Lua call raised %s", exc.__class__.__name__, exc_info=True)
        return CallOutcome(error=f"{exc.__class__.__name__}: {exc}")
    finally:
        # The Lua side lifts the memory limit when it returns; not when it failed.
        runtime.memory.lift()
    return _outcome(answer)


def _fitting(result: tuple[object, ...], kind: object, remaining: int | None) -> tuple[object, ...]:
    """`result`, or an error for the script if its strings cannot fit in the state's memory.

    Handed over anyway, they would only make the script's next allocation fail;
    this error names the request and the limit instead.
    """
    if remaining is None or not result or result[0] == b"abort":
        return result
    size = sum(len(value) for value in result if isinstance(value, bytes))
    if size <= remaining:
        return result
    reason = (
        f"not enough memory for the answer to {text(kind)} ({size} bytes; the script has"
        f" {remaining} left of lua_max_memory)"
    )
    return False, reason.encode()


async def _perform(
    perform: PerformIO, kind: object, args: tuple[object, ...], deadline: float, message: bytes
) -> tuple[object, ...]:
    if not deadline:
        return await perform(kind, args)
    remaining = deadline - time.monotonic()
    try:
        if remaining <= 0:
            raise TimeoutError
        async with asyncio.timeout(remaining):
            return await perform(kind, args)
    except TimeoutError:
        return b"abort", message + f" while waiting for {text(kind)}".encode()


_NOTHING = CallOutcome()


def _outcome(answer: tuple[Any, ...]) -> CallOutcome:
    kind = answer[0]
    if kind == b"done":
        if len(answer) == 1 or (len(answer) == 2 and answer[1] is None):
            return _NOTHING
        return CallOutcome(values=answer[1:])
    if kind == b"signal":
        return CallOutcome(signal=(text(answer[1]), text(answer[2] if len(answer) > 2 else b"")))
    message = text(answer[1]) if len(answer) > 1 else "unknown error"
    limit = text(answer[2]) if len(answer) > 2 and answer[2] is not None else None
    memory = bool(answer[3]) if len(answer) > 3 else False
    return CallOutcome(error=message, limit=limit, out_of_memory=memory)


def _tuple(result: Any) -> tuple[Any, ...]:
    return result if isinstance(result, tuple) else (result,)
