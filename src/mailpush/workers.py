"""Several serving processes: the supervisor `mailpush serve` runs when `mailpush_workers` > 1.

One Python process uses one core; a second worker lets a delivery's parsing,
Sieve and commit run beside another's, and keeps one session's heavy command
from stalling deliveries served by the other worker. The supervisor runs the
start-up checks once, then starts N workers, each `mailpush serve --worker I`:
a whole server (`MailpushServer` with a `WorkerRole`) binding the same LMTP and
IMAP ports with `SO_REUSEPORT`, so the kernel spreads new connections over them
(listener.py). The workers share the data directory as any processes do: each
commit reaches the others through the change feed (IDLE sessions, the
dispatcher), docs/operations.md#the-change-feed.

What must be single stays single (worker_role.py says why): worker 0 dispatches
pushes and serves the metrics endpoint; the supervisor answers `control.sock`
by asking every worker's own socket (worker_control.py). It knows a worker is
up from the worker's own systemd readiness notice (`READY=1`, sent to a socket
in `<data_dir>/workers/` given as `$NOTIFY_SOCKET`), and passes systemd's
`READY=1` on once every worker listens.

A worker that dies is started again with the same index, after a delay that
doubles from `RESTART_FIRST_DELAY` to `RESTART_MAX_DELAY` while it keeps dying
and starts again from the first after it ran `STABLE_AFTER` seconds; each
restart is logged. Nothing acknowledged is lost with it: an LMTP 250 and an
IMAP OK are sent after the commit, and the push transactions a dead worker 0
had claimed are pending again when it starts (`Dispatcher.start`). Connections
it held are cut; clients reconnect to a live worker.

Signals: SIGHUP is passed to every worker, each reloading as a lone server does
(one still starting gets it once it is up, since before it installs its
handler SIGHUP would end it); SIGTERM and SIGINT stop every worker gracefully
(SIGTERM, `mailpush_shutdown_timeout` to finish, then SIGKILL). Workers run in
their own session, so a terminal's Ctrl-C reaches the supervisor only, and
each holds a pipe from the supervisor on its standard input: if the
supervisor dies (SIGKILL), the workers see the pipe close and stop, rather
than keep the ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .config import Settings
from .control_socket import MAX_SOCKET_PATH, control_socket_path
from .errors import ServiceError
from .startup_checks import check_startup
from .store.open_store import migrate_store
from .worker_control import WorkersControlSocket
from .worker_role import WORKERS_DIR, worker_control_path

__all__ = ["Supervisor", "stop_with_supervisor"]

log = logging.getLogger(__name__)

#: Seconds before the first restart of a worker that died.
RESTART_FIRST_DELAY = 0.1
#: The longest delay between restarts of a worker that keeps dying.
RESTART_MAX_DELAY = 10.0
#: A worker that ran this many seconds before it died is restarted after the first delay.
STABLE_AFTER = 30.0
#: Seconds beyond `mailpush_shutdown_timeout` a stopping worker gets before SIGKILL.
STOP_GRACE = 10.0
#: The readiness socket's file name in `<data_dir>/workers/`.
NOTIFY_SOCKET = "notify.sock"

#: The command that starts worker `index` (`mailpush serve -c FILE --worker INDEX`).
WorkerCommand = Callable[[int], Sequence[str]]


@dataclass(slots=True)
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: A SIGHUP came while it was starting: it is sent once the worker is up.
    reload_pending: bool = False
    #: Its process was sent SIGTERM: never twice, since a second one, after the worker
    #: removed its handlers to shut down, would end it before it finished.
    told_to_stop: bool = False


class Supervisor:
    """Starts `settings.workers` workers, keeps them running, and stops them."""

    def __init__(self, settings: Settings, command: WorkerCommand) -> None:
        self.settings = settings
        self._command = command
        self._workers = [_Worker(index) for index in range(settings.workers)]
        self._stopping = asyncio.Event()
        self._started = False
        self._directory = settings.data_dir / WORKERS_DIR

    @property
    def pids(self) -> list[int | None]:
        """Each worker's process id (None while it is being restarted)."""
        return [None if w.process is None else w.process.pid for w in self._workers]

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Run until SIGTERM or SIGINT, then stop every worker; `ready` is set once all listen.

        Raises ConfigError for a configuration the checks refuse, ServiceError for a
        port another process holds or a worker that fails to start.
        """
        settings = self.settings
        check_startup(settings)
        check_ports_free(settings)
        # Create or migrate the store once, before N workers open it at the same moment:
        # on a new SQLite file their first statements would race to convert it.
        await asyncio.to_thread(migrate_store, settings)
        self._directory.mkdir(mode=0o700, exist_ok=True)
        loop = asyncio.get_running_loop()
        notices = await self._listen_for_readiness()
        for sig, action in (
            (signal.SIGHUP, self._forward_reload),
            (signal.SIGTERM, self._stopping.set),
            (signal.SIGINT, self._stopping.set),
        ):
            loop.add_signal_handler(sig, action)
        keepers = [
            asyncio.create_task(self._keep(worker), name=f"worker-{worker.index}")
            for worker in self._workers
        ]
        control: WorkersControlSocket | None = None
        try:
            await self._until_all_ready(keepers)
            if not self._stopping.is_set():
                self._started = True
                control = await self._start_control()
                log.info(
                    "mailpush ready: %d workers (pids %s)",
                    len(self._workers), ", ".join(str(pid) for pid in self.pids),
                )  # fmt: skip
                if ready is not None:
                    ready.set()
                await self._stopping.wait()
            log.info("shutting down %d workers", len(self._workers))
        finally:
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if control is not None:
                await control.stop()
            await self._stop_workers(keepers)
            notices.close()
            with contextlib.suppress(FileNotFoundError):
                (self._directory / NOTIFY_SOCKET).unlink()
        log.info("stopped")

    # --- starting and keeping workers ----------------------------------------------------

    async def _until_all_ready(self, keepers: list[asyncio.Task[None]]) -> None:
        """Wait until every worker sent READY=1; a worker that exits first fails start-up."""
        all_ready = asyncio.create_task(self._all_ready())
        stopped = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait([all_ready, stopped, *keepers], return_when=asyncio.FIRST_COMPLETED)
        finally:
            all_ready.cancel()
            stopped.cancel()
        for keeper in keepers:
            if keeper.done():
                keeper.result()

    async def _all_ready(self) -> None:
        for worker in self._workers:
            await worker.ready.wait()

    async def _keep(self, worker: _Worker) -> None:
        """Run worker `worker.index` until the supervisor stops, restarting it when it dies."""
        delay = RESTART_FIRST_DELAY
        while not self._stopping.is_set():
            try:
                process = await self._spawn(worker)
            except OSError as exc:
                # Out of processes or memory: as if it had died at once.
                what, reason = f"worker {worker.index}", f"could not start ({exc})"
            else:
                if self._stopping.is_set():
                    # SIGTERM came while it was being started: `_stop_workers` could
                    # not see it, so it is told here, or it would run until SIGKILL.
                    self._tell_to_stop(worker)
                code = await process.wait()
                what, reason = f"worker {worker.index} (pid {process.pid})", _exit_reason(code)
            worker.process = None
            worker.ready.clear()
            if self._stopping.is_set():
                return
            if not self._started:
                raise ServiceError(f"{what} {reason} during start-up; its log lines above say why")
            lived = time.monotonic() - worker.started_at
            if lived >= STABLE_AFTER:
                delay = RESTART_FIRST_DELAY
            log.error("%s %s after %.1fs; starting it again in %.1fs", what, reason, lived, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)

    async def _spawn(self, worker: _Worker) -> asyncio.subprocess.Process:
        environment = dict(os.environ, NOTIFY_SOCKET=str(self._directory / NOTIFY_SOCKET))
        worker.started_at = time.monotonic()
        worker.told_to_stop = False
        worker.process = await asyncio.create_subprocess_exec(
            *self._command(worker.index),
            # Never written: its end tells the worker the supervisor is gone.
            stdin=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        return worker.process

    async def _listen_for_readiness(self) -> asyncio.DatagramTransport:
        path = self._directory / NOTIFY_SOCKET
        if len(os.fsencode(str(path))) > MAX_SOCKET_PATH:
            raise ServiceError(
                f"workers: {path}: the path is longer than {MAX_SOCKET_PATH} bytes, the most"
                " a UNIX socket may have; use a shorter mailpush_data_dir"
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ServiceError(f"workers: cannot bind {path}: {exc.strerror or exc}") from exc
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _ReadinessNotices(self._worker_ready), sock=sock
        )
        return transport

    def _worker_ready(self, pid: int) -> None:
        for worker in self._workers:
            if worker.process is None or worker.process.pid != pid:
                continue
            if self._started:
                log.info("worker %d (pid %d) is serving again", worker.index, pid)
            worker.ready.set()
            if worker.reload_pending and not self._stopping.is_set():
                # Not to a stopping worker: with its handlers removed, SIGHUP ends it.
                worker.reload_pending = False
                worker.process.send_signal(signal.SIGHUP)
            return

    async def _start_control(self) -> WorkersControlSocket | None:
        """`control.sock`, asking the workers; without it the workers still run (as a lone
        server without its control socket does), and the log says why."""
        data_dir = self.settings.data_dir
        paths = [worker_control_path(data_dir, w.index) for w in self._workers]
        control = WorkersControlSocket(control_socket_path(data_dir), lambda: paths)
        try:
            await control.start()
        except ServiceError as exc:
            log.warning("%s; `mailpush who|kick|reload` cannot reach this server", exc)
            return None
        log.info("control socket: %s (asks the %d workers)", control.path, len(paths))
        return control

    # --- signals -------------------------------------------------------------------------

    def _forward_reload(self) -> None:
        log.info("SIGHUP: asking the %d workers to reload", len(self._workers))
        for worker in self._workers:
            if worker.process is not None and worker.ready.is_set():
                worker.process.send_signal(signal.SIGHUP)
            else:
                worker.reload_pending = True

    def _tell_to_stop(self, worker: _Worker) -> None:
        """SIGTERM to the worker's process, once; one being started gets it from `_keep`."""
        process = worker.process
        if process is None or process.returncode is not None or worker.told_to_stop:
            return
        worker.told_to_stop = True
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)

    async def _stop_workers(self, keepers: list[asyncio.Task[None]]) -> None:
        self._stopping.set()
        for worker in self._workers:
            self._tell_to_stop(worker)
        grace = self.settings.shutdown_timeout + STOP_GRACE
        _, late = await asyncio.wait(keepers, timeout=grace)
        if late:
            for worker in self._workers:
                if worker.process is not None and worker.process.returncode is None:
                    log.error(
                        "worker %d (pid %d) did not stop within %.0fs; killing it",
                        worker.index, worker.process.pid, grace,
                    )  # fmt: skip
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
            await asyncio.wait(late)
        for keeper in keepers:
            if not keeper.cancelled():
                keeper.exception()  # retrieved: the first one's is raised by `run`


