"""Which event loop `mailpush serve` runs on (`mailpush_event_loop`).

uvloop (libuv under asyncio's interface) is the default because the server's
hot paths are many small socket reads and writes, callbacks and timers: with
it an LMTP delivery with a Lua push script cost about a tenth less CPU and the
8-connection rows of `bench/compare.py` gained 10–15 %. Nothing in mailpush
depends on it: every part is written against asyncio's interface, and
`mailpush_event_loop = asyncio` gives Python's own loop back, for a platform
where uvloop is missing or misbehaves. Short-lived commands (`mailpush
deliver`, the admin tools) keep asyncio's loop; they do not live long enough
for it to matter.

The serving process also switches threads more often than Python's default
(`SWITCH_INTERVAL`). Its store writer is a thread beside the loop: every
SQLite call lets go of the GIL, and getting it back meant waiting for the
loop to block or for the 5 ms default interval, all the while holding the
writers' lock every process waits for. Measured with 2 workers, 8 LMTP
connections and the Lua recording script (eight rounds each, in alternating
runs), a 0.5 ms interval delivered about 7 % more than 5 ms; 0.2 ms was no
better than 0.5 ms within the noise.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .config.settings import EventLoopKind
from .errors import ConfigError

__all__ = ["SWITCH_INTERVAL", "loop_factory", "run", "running_loop_name"]

T = TypeVar("T")

#: Seconds a thread may hold the GIL while another waits for it (Python's default: 0.005).
SWITCH_INTERVAL = 0.0005


def loop_factory(kind: EventLoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a loop of `kind`; ConfigError naming the setting when uvloop is missing."""
    if kind == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        raise ConfigError(
            f"mailpush_event_loop = uvloop, but uvloop cannot be imported ({exc}): install"
            " it (pip install uvloop) or set mailpush_event_loop = asyncio"
        ) from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], kind: EventLoopKind) -> T:
    """`asyncio.run(main)` on a loop of `kind`, threads switching every `SWITCH_INTERVAL`."""
    try:
        factory = loop_factory(kind)
    except ConfigError:
        main.close()
        raise
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    finally:
        sys.setswitchinterval(before)


def running_loop_name() -> str:
    """`uvloop` or `asyncio`: what the running loop is, for the start-up log line."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
