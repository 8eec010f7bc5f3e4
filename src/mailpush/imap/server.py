"""The IMAP listener: options, accepting connections, and stopping without losing work.

One `ImapServer` is one listening socket, plain (with optional STARTTLS) or
implicit TLS. Connections run as tasks; at `stop` the listener closes, idle
connections get `* BYE` at once, and those in the middle of a command may
finish it for up to `timeout` seconds.

Two pieces of login state outlive a connection and are shared by every
listener of the process (`MailpushServer` passes the same objects to each):
the per-IP failure penalty (`AuthPenalty`) and the count of logged-in
connections per user and IP (`UserIpConnections`, for Dovecot's
`mail_max_userip_connections`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from ..auth import AuthPenalty
from ..errors import ServiceError
from ..store import MailStore
from .connection import ImapConnection
from .fetch import StructureCache
from .heavy_work import HeavyWork, PoolKind
from .literal_spool import AppendSpool
from .stream import ImapStream

log = logging.getLogger(__name__)

__all__ = ["Authenticator", "ImapOptions", "ImapServer", "UserIpConnections"]

#: `authenticate(login, password)` → the user name, or None when the login fails.
Authenticator = Callable[[str, str], Awaitable[str | None]]


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


class UserIpConnections:
    """How many logged-in IMAP connections each (user, remote IP) has."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}

    def count(self, user: str, remote_ip: str) -> int:
        return self._counts.get((user, remote_ip), 0)

    def add(self, user: str, remote_ip: str) -> None:
        key = (user, remote_ip)
        self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, user: str, remote_ip: str) -> None:
        key = (user, remote_ip)
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)


class ImapServer:
    """The listening IMAP service.

    Without a shared `heavy` (worker pool and per-user bound), the listener
    gets its own and closes it at stop. Without a shared `penalty`, the
    listener gets its own, starting at `auth_failure_delay` (Dovecot's 2 s by
    default) so that a test server with a short failure delay also has a short
    penalty.
    """

    def __init__(
        self,
        store: MailStore,
        authenticate: Authenticator,
        options: ImapOptions,
        *,
        penalty: AuthPenalty | None = None,
        user_ip_connections: UserIpConnections | None = None,
        heavy: HeavyWork | None = None,
    ) -> None:
        self.store = store
        self.authenticate = authenticate
        self.options = options
        self.penalty = penalty or AuthPenalty(initial=options.auth_failure_delay)
        self.user_ip_connections = user_ip_connections or UserIpConnections()
        self.structures = StructureCache()
        # Shared by every listener when given: one pool and one per-user bound for
        # IMAP and IMAPS alike. The one who creates it closes it.
        self._owns_heavy = heavy is None
        self.heavy = heavy or HeavyWork(
            options.max_heavy_commands_per_user, kind=options.heavy_work_pool
        )
        self.append_spool = AppendSpool(options.append_spool_threshold, options.temp_dir)
        self._server: asyncio.Server | None = None
        self._connections: dict[ImapConnection, asyncio.Task[None]] = {}
        self.stopping = False

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: ImapStream(self._accept),
                self.options.address,
                self.options.port,
                ssl=self.options.tls,
                reuse_address=True,
                backlog=1024,
            )
        except OSError as exc:
            raise ServiceError(
                f"imap: cannot listen on {self.options.address}:{self.options.port}: "
                f"{exc.strerror or exc}"
            ) from exc
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self, timeout: float) -> None:
        """Stop accepting; let running commands finish (up to `timeout` s); say BYE to all."""
        if self._server is None:
            return
        self.stopping = True
        self._server.close()
        for connection in list(self._connections):
            connection.shutdown_when_idle()
        tasks = list(self._connections.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("imap: %d connections still busy after %.0fs", len(pending), timeout)
                await asyncio.wait(pending, timeout=1)
        self._server = None
        self.stopping = False
        if self._owns_heavy:
            self.heavy.close()

    def _accept(self, stream: ImapStream) -> None:
        if self.stopping:
            stream.write(b"* BYE Server shutting down.\r\n")
            stream.close()
            return
        connection = ImapConnection(self, stream)
        task = asyncio.get_running_loop().create_task(connection.run())
        self._connections[connection] = task
        task.add_done_callback(lambda _: self._connections.pop(connection, None))
