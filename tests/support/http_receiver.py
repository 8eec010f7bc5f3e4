"""The one real local HTTP server the tests push to: it records requests and answers per script.

Every driver test talks to this receiver over a real loopback socket. By
default it answers every request alike (`status` after `delay`, a refusal
body, optionally a big streamed or chunked answer); a test that needs each
request treated differently — refuse one invitation and take the next, stall
past a timeout, enforce a receiver's contract (tests/drivers/ox_endpoints.py)
— passes an `answer` coroutine instead. Every arrival is recorded before it
is answered (`arrivals`), and every 2xx answer after (`received`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Answer", "HttpReceiver", "ReceivedRequest"]

#: How a test answers one request: it gets the request and its body.
Answer = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]

#: Big pushes are tested: aiohttp's 1 MiB default would refuse them.
_MAX_BODY = 64 * 1024 * 1024


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: Path and query exactly as they arrived on the request line.
    raw_path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers `answer(request, body)`, or else `status` after `delay` seconds."""

    answer: Answer | None = None
    status: int = 200
    delay: float = 0.0
    #: The body of a non-2xx answer.
    refusal_body: str = "refused"
    #: When set, 2xx answers carry this many bytes (streamed; `Content-Length` declared
    #: unless `answer_chunked`), and `answers_cut` counts those the client hung up on.
    answer_size: int = 0
    answer_chunked: bool = False
    answers_cut: int = 0
    #: Bytes of the last such answer handed to the connection.
    answer_written: int = 0
    #: HTTPS with this context; plain HTTP without.
    tls: ssl.SSLContext | None = None
    #: 0: a free port, chosen at `start`; a test may give one nothing listens on yet.
    port: int = 0
    #: Every request, in order of arrival (recorded before it is answered).
    arrivals: list[ReceivedRequest] = field(default_factory=list)
    #: Requests answered 2xx.
    received: list[ReceivedRequest] = field(default_factory=list)
    #: Requests answered otherwise.
    refused: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[bytes]:
        """Bodies of the requests answered 2xx."""
        return [request.body for request in self.received]

    async def start(self) -> None:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.tls)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening; `start` may listen again on the same port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """The 2xx-answered requests, once there are `count` of them."""

        async def enough() -> None:
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.received

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)

    def accepted_with(self, marker: bytes) -> list[bytes]:
        return [body for body in self.accepted if marker in body]

    def arrived_with(self, marker: bytes) -> list[bytes]:
        return [request.body for request in self.arrivals if marker in request.body]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = ReceivedRequest(
            request.method, request.path, dict(request.headers), body, request.raw_path,
            dict(request.query),
        )
        self.arrivals.append(recorded)
        if self.answer is not None:
            response = await self.answer(request, body)
            self._count(recorded, 200 <= response.status < 300)
            return response
        if self.delay:
            await asyncio.sleep(self.delay)
        self._count(recorded, 200 <= self.status < 300)
        if not 200 <= self.status < 300:
            return web.Response(status=self.status, text=self.refusal_body)
        if self.answer_size:
            return await self._stream_answer(request)
        return web.Response(status=self.status, text="ok")

    def _count(self, request: ReceivedRequest, answered_2xx: bool) -> None:
        if answered_2xx:
            self.received.append(request)
            self._arrived.set()
        else:
            self.refused += 1

    async def _stream_answer(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=self.status)
        if self.answer_chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = self.answer_size
        chunk = b"x" * 65536
        self.answer_written = 0
        try:
            await response.prepare(request)
            for start in range(0, self.answer_size, len(chunk)):
                piece = chunk[: self.answer_size - start]
                await response.write(piece)
                self.answer_written += len(piece)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            # RuntimeError: aiohttp's "Cannot write to closing transport".
            self.answers_cut += 1
        return response