def check_ports_free(settings: Settings) -> None:
    """Refuse to start workers on an LMTP or IMAP port another process listens on.

    Workers bind with `SO_REUSEPORT`, which a port another `SO_REUSEPORT` listener
    of this user holds would not refuse: both would take connections. A probe bound
    without it is refused as a lone server is, with the same message.
    """
    for listener in settings.listeners:
        served = (listener.service == "lmtp" and "lmtp" in settings.protocols) or (
            listener.service in ("imap", "imaps") and "imap" in settings.protocols
        )
        if not served:
            continue
        try:
            addresses = socket.getaddrinfo(
                listener.address or None, listener.port,
                type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE,
            )  # fmt: skip
            for family, kind, protocol, _, address in addresses:
                with socket.socket(family, kind, protocol) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    probe.bind(address)
        except OSError as exc:
            raise ServiceError(
                f"{listener.service}: cannot listen on {listener.address}:{listener.port}:"
                f" {exc.strerror or exc}"
            ) from exc


def stop_with_supervisor() -> None:
    """In a worker: stop (SIGTERM to itself) when the supervisor's pipe on stdin closes.

    The supervisor never writes to it; end of file means it is gone.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(0, False)

    def readable() -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            log.error("the supervisor is gone (its pipe closed); stopping this worker")
            os.kill(os.getpid(), signal.SIGTERM)

    loop.add_reader(0, readable)


class _ReadinessNotices(asyncio.DatagramProtocol):
    """sd_notify datagrams from the workers: `READY=1` with `MAINPID=<the worker's pid>`."""

    def __init__(self, ready: Callable[[int], None]) -> None:
        self._ready = ready

    def datagram_received(self, data: bytes, addr: object) -> None:
        fields: dict[str, str] = {}
        for line in data.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition("=")
            fields[name] = value
        pid = fields.get("MAINPID", "")
        if fields.get("READY") == "1" and pid.isdigit():
            self._ready(int(pid))


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"
