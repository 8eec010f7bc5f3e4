"""`/readyz` of several workers: worker 0 asks the others and answers for all.

The kernel spreads connections over every worker (`SO_REUSEPORT`), so a
load balancer or orchestrator asking whether the server takes work must hear
about all of them: a worker that lost its store or hangs still gets its
share of the connections. Worker 0 serves the endpoint (worker_role.py); it
asks every other worker's control socket for its problems
(`{"command": "ready"}`, answered from `MailpushServer.readiness_problems`)
while it checks its own, and names the worker on each problem
(`worker 1: store: no write lock within 2s`).

A worker that does not answer within `WORKER_READY_TIMEOUT` is a problem
itself (`worker 1: not answering (no answer within 3s)`): stopped, wedged,
or being restarted, it is not serving the connections the kernel gives it.
The timeout is above the store check's own (`READY_STORE_TIMEOUT`, 2 s), so
a worker whose store is slow says so rather than being called silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from .control_socket import ask
from .errors import ServiceError
from .worker_role import worker_control_path

__all__ = ["WORKER_READY_TIMEOUT", "workers_readiness"]

#: Seconds a worker gets to answer `ready`, its store check included.
WORKER_READY_TIMEOUT = 3.0


async def workers_readiness(
    own: Callable[[], Awaitable[list[str]]],
    data_dir: Path,
    workers: int,
    timeout: float = WORKER_READY_TIMEOUT,
) -> list[str]:
    """Worker 0's problems (`own`) and every other worker's, each named `worker N: `."""
    answers = await asyncio.gather(
        own(),
        *(
            _worker_problems(worker_control_path(data_dir, index), timeout)
            for index in range(1, workers)
        ),
    )
    return [f"worker {index}: {problem}" for index, problems in enumerate(answers)
            for problem in problems]  # fmt: skip


async def _worker_problems(path: Path, timeout: float) -> list[str]:
    try:
        answer = await asyncio.wait_for(ask(path, {"command": "ready"}, timeout), timeout)
    except TimeoutError:
        return [f"not answering (no answer within {timeout:g}s)"]
    except ServiceError as exc:
        cause = exc.__cause__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else None
        return [f"not answering ({reason or f'no answer within {timeout:g}s'})"]
    problems = answer.get("problems")
    if not answer.get("ok") or not isinstance(problems, list):
        return [f"cannot tell its readiness: {str(answer.get('message', answer))[:200]}"]
    return [str(problem) for problem in problems]
