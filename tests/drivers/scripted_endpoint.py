"""A real local HTTP endpoint whose answer each test scripts per request.

`tests/http_endpoint.py` answers every request alike. The hardening tests need
an endpoint that treats requests differently — refuses one invitation and
takes the next, stalls past the driver's timeout, streams a body without end,
kills the server that called it — and that counts every arrival, answered or
not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

#: How a test answers one request: it gets the request and its body.
Answer = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


async def accept(request: web.Request, body: bytes) -> web.StreamResponse:
    return web.json_response({"success": True})


@dataclass
class ScriptedEndpoint:
    answer: Answer = accept
    #: Every request's body, in order of arrival (before it is answered).
    arrivals: list[bytes] = field(default_factory=list)
    #: Bodies of requests answered 2xx.
    accepted: list[bytes] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def accepted_with(self, marker: bytes) -> list[bytes]:
        return [body for body in self.accepted if marker in body]

    def arrived_with(self, marker: bytes) -> list[bytes]:
        return [body for body in self.arrivals if marker in body]

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.arrivals.append(body)
        response = await self.answer(request, body)
        if 200 <= response.status < 300:
            self.accepted.append(body)
        return response
