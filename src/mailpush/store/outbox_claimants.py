"""Who holds an outbox claim, for how long, and whether its process is gone.

A claimed delivery carries its dispatcher's name and the end of its lease
(`push_deliveries.claimed_by`, `claimed_until`; see
docs/postgresql.md#dispatch-across-nodes). The dispatcher renews its leases
every third of the lease (`mailpush_push_claim_lease`, by default
`CLAIM_LEASE`) while it works; a claim whose lease ran out belongs to a
dispatcher that died, hung or lost the database, and any other dispatcher
takes it over. That is the only way to learn that a dispatcher on
another node is gone. One on this host can be asked directly: a dispatcher
starting here takes over at once the claims of processes of this host that
no longer run (the server it replaces, killed or crashed), so a restarted
server re-sends them without waiting for the lease.

A name is `<host> <pid> <start time>`: the start time (in clock ticks since
boot, from /proc) tells a process from a later one that reuses its pid.
"""

from __future__ import annotations

import os
import socket
from functools import cache

__all__ = ["CLAIM_LEASE", "gone_at_start", "process_claimant", "this_process"]

#: Seconds a claim is held without renewal (renewed every third of it): the default of
#: `mailpush_push_claim_lease`, and of the outbox calls made without a dispatcher. A
#: dead node's claims are free this long after its last renewal, for another node's
#: next look to take over.
CLAIM_LEASE = 30.0


@cache
def this_process() -> str:
    """This process's claimant name."""
    return process_claimant(os.getpid())


def process_claimant(pid: int) -> str:
    """The claimant name of process `pid` of this host."""
    return f"{socket.gethostname()} {pid} {_start_ticks(pid) or '-'}"


def gone_at_start(claimant: str | None) -> bool:
    """Whether a dispatcher starting in this process may take `claimant`'s claims now.

    True for claims from before leases (no name), for an earlier dispatcher of
    this very process (one runs at a time), and for a process of this host that
    no longer runs; False for a live one and for any of another host, whose
    leases must run out first."""
    if claimant is None:
        return True
    host, _, rest = claimant.partition(" ")
    pid_text, _, ticks = rest.partition(" ")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if claimant == this_process():
        return True
    running = _start_ticks(pid)
    if running is None:
        return not _exists(pid)
    return ticks != running


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot; None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after its end.
    fields = text[text.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _exists(pid: int) -> bool:
    """Without /proc: whether some process has `pid` (it may be a later one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
