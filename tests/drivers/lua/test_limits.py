"""The transaction deadline agrees with the event loop's timers (engine/limits.py).

A handler's wait for I/O is cut by the loop's timer at the transaction's
deadline (`call_runner._perform`), and the next handler is skipped if
`Deadline.passed()`. Both must agree on every loop `mailpush serve` runs on:
uvloop's timers have millisecond resolution and may fire before
`time.monotonic()` reaches the deadline.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from mailpush.drivers.lua.engine.limits import Deadline
from mailpush.event_loop import run


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_a_deadline_whose_timer_fired_has_passed(kind: str) -> None:
    async def cut_waits() -> list[float]:
        early = []
        for step in range(200):
            deadline = Deadline.of(time.monotonic() + 0.001 + step % 7 * 0.0003, "test")
            try:
                async with asyncio.timeout(deadline.at - time.monotonic()):
                    await asyncio.sleep(1)
            except TimeoutError:
                if not deadline.passed():
                    early.append(deadline.at - time.monotonic())
        return early

    assert run(cut_waits(), kind) == []


def test_a_deadline_well_ahead_has_not_passed() -> None:
    assert not Deadline.of(time.monotonic() + 0.05, "test").passed()
    assert Deadline.of(time.monotonic() - 0.001, "test").passed()
