"""What one of several worker processes is (`mailpush_workers`, docs/operations.md#workers).

Every worker serves LMTP and IMAP on the shared ports and records push
transactions in the outbox with its commits. What must run once per data
directory runs in worker 0 only: the push dispatcher, woken by the change
feed when another worker commits (its claims are leases, so a restarted
worker 0 takes over those its predecessor held; the push metrics and the
queue depth stay whole in one process); and the metrics endpoint, one port.
Each worker answers its own control socket, which the supervisor's
`control.sock` asks in turn.

With push drivers, worker 0 accepts no LMTP connections unless told to
(`mailpush_dispatcher_lmtp`). The kernel spreads connections over the
listening workers blindly (SO_REUSEPORT hashes addresses, not load): with 2
workers, 8 LMTP connections and the Lua recording script, worker 0 often got
5–7 of the 8 and ran at 80–95 % CPU with the dispatcher's work on top.
Placing the connections by hand showed how little placement matters and
which way: none of the 8 on worker 0 gave about 1,000 deliveries/s, one
about 5 % more, four about 10 % less. The rate is bound by the commit
path's latency (the one SQLite write lock, each delivering process's GIL),
not by an idle core; keeping worker 0 out of LMTP gives up those 5 % to
never draw the bad placements (docs/operations.md#workers). IMAP stays on every worker:
its sessions are long and light, and a heavy command runs in the worker's
process pool anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config.settings import DispatcherLmtp

__all__ = ["WORKERS_DIR", "WorkerRole", "accepts_lmtp", "worker_control_path"]

#: The directory in `mailpush_data_dir` holding the workers' control sockets.
WORKERS_DIR = "workers"


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """Worker `index` (from 0) of a supervised set; its control socket is `control_path`."""

    index: int
    control_path: Path

    @property
    def dispatches(self) -> bool:
        """Whether this worker runs the push dispatcher (worker 0 only)."""
        return self.index == 0

    @property
    def serves_metrics(self) -> bool:
        """Whether this worker serves `mailpush_metrics_listen` (worker 0 only)."""
        return self.index == 0


def accepts_lmtp(role: WorkerRole | None, mode: DispatcherLmtp, pushing: bool) -> bool:
    """Whether this process takes LMTP connections (module docstring).

    `mode` is `mailpush_dispatcher_lmtp`; `pushing`: push drivers are configured.
    A lone server (no role) and every worker but the dispatching one always do."""
    if role is None or not role.dispatches or mode == "yes":
        return True
    return mode == "auto" and not pushing


def worker_control_path(data_dir: Path, index: int) -> Path:
    """Worker `index`'s control socket: `<data_dir>/workers/<index>.sock`."""
    return data_dir / WORKERS_DIR / f"{index}.sock"
