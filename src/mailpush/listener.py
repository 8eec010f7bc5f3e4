"""Binding a service's listening socket: the one place the IMAP and LMTP listeners bind.

Each service asks here so that they fail alike — a `ServiceError` naming the
service and the address, with the system's reason (`imap: cannot listen on
127.0.0.1:143: Address already in use`), which `mailpush serve` prints before
it exits — and so that a change of how sockets are bound (socket options,
several workers on one port) is made once for every service.

Worker processes (`mailpush_workers`, docs/operations.md#workers) each bind
the same ports with `SO_REUSEPORT`, and the kernel spreads new connections
over them. The IMAP and LMTP servers do not pass that down: a worker starts
its services inside `sharing_ports()`, a context variable `listen` reads, so
nothing else changes shape and a lone server (or a test) binds as before,
refused when the port is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from .errors import ServiceError

__all__ = ["bound_address", "listen", "sharing_ports"]

#: asyncio's own default backlog, kept for services that do not ask for more.
DEFAULT_BACKLOG = 100

#: Whether `listen` binds with SO_REUSEPORT (set by `sharing_ports`, in worker processes).
_SHARING_PORTS: ContextVar[bool] = ContextVar("sharing_ports", default=False)


@contextlib.contextmanager
def sharing_ports() -> Iterator[None]:
    """Within: `listen` binds with `SO_REUSEPORT`, so the other workers can bind the same
    address and port and the kernel balances connections over them."""
    token = _SHARING_PORTS.set(True)
    try:
        yield
    finally:
        _SHARING_PORTS.reset(token)


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
    the previous process are still in TIME_WAIT. Inside `sharing_ports()`,
    `SO_REUSEPORT` is set too: the port may be bound by every worker.
    """
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(
            protocol_factory,
            address,
            port,
            ssl=tls,
            reuse_address=True,
            backlog=backlog,
            reuse_port=_SHARING_PORTS.get() or None,
        )
    except OSError as exc:
        raise ServiceError(
            f"{service}: cannot listen on {address}:{port}: {exc.strerror or exc}"
        ) from exc


def bound_address(server: asyncio.Server) -> tuple[str, int]:
    """(host, port) the server's first socket is bound to: the real port when 0 was asked."""
    host, port = server.sockets[0].getsockname()[:2]
    return str(host), int(port)
