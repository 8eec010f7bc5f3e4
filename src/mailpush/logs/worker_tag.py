"""Which worker wrote a line, when `mailpush_workers` > 1 (docs/operations.md#workers).

Several worker processes log to the same file (or syslog), and a line from
`imap-login` does not say which of them accepted the connection. So each
worker names itself once at start, and every line it writes carries the
tag `worker<N>`: before the line's prefix in a file
(`Dec 05 08:00:00 worker1: imap-login: Info: Login: ...`), and in the
syslog ident (`dovecot(worker1): imap-login: Login: ...`).

Both places are the ones fail2ban's stock `dovecot` filter leaves free (its
`__prefix_line` in /etc/fail2ban/filter.d/common.conf): a file line may hold
one word before `imap-login: ` (where a syslog file has the host name), and
a syslog ident may be `dovecot(...)`. A tag with a space (`worker 1`), a
`dovecot[worker1]` ident or a `worker=1` field after the message would each
hide the worker's failed logins from it (tests/test_logging_fail2ban.py).
A lone server and the supervisor never name a worker: their lines stay as
they were.
"""

from __future__ import annotations

__all__ = ["name_worker_in_log", "worker_tag"]

#: This process's tag; "" in a lone server and in the supervisor.
_TAG = ""


def name_worker_in_log(index: int) -> None:
    """From now on, every line this process writes says it is worker `index`."""
    global _TAG
    _TAG = f"worker{index}"


def worker_tag() -> str:
    """`worker<N>` in worker N of several; "" otherwise."""
    return _TAG
