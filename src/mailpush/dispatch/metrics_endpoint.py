"""The Prometheus scrape endpoint: `/metrics` over HTTP on `mailpush_metrics_listen`,
with `/healthz` and `/readyz` for orchestrators and load balancers.

It runs on the server's own event loop with aiohttp (already a dependency
for the HTTP drivers) rather than prometheus-client's thread-based server, so
stopping is ordered with the rest of the services and nothing listens after
`stop()`. For the same reason `/healthz` means what it says: an answer comes
only from a process whose event loop runs. `/readyz` asks the server what
keeps it from taking work (listeners, store, dispatcher) and answers 503
with the list, one problem a line, when anything does; with several workers
worker 0 serves it and `readiness` asks them all (`worker_readiness`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..errors import ServiceError

__all__ = ["MetricsEndpoint", "Readiness"]

#: What keeps the server from taking work, one phrase each; empty when ready.
Readiness = Callable[[], Awaitable[list[str]]]


class MetricsEndpoint:
    def __init__(
        self,
        registry: CollectorRegistry,
        address: str,
        port: int,
        refresh: Callable[[], Awaitable[None]] | None = None,
        readiness: Readiness | None = None,
        exposition: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self._registry = registry
        #: What a scrape answers instead of `registry` alone: several workers' metrics.
        self._exposition = exposition
        self._readiness = readiness
        #: Updates gauges that are read from the store (queue depth) just before a scrape.
        self._refresh = refresh
        self._address = address
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> tuple[str, int]:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._address, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ServiceError(
                f"mailpush_metrics_listen: cannot listen on {self._address}:{self._port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._runner = runner
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._refresh is not None:
            await self._refresh()
        if self._exposition is not None:
            body = await self._exposition()
        else:
            body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = [] if self._readiness is None else await self._readiness()
        if problems:
            return web.Response(status=503, text="".join(f"{p}\n" for p in problems))
        return web.Response(text="ready\n")
