"""Which connection a log line belongs to: Dovecot's per-process log prefix, per task.

Dovecot runs a process per login and per user session and sets that
process's log prefix (`imap-login: `, `imap(alice)<pid><session>: `); tools
read the prefix to tell the services and sessions apart. mailpush serves
every connection from one process, so the prefix lives in a context
variable instead: a connection's task sets it, and every line logged while
serving that connection (by the store, Sieve, the push framework) carries
it. asyncio copies the context into each task it creates, so a task started
for the connection inherits its prefix and one connection's change never
leaks into another's.
"""

from __future__ import annotations

import base64
import os
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["LogSession", "current_session", "enter_session", "new_session_id"]


@dataclass(frozen=True, slots=True)
class LogSession:
    """What the lines of one connection (or one delivery) carry."""

    #: Dovecot's prefix without the `: `: `imap-login`, `lmtp(alice)<pid><session>`.
    prefix: str
    session_id: str = ""
    #: The client's address, for `%{rip}` in `deliver_log_format`.
    rip: str = ""
    lip: str = ""

    @classmethod
    def for_user(cls, service: str, user: str, session_id: str, rip: str = "",
                 lip: str = "") -> LogSession:
        """Dovecot's `mail_log_prefix` default, `%s(%u)<%{pid}><%{session}>`."""
        prefix = f"{service}({user})<{os.getpid()}><{session_id}>"
        return cls(prefix, session_id, rip, lip)


_CURRENT: ContextVar[LogSession | None] = ContextVar("mailpush_log_session", default=None)


def current_session() -> LogSession | None:
    return _CURRENT.get()


def enter_session(session: LogSession | None) -> None:
    """From now on, lines logged by this task (and tasks it starts) belong to `session`."""
    _CURRENT.set(session)


def new_session_id(size: int = 12) -> str:
    """A session id of Dovecot's shape, unique enough to grep for: 12 random bytes in
    base64 (16 characters) as imap-login's, 16 (22 characters) as lmtp's."""
    return base64.b64encode(os.urandom(size)).decode("ascii").rstrip("=")
