"""The settings of one IMAP listener, read by the server and by each of its connections."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Literal

from .heavy_work import PoolKind

__all__ = ["ImapOptions"]


@dataclass(frozen=True)
class ImapOptions:
    address: str = "127.0.0.1"
    port: int = 143
    #: Implicit TLS on this listener (IMAPS) when set.
    tls: ssl.SSLContext | None = None
    #: Offer STARTTLS on a plain listener when set.
    starttls: ssl.SSLContext | None = None
    #: Dovecot's disable_plaintext_auth: where LOGIN/AUTHENTICATE PLAIN work without TLS.
    allow_plaintext_auth: Literal["always", "loopback", "never"] = "loopback"
    #: Longest command (literals of commands other than APPEND count towards it);
    #: longer lines get BAD and are skipped, a longer literal ends the connection.
    max_line_length: int = 65536
    #: APPENDLIMIT: the largest literal (message) accepted.
    max_literal_size: int = 50 * 1024 * 1024
    #: Seconds of client silence (IDLE included) before the connection is closed.
    idle_timeout: float = 1800.0
    hostname: str = field(default_factory=socket.gethostname)
    #: Seconds a failed login waits before its NO, slowing password guessing.
    auth_failure_delay: float = 2.0
    #: Failed logins after which the connection is closed.
    max_auth_failures: int = 3
    #: Dovecot's mail_max_userip_connections: logged-in connections one user may have
    #: from one IP; a login beyond it is refused. 0: no limit.
    mail_max_userip_connections: int = 10
    #: Heavy commands (SEARCH over headers/bodies, FETCH that parses) one user runs at
    #: once; more wait. They run in a pool of worker processes (or threads).
    max_heavy_commands_per_user: int = 4
    heavy_work_pool: PoolKind = "process"
    #: APPEND literals larger than this are spooled to a file in `temp_dir`, not held.
    append_spool_threshold: int = 1024 * 1024
    #: Dovecot's mail_temp_dir; None is the system's temporary directory.
    temp_dir: str | None = None
    #: Mailboxes created at a user's first login, with their SPECIAL-USE flag.
    default_mailboxes: tuple[tuple[str, str | None], ...] = (
        ("INBOX", None),
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
    )
