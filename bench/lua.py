"""The Lua push driver: events/s through a recording script, deliveries/s with Dovecot's
example HTTP-POST script against a fast (0 ms) and a slow (200 ms) endpoint.

1. In process, pinned to one CPU core, the driver alone (no mail I/O): synthetic
   push transactions of the shapes real traffic has (a delivery; a STORE \\Seen,
   which is FlagsClear + FlagsSet + MessageRead; an EXPUNGE; a CREATE) for 100
   users go through `bench/lua/record.lua`-like recording in memory, exactly as
   the dispatcher calls a driver (begin_txn, each event, end_txn). Also reports
   what opening one user's Lua state costs (script loaded, script_init run).
2. `mailpush serve` (own process, durable commits) with the simple example
   script of Dovecot's Lua push documentation, unchanged
   (docs/dovecot-reference.md#http-requests-of-the-example-scripts), and
   `push_lua_url` pointing at a local endpoint; N deliveries over 8 LMTP
   connections spread over many users; the clock stops when the endpoint has
   received every POST. Run once with an endpoint that answers at once and
   once with one that sleeps 200 ms per request. As in that documentation's
   configuration, every user's `push_lua_url` is the same URL (one host);
   `--hosts N` spreads users over 127.0.0.1 … 127.0.0.N instead.

Prints one line:

    lua_bench events_per_s=... state_open_ms=... n=... users=... \
        fast_lmtp_per_s=... fast_per_s=... slow_lmtp_per_s=... slow_per_s=... slow_vs_fast=...

`*_per_s` counts a delivery when its POST has arrived; `*_lmtp_per_s` when LMTP
answered 250 (push never holds up delivery). Targets: events_per_s ≥ 20000,
slow_vs_fast ≥ 0.8.

Usage: python bench/lua.py [--messages N] [--users N] [--hosts N] [--transactions N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from lmtp_deliver import MESSAGE, read_reply
from mailpush_instance import MailpushProcess, free_port

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))

from mailpush.cli.lua_tryout import MemoryStoreView, TryoutServices  # noqa: E402
from mailpush.drivers import DriverConfig  # noqa: E402
from mailpush.drivers.lua import LuaDriver  # noqa: E402
from mailpush.events import MessageData, PushEvent, PushTransaction  # noqa: E402

# The simple example script of Dovecot's Lua push documentation, verbatim (the copy the
# tests check).
SEED_SCRIPT = BENCH.parent / "tests" / "drivers" / "lua" / "fixtures" / "simple_http.lua"

#: Every handler defined; each event becomes one line kept in memory.
RECORDING_SCRIPT = """
local lines = {}
local function record(ctx, event)
  ctx.count = ctx.count + 1
  lines[#lines + 1] = event.name .. " " .. ctx.user .. " " .. event.mailbox .. " "
    .. tostring(event.uid or "-")
  if #lines >= 1000 then lines = {} end
end
function script_init() end
function dovecot_lua_notify_begin_txn(user) return {user = user.username, count = 0} end
function dovecot_lua_notify_end_txn(ctx, success) end
for _, name in ipairs({"message_new", "message_append", "message_read", "message_trash",
  "message_expunge", "flags_set", "flags_clear", "mailbox_create", "mailbox_delete",
  "mailbox_rename", "mailbox_subscribe", "mailbox_unsubscribe"}) do
  _G["dovecot_lua_notify_event_" .. name] = record
end
"""

DATA = MessageData(
    from_="Bench Sender <bench@example.net>", to="alice@example.org",
    from_address="bench@example.net", from_display_name="Bench Sender",
    to_address="alice@example.org", to_display_name="", subject="benchmark message",
    subject_raw="benchmark message", date=1672646400, tz=120,
    message_id="<bench@example.net>", snippet="Body line of a benchmark message", size=2700,
    has_calendar=False,
)


def shapes(uid: int) -> list[tuple[PushEvent, ...]]:
    common = {"uid": uid, "uid_validity": 1795395289}
    return [
        (PushEvent("MessageNew", "INBOX", message=DATA, **common),),  # type: ignore[arg-type]
        (
            PushEvent("FlagsClear", "INBOX", flags_old=("\\Recent",), **common),  # type: ignore[arg-type]
            PushEvent("FlagsSet", "INBOX", flags=("\\Seen",), **common),  # type: ignore[arg-type]
            PushEvent("MessageRead", "INBOX", **common),  # type: ignore[arg-type]
        ),
        (PushEvent("MessageExpunge", "INBOX", **common),),  # type: ignore[arg-type]
        (PushEvent("MailboxCreate", f"Folder{uid}"),),
    ]


async def events_per_second(transactions: int, users: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="mailpush-lua-bench-") as tmp:
        script = Path(tmp) / "record.lua"
        script.write_text(RECORDING_SCRIPT)
        services = TryoutServices(MemoryStoreView())
        driver = LuaDriver(DriverConfig("lua", "lua", {"file": str(script)}), services)
        names = [f"user{n}" for n in range(users)]
        started = time.perf_counter()
        for name in names:
            await driver.state_for(name)
        open_ms = (time.perf_counter() - started) / users * 1000
        txns = []
        for n in range(transactions):
            events = shapes(n)[n % 4]
            txns.append(PushTransaction(f"t{n}", names[n % users], "INBOX", "imap",
                                        time.time(), events))
        count = sum(len(txn.events) for txn in txns)
        started = time.perf_counter()
        for txn in txns:
            state = await driver.begin_txn(txn)
            assert state is not None
            for event in txn.events:
                await driver.process_event(state, event)
            await driver.end_txn(state, True)
        elapsed = time.perf_counter() - started
        await driver.close()
        await services.close()
    return count / elapsed, open_ms


class Endpoint:
    """Answers POST /push after `delay`, on 127.0.0.1 … 127.0.0.<hosts>, one port."""

    def __init__(self, delay: float, hosts: int) -> None:
        self.delay = delay
        self.hosts = [f"127.0.0.{n + 1}" for n in range(hosts)]
        self.received = 0
        self.done = asyncio.Event()
        self.expected = 0
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        for host in self.hosts:
            await web.TCPSite(self.runner, host, self.port, backlog=1024).start()

    def url(self, user: int) -> str:
        return f"http://{self.hosts[user % len(self.hosts)]}:{self.port}/push"

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received += 1
        if self.expected and self.received >= self.expected:
            self.done.set()
        return web.Response(text="ok")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def write_setup(directory: Path, port: int, users: int, endpoint: Endpoint) -> Path:
    """Each user's `push_lua_url` is a userdb field, spreading users over the endpoint's hosts."""
    passwd = directory / "users"
    passwd.write_text("".join(
        f"user{i}:{{PLAIN}}pw::::::userdb_push_lua_url={endpoint.url(i)}\n" for i in range(users)
    ))
    config = directory / "mailpush.conf"
    config.write_text(
        f"protocols = lmtp\n"
        f"mailpush_data_dir = {directory / 'data'}\n"
        f"mailpush_push_concurrency = 256\n"
        f"passdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n"
        f"service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n"
        f"    port = {port}\n  }}\n}}\n"
        f"plugin {{\n  push_notification_driver = lua:file={SEED_SCRIPT}\n}}\n"
    )
    return config


async def deliver(port: int, recipients: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await read_reply(reader)
    writer.write(b"LHLO bench.example\r\n")
    await read_reply(reader)
    for rcpt in recipients:
        writer.write(b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<" + rcpt.encode()
                     + b">\r\nDATA\r\n")
        for expected in (b"250", b"250", b"354"):
            reply = await read_reply(reader)
            if not reply.startswith(expected):
                raise RuntimeError(f"unexpected reply {reply!r}")
        writer.write(MESSAGE + b".\r\n")
        reply = await read_reply(reader)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"delivery failed: {reply!r}")
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


async def deliveries_per_second(
    delay: float, messages: int, users: int, hosts: int
) -> tuple[float, float]:
    endpoint = Endpoint(delay, hosts)
    await endpoint.start()
    try:
        with tempfile.TemporaryDirectory(prefix="mailpush-lua-bench-") as tmp:
            directory = Path(tmp)
            port = free_port()
            config = write_setup(directory, port, users, endpoint)
            async with MailpushProcess(config, [port], directory / "serve.log"):
                # Warm-up: every user's INBOX exists and its Lua state is open.
                endpoint.expected = users
                await asyncio.gather(*(
                    deliver(port, [f"user{u}" for u in range(c, users, 8)]) for c in range(8)
                ))
                await asyncio.wait_for(endpoint.done.wait(), 120)
                endpoint.received, endpoint.expected = 0, messages
                endpoint.done.clear()
                names = [f"user{n % users}" for n in range(messages)]
                started = time.perf_counter()
                await asyncio.gather(*(deliver(port, names[c::8]) for c in range(8)))
                lmtp = time.perf_counter() - started
                await asyncio.wait_for(endpoint.done.wait(), 300)
                pushed = time.perf_counter() - started
    finally:
        await endpoint.stop()
    return messages / lmtp, messages / pushed


async def main_async(args: argparse.Namespace) -> str:
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    events, open_ms = await events_per_second(args.transactions, 100)
    os.sched_setaffinity(0, cores)
    fast_lmtp, fast = await deliveries_per_second(0.0, args.messages, args.users, args.hosts)
    slow_lmtp, slow = await deliveries_per_second(0.2, args.messages, args.users, args.hosts)
    return (
        f"lua_bench events_per_s={events:.0f} state_open_ms={open_ms:.2f}"
        f" n={args.messages} users={args.users} hosts={args.hosts}"
        f" fast_lmtp_per_s={fast_lmtp:.0f} fast_per_s={fast:.0f}"
        f" slow_lmtp_per_s={slow_lmtp:.0f} slow_per_s={slow:.0f}"
        f" slow_vs_fast={slow / fast:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--hosts", type=int, default=1,
                        help="endpoint addresses 127.0.0.1…N (default 1: one URL for every"
                             " user, as Dovecot's example configures it)")
    parser.add_argument("--transactions", type=int, default=20000)
    args = parser.parse_args()
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
