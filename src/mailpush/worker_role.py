"""What one of several worker processes is (`mailpush_workers`, docs/operations.md#workers).

Every worker serves LMTP and IMAP on the shared ports and records push
transactions in the outbox with its commits. What must run once per data
directory runs in worker 0 only: the push dispatcher, woken by the change
feed when another worker commits (its claims are leases, so a restarted
worker 0 takes over those its predecessor held; the push metrics and the
queue depth stay whole in one process); and the metrics endpoint, one port.
Each worker answers its own control socket, which the supervisor's
`control.sock` asks in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["WORKERS_DIR", "WorkerRole", "worker_control_path"]

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


def worker_control_path(data_dir: Path, index: int) -> Path:
    """Worker `index`'s control socket: `<data_dir>/workers/<index>.sock`."""
    return data_dir / WORKERS_DIR / f"{index}.sock"
