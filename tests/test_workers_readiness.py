"""`/readyz` with `mailpush_workers` > 1: worker 0 answers for every worker
(docs/operations.md#workers, `mailpush.worker_readiness`).

First `workers_readiness` against real control sockets in this process: each
worker's problems named after it, a worker that cannot be reached or does
not answer being a problem itself. Then the real `mailpush serve` with two
workers: ready while both serve, 503 naming worker 1 while it is stopped
(SIGSTOP), ready again once it runs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailpush.control_socket import ConnectedSession, ControlSocket, ReloadOutcome
from mailpush.server import READY_STORE_TIMEOUT
from mailpush.store.open_store import SQLITE_STORE_FILE
from mailpush.worker_readiness import WORKER_READY_TIMEOUT, workers_readiness
from mailpush.worker_role import WORKERS_DIR, worker_control_path

from .conftest import free_port
from .test_workers import Served, served, start

__all__ = ["served"]  # the fixture, for pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")


class WorkerAnswering:
    """A worker's control socket as far as `ready` goes: it reports `problems`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def sessions(self) -> list[ConnectedSession]:
        return []

    def kick(self, user: str) -> int:
        return 0

    async def reload(self) -> ReloadOutcome:
        return ReloadOutcome(True, "nothing changed")

    def metrics_text(self) -> str:
        return ""

    async def readiness_problems(self) -> list[str]:
        return self.problems


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory with a short path (a UNIX socket path holds 107 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="ready-"))
    (directory / WORKERS_DIR).mkdir()
    yield directory
    shutil.rmtree(directory)


async def no_problems() -> list[str]:
    return []


# --- workers_readiness ------------------------------------------------------------------


async def test_every_workers_problems_are_listed_each_named_after_its_worker(
    data_dir: Path,
) -> None:
    worker_1 = WorkerAnswering(["store: no write lock within 2s", "listeners: 1 of 2 bound"])
    socket_1 = ControlSocket(worker_control_path(data_dir, 1), worker_1)
    await socket_1.start()
    try:

        async def worker_0_problems() -> list[str]:
            return ["push: the dispatcher is not running"]

        assert await workers_readiness(worker_0_problems, data_dir, 2) == [
            "worker 0: push: the dispatcher is not running",
            "worker 1: store: no write lock within 2s",
            "worker 1: listeners: 1 of 2 bound",
        ]
        worker_1.problems = []
        assert await workers_readiness(no_problems, data_dir, 2) == []
    finally:
        await socket_1.stop()


async def test_a_worker_without_its_control_socket_is_not_answering(data_dir: Path) -> None:
    assert await workers_readiness(no_problems, data_dir, 2) == [
        "worker 1: not answering (No such file or directory)"
    ]


async def test_a_worker_that_never_answers_is_not_answering_after_the_timeout(
    data_dir: Path,
) -> None:
    """A stopped process's socket still accepts (the kernel queues the connection)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(worker_control_path(data_dir, 1)))
        silent.listen()
        loop = asyncio.get_running_loop()
        started = loop.time()
        problems = await workers_readiness(no_problems, data_dir, 2, timeout=0.3)
        took = loop.time() - started
    assert problems == ["worker 1: not answering (no answer within 0.3s)"]
    assert 0.3 <= took < 2


def test_a_worker_gets_longer_than_its_own_store_check_to_answer() -> None:
    """So a worker whose store is slow says so instead of being called silent."""
    assert WORKER_READY_TIMEOUT > READY_STORE_TIMEOUT


# --- the real server --------------------------------------------------------------------


async def serve_with_metrics(tmp_path: Path, served: list[Served]) -> tuple[Served, int]:
    port = free_port()
    server = await start(tmp_path, served, f"mailpush_metrics_listen = 127.0.0.1:{port}\n")
    return server, port


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


async def test_readyz_is_503_naming_worker_1_while_it_is_stopped_and_200_once_it_runs(
    tmp_path: Path, served: list[Served]
) -> None:
    server, port = await serve_with_metrics(tmp_path, served)
    assert await asyncio.to_thread(readyz, port) == (200, "ready\n")

    worker_1 = server.workers()[1]
    os.kill(worker_1, signal.SIGSTOP)
    try:
        status, text = await asyncio.to_thread(readyz, port)
    finally:
        os.kill(worker_1, signal.SIGCONT)
    assert (status, text) == (
        503,
        f"worker 1: not answering (no answer within {WORKER_READY_TIMEOUT:g}s)\n",
    )

    assert await asyncio.to_thread(readyz, port) == (200, "ready\n")


async def test_readyz_names_each_worker_whose_store_takes_no_write(
    tmp_path: Path, served: list[Served]
) -> None:
    """Worker 1's own check travels over its control socket, its name put before it."""
    server, port = await serve_with_metrics(tmp_path, served)
    holder = sqlite3.connect(tmp_path / "data" / SQLITE_STORE_FILE, timeout=10)
    try:
        holder.execute("BEGIN IMMEDIATE")
        status, text = await asyncio.to_thread(readyz, port)
    finally:
        holder.rollback()
        holder.close()
    assert status == 503
    assert text == (
        "worker 0: store: no write lock within 2s\nworker 1: store: no write lock within 2s\n"
    )
    assert await asyncio.to_thread(readyz, port) == (200, "ready\n")
