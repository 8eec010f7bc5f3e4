"""LMTP delivery with push: unchanged whether the driver's endpoint is fast, slow or down.

Runs `mailpush serve` (durable commits) with the webhook driver pointed at a
local endpoint that answers at once, one that sleeps 200 ms per request, and
one whose port is closed, delivers N messages over 8 LMTP connections for
each, and prints one summary line with deliveries/s and median/p99 DATA→250
latency per case, plus a baseline without any driver:

    push_bench n=1000 none_per_s=... fast_per_s=... slow_per_s=... down_per_s=... \
        none_p50_ms=... fast_p50_ms=... slow_p50_ms=... down_p50_ms=... (and p99)

Usage: python bench/push.py [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from aiohttp import web

from lmtp_deliver import percentile, run_load, write_setup
from mailpush_instance import MailpushProcess, free_port


async def endpoint(delay: float) -> tuple[web.AppRunner, int]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if delay:
            await asyncio.sleep(delay)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def one_case(url: str | None, messages: int) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory(prefix="mailpush-push-bench-") as tmp:
        directory = Path(tmp)
        port = free_port()
        extra = f"plugin {{\n  push_notification_driver = webhook:url={url}\n}}\n" if url else ""
        config = write_setup(directory, port, "optimized", extra)
        async with MailpushProcess(config, [port], directory / "serve.log"):
            await run_load(port, 8, 80)  # warm-up
            return await run_load(port, 8, messages)


async def main_async(messages: int) -> str:
    fast_runner, fast_port = await endpoint(0.0)
    slow_runner, slow_port = await endpoint(0.2)
    cases = {
        "none": None,
        "fast": f"http://127.0.0.1:{fast_port}/hook",
        "slow": f"http://127.0.0.1:{slow_port}/hook",
        "down": f"http://127.0.0.1:{free_port()}/hook",
    }
    results = {}
    try:
        for name, url in cases.items():
            results[name] = await one_case(url, messages)
    finally:
        await fast_runner.cleanup()
        await slow_runner.cleanup()
    parts = [f"push_bench n={messages}"]
    parts += [f"{name}_per_s={rate:.0f}" for name, (rate, _) in results.items()]
    parts += [f"{name}_p50_ms={statistics.median(lat) * 1000:.1f}"
              for name, (_, lat) in results.items()]
    parts += [f"{name}_p99_ms={percentile(lat, 0.99) * 1000:.1f}"
              for name, (_, lat) in results.items()]
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    print(asyncio.run(main_async(args.messages)))


if __name__ == "__main__":
    main()
