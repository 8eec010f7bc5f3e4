"""A push endpoint in its own process that answers after a set delay and counts requests.

bench/compare.py points both servers' Lua scripts at it. It runs apart from the
benchmark's load generator so that neither slows the other down, and a server
is known to have finished pushing once the count for its path has caught up:

    POST /<delay_ms>/<name>   answer 200 "ok" after delay_ms milliseconds
                              (the body is read first, so `Expect: 100-continue`
                              is answered as Dovecot 2.3's HTTP client expects)
    GET  /count/<name>        how many POSTs /<any delay>/<name> has answered

Run on its own (`python bench/http_sink.py`), it prints `port=N` once listening
and serves until killed; `HttpSink` does that for the benchmark.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType

from aiohttp import web

__all__ = ["HttpSink"]


class HttpSink:
    """The sink process: `url(delay_ms, name)` for scripts, `count(name)` to poll."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> HttpSink:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().decode()
        if not line.startswith("port="):
            self.__exit__(None, None, None)
            raise RuntimeError(f"bench/http_sink.py did not start (said {line!r})")
        self.port = int(line.removeprefix("port="))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()

    def url(self, delay_ms: int, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{delay_ms}/{name}"

    def count(self, name: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count/{name}") as reply:
            return int(json.load(reply))


async def _serve() -> None:
    counts: collections.Counter[str] = collections.Counter()

    async def push(request: web.Request) -> web.Response:
        await request.read()
        delay_ms = int(request.match_info["delay_ms"])
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        counts[request.match_info["name"]] += 1
        return web.Response(text="ok")

    async def count(request: web.Request) -> web.Response:
        return web.json_response(counts[request.match_info["name"]])

    app = web.Application()
    app.router.add_post("/{delay_ms:\\d+}/{name}", push)
    app.router.add_get("/count/{name}", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(f"port={sock.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())
