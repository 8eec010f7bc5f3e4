"""The supervisor's stop reaches every worker it started, one being restarted too.

A worker that died is started again (docs/operations.md#workers); a SIGTERM
that comes while that start is under way must still reach the new process,
at once, rather than leave it running until the stop's grace runs out and
SIGKILL ends it. The supervisor here runs in this process and starts real
processes: a small worker that sends systemd's READY=1 and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailpush.config import load_settings
from mailpush.workers import Supervisor

from .conftest import write_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")

#: A worker: says it is ready as `mailpush serve --worker` does, and exits 0 on SIGTERM.
WORKER = """
import os, signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
    notify.sendto(f"READY=1\\nMAINPID={os.getpid()}".encode(), os.environ["NOTIFY_SOCKET"])
while True:
    signal.pause()
"""
#: Far below the stop's grace (`mailpush_shutdown_timeout` + STOP_GRACE, 11s here).
PROMPT_STOP = 5.0


class SlowRestart:
    """`asyncio.create_subprocess_exec` whose second call (the restart) returns only when
    the test says so: the process runs, the supervisor does not know it yet."""

    def __init__(self) -> None:
        self.started: list[asyncio.subprocess.Process] = []
        self.restarting = asyncio.Event()
        self.finish_restart = asyncio.Event()
        self._create = asyncio.create_subprocess_exec

    async def __call__(self, *argv: Any, **options: Any) -> asyncio.subprocess.Process:
        process = await self._create(*argv, **options)
        self.started.append(process)
        if len(self.started) == 2:
            self.restarting.set()
            await self.finish_restart.wait()
        return process


@pytest.fixture
async def slow_restart(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SlowRestart]:
    spawner = SlowRestart()
    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawner)
    yield spawner
    spawner.finish_restart.set()
    for process in spawner.started:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def test_a_sigterm_while_a_worker_is_being_restarted_stops_the_new_worker_at_once(
    tmp_path: Path, slow_restart: SlowRestart, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, "mailpush_workers = 1\nmailpush_shutdown_timeout = 1s\n")
    supervisor = Supervisor(
        load_settings(config).settings, lambda index: [sys.executable, "-c", WORKER]
    )
    caplog.set_level(logging.INFO, logger="mailpush.workers")
    ready = asyncio.Event()
    running = asyncio.create_task(supervisor.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        (first,) = supervisor.pids
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await asyncio.wait_for(slow_restart.restarting.wait(), 10)
        assert supervisor.pids == [None]  # started, not yet known to the supervisor

        assert not running.done()  # its SIGTERM handler is installed
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(10):
            while "shutting down 1 workers" not in caplog.text:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the stop has signalled every worker it can see
        slow_restart.finish_restart.set()
        stopping = time.monotonic()
        finished, _ = await asyncio.wait([running], timeout=PROMPT_STOP)
        assert finished, (
            f"the supervisor did not stop within {PROMPT_STOP}s: the restarted worker"
            " was never sent SIGTERM"
        )
        running.result()
    finally:
        slow_restart.finish_restart.set()
        if not running.done():
            for process in slow_restart.started:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running, 30)

    assert time.monotonic() - stopping < PROMPT_STOP
    restarted = slow_restart.started[1]
    assert restarted.returncode in (0, -signal.SIGTERM)  # SIGTERM, not SIGKILL
    assert "did not stop" not in caplog.text
