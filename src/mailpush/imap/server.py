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

The server gives each connection the command table (`commands.COMMANDS`):
it is the one module that knows both the connection and the commands.
"""

from __future__ import annotations

import asyncio
import logging

from ..auth import AuthPenalty
from ..listener import bound_address, listen
from ..service_metrics import ImapMetrics
from ..store import MailStore
from .command_spec import CommandTable
from .commands import COMMANDS
from .connection import Authenticator, ImapConnection
from .fetch import StructureCache
from .heavy_work import HeavyWork
from .literal_spool import AppendSpool
from .options import ImapOptions
from .sort_memory import FactsCache
from .stream import ImapStream
from .timed_commands import timed_commands
from .user_ip_connections import UserIpConnections

log = logging.getLogger(__name__)

__all__ = ["ImapServer"]


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
        metrics: ImapMetrics | None = None,
    ) -> None:
        self.store = store
        self.authenticate = authenticate
        self.options = options
        self.metrics = metrics or ImapMetrics()
        self.commands: CommandTable = timed_commands(COMMANDS, self.metrics)
        self.penalty = penalty or AuthPenalty(initial=options.auth_failure_delay)
        self.user_ip_connections = user_ip_connections or UserIpConnections()
        self.structures = StructureCache()
        self.sort_facts = FactsCache()
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
    def connections(self) -> list[ImapConnection]:
        """The open connections (`mailpush who`, `mailpush kick`)."""
        return list(self._connections)

    def reconfigure(self, options: ImapOptions, authenticate: Authenticator) -> None:
        """A reload: new connections get `options` (TLS certificate included) and every
        login from now on checks `authenticate`. The address, the heavy-command pool
        and the login penalty stay; open connections keep the options they started with."""
        self.options = options
        self.authenticate = authenticate
        self.append_spool = AppendSpool(options.append_spool_threshold, options.temp_dir)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> tuple[str, int]:
        self._server = await listen(
            "imap",
            lambda: ImapStream(self._accept),
            self.options.address,
            self.options.port,
            tls=self.options.tls,
            backlog=1024,
        )
        return bound_address(self._server)

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
                log.warning("%d connections still busy after %.0fs", len(pending), timeout)
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
        self.metrics.connections.inc()
        self.metrics.connections_current.inc()
        task.add_done_callback(lambda _: self._forget(connection))

    def _forget(self, connection: ImapConnection) -> None:
        if self._connections.pop(connection, None) is not None:
            self.metrics.connections_current.dec()
