"""Binding a service's listening socket: the one place the IMAP and LMTP listeners bind.

Each service asks here so that they fail alike — a `ServiceError` naming the
service and the address, with the system's reason (`imap: cannot listen on
127.0.0.1:143: Address already in use`), which `mailpush serve` prints before
it exits — and so that a change of how sockets are bound (socket options,
several workers on one port) is made once for every service.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from .errors import ServiceError

__all__ = ["bound_address", "listen"]

#: asyncio's own default backlog, kept for services that do not ask for more.
DEFAULT_BACKLOG = 100


async def listen(
    service: str,
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    address: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    backlog: int = DEFAULT_BACKLOG,
) -> asyncio.Server:
    """A server accepting on `address`:`port` (0: any free port) for `service`.

    `SO_REUSEADDR` is set, so a restart binds at once although connections of
    the previous process are still in TIME_WAIT.
    """
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(
            protocol_factory, address, port, ssl=tls, reuse_address=True, backlog=backlog
        )
    except OSError as exc:
        raise ServiceError(
            f"{service}: cannot listen on {address}:{port}: {exc.strerror or exc}"
        ) from exc


def bound_address(server: asyncio.Server) -> tuple[str, int]:
    """(host, port) the server's first socket is bound to: the real port when 0 was asked."""
    host, port = server.sockets[0].getsockname()[:2]
    return str(host), int(port)
