"""A real local HTTP endpoint for driver tests: records requests, can refuse or stall."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: Path and query exactly as they arrived on the request line.
    raw_path: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpEndpoint:
    """Answers `status` (after `delay` seconds) and records every request it answers 2xx."""

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
    received: list[ReceivedRequest] = field(default_factory=list)
    refused: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # big pushes are tested
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        async def enough() -> None:
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.received

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        if not 200 <= self.status < 300:
            self.refused += 1
            return web.Response(status=self.status, text=self.refusal_body)
        self.received.append(
            ReceivedRequest(
                request.method, request.path, dict(request.headers), body, request.raw_path
            )
        )
        self._arrived.set()
        if self.answer_size:
            return await self._stream_answer(request)
        return web.Response(status=self.status, text="ok")

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
