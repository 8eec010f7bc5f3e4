"""The command table with every handler counted and timed (`mailpush_imap_commands`...).

Wrapping the handlers once, when a listener is made, keeps the metrics out of
the connection's command loop: the loop runs the table it is given, and a
command added to the table later is timed without anyone remembering to. Only
declared commands are wrapped, so the `command` label takes a bounded set of
values whatever names clients send.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

from ..service_metrics import ImapMetrics
from .command_spec import CommandSpec, CommandTable

__all__ = ["timed_commands"]


def timed_commands(table: CommandTable, metrics: ImapMetrics) -> CommandTable:
    """`table` with each handler counted and its duration observed, by command name."""
    return {name: _timed(spec, metrics) for name, spec in table.items()}


def _timed(spec: CommandSpec, metrics: ImapMetrics) -> CommandSpec:
    handler = spec.handler
    count, duration = metrics.command(spec.name)
    perf_counter = time.perf_counter

    async def timed(*values: object) -> str:
        started = perf_counter()
        try:
            return await handler(*values)
        finally:
            count.inc()
            duration.observe(perf_counter() - started)

    wrapped: Callable[..., Awaitable[str]] = timed
    return dataclasses.replace(spec, handler=wrapped)
