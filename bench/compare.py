"""mailpush against a real Dovecot 2.3 on this machine: the same workloads, in one run.

Starts a private Dovecot (bench/dovecot_instance.py: Maildir, `mail_fsync` at
its default) and a private `mailpush serve` (its defaults: SQLite,
`mail_fsync = optimized`) with the same users, runs every workload on both,
alternating which goes first, for several rounds, and prints a table of
medians with the ratio mailpush/Dovecot (higher is better; latencies
inverted), then one line of `key=ratio` pairs; a PNG bar chart of the ratios
goes to --chart. Rows that need mailpush's `lua` push driver are reported as
skipped while it is not registered. Installs nothing; see bench/README.md.

Usage: python bench/compare.py [--quick] [--rounds N] [--only KEY,...] [--chart PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from compare_report import Row, RowResult, chart, ratio_line, table
from compare_workloads import (
    PASSWORD,
    RecordFile,
    append_rate,
    command_rate,
    fetch_rate,
    fill_mailbox,
    fill_varied,
    idle_latency_ms,
    lmtp_rate,
    store_seen_rate,
    unseen_all,
    wait_until,
)
from dovecot_instance import DovecotInstance, dovecot_binary, dovecot_version
from http_sink import HttpSink
from lmtp_deliver import run_load
from mailpush_instance import MailpushInstance

BENCH = Path(__file__).resolve().parent
RECORD_SCRIPT = BENCH / "lua" / "record.lua"
# The simple example script of Dovecot's Lua push documentation, verbatim
# (docs/dovecot-reference.md#http-requests-of-the-example-scripts);
# tests/drivers/lua/test_seed_scripts.py checks this copy against that page when given it.
SEED_HTTP_SCRIPT = BENCH.parent / "tests" / "drivers" / "lua" / "fixtures" / "simple_http.lua"
DOVECOT_LUA_PLUGIN = Path("/usr/lib/dovecot/modules/lib22_push_notification_lua_plugin.so")
# Where Debian's lua-socket puts socket.url for Dovecot's Lua 5.4.
LUA_SOCKET_URL = ("/usr/share/lua/5.4/socket/url.lua", "/usr/local/share/lua/5.4/socket/url.lua")

# Warm-up recipients, the IMAP rows' users; LMTP rows add fresh ones per round (_recipients).
BASE_USERS = [f"user{i}" for i in range(8)] + ["alice", "fetch", "store", "sort"]

ROWS = [
    Row("lmtp_1", "LMTP, 1 connection, no push", "deliveries/s", 0.5),
    Row("lmtp_8", "LMTP, 8 connections, no push", "deliveries/s", 0.5),
    Row("lua_record_1", "LMTP, 1 conn, Lua recording script", "deliveries/s", 0.5),
    Row("lua_record_8", "LMTP, 8 conns, Lua recording script", "deliveries/s", 1.0),
    Row("http_fast_1", "LMTP, 1 conn, Lua HTTP POST, instant endpoint", "deliveries/s", 0.5),
    Row("http_fast_8", "LMTP, 8 conns, Lua HTTP POST, instant endpoint", "deliveries/s", 0.5),
    Row("http_slow_1", "LMTP, 1 conn, Lua HTTP POST, 200 ms endpoint", "deliveries/s", 10.0),
    Row("http_slow_8", "LMTP, 8 conns, Lua HTTP POST, 200 ms endpoint", "deliveries/s", 10.0),
    Row("imap_append", "IMAP APPEND, 1 connection", "appends/s", 0.5),
    Row("imap_fetch", "IMAP FETCH 1:* (FLAGS ENVELOPE)", "msgs/s", 0.5),
    Row("imap_sort", "IMAP SORT (SUBJECT DATE), varied mail", "msgs/s", 0.5),
    Row("imap_thread", "IMAP THREAD REFERENCES, varied mail", "msgs/s", 0.5),
    Row("imap_store", "IMAP STORE 1:* +FLAGS (\\Seen), Lua recording", "msgs/s", 0.5),
    Row("imap_idle", "IMAP IDLE latency, LMTP 250 -> EXISTS", "ms", 0.5, latency=True),
]
ROW_KEYS = [row.key for row in ROWS]
LUA_ROWS = {"lua_record_1", "lua_record_8", "http_fast_1", "http_fast_8", "http_slow_1",
            "http_slow_8", "imap_store"}
HTTP_ROWS = {"http_fast_1", "http_fast_8", "http_slow_1", "http_slow_8"}
LMTP_ROWS = ["lmtp_1", "lmtp_8", "lua_record_1", "lua_record_8", *sorted(HTTP_ROWS)]

# Counts per preset; an option given on the command line wins.
DEFAULTS = {
    "rounds": 5, "messages": 500, "slow_messages": 15, "appends": 500,
    "fetch_messages": 10_000, "store_messages": 1000, "idle_deliveries": 8,
    "sort_messages": 10_000,
}
QUICK = {
    "rounds": 2, "messages": 120, "slow_messages": 4, "appends": 120,
    "fetch_messages": 2000, "store_messages": 300, "idle_deliveries": 3,
    "sort_messages": 2000,
}
WARM_UP_DELIVERIES = 80


@dataclass
class Side:
    """One server of a phase, and how to tell that its pushes have all run."""

    name: str
    lmtp_port: int
    imap_port: int
    #: Pushes completed so far (record-file lines, endpoint requests); None without push.
    pushes_done: Callable[[], int] | None = None
    pid: int | None = None


@dataclass
class Run:
    args: argparse.Namespace
    selected: set[str]
    users: list[tuple[str, str]]
    results: dict[str, RowResult] = field(default_factory=dict)
    #: Per LMTP-with-push row and server: seconds from the last 250 until every push ran.
    lags: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def wanted(self, keys: Sequence[str]) -> list[str]:
        return [key for key in keys if key in self.selected and key not in self.results]

    def record(self, key: str, values: dict[str, list[float]]) -> None:
        row = next(row for row in ROWS if row.key == key)
        result = RowResult(row, tuple(values["dovecot"]), tuple(values["mailpush"]))
        self.results[key] = result
        print(f"  {key}: dovecot {_short(values['dovecot'])} mailpush "
              f"{_short(values['mailpush'])} ratio {result.ratio:.2f}", file=sys.stderr)

    def skip(self, keys: Sequence[str], reason: str) -> None:
        for key in keys:
            row = next(row for row in ROWS if row.key == key)
            self.results[key] = RowResult(row, skipped=reason)


async def main_async(args: argparse.Namespace) -> int:
    if dovecot_binary() is None:
        print("compare: Dovecot is not installed; bench/README.md says how to install it "
              "(apt-get install dovecot-core dovecot-imapd dovecot-lmtpd)", file=sys.stderr)
        return 2
    users = BASE_USERS + [name for key in LMTP_ROWS for round_number in range(args.rounds)
                          for name in _recipients(key, round_number)]
    run = Run(args, set(args.only), [(name, PASSWORD) for name in users])
    for key, reason in _unavailable().items():
        if key in run.selected:
            run.skip([key], reason)
    profile = _Profiler(args.profile)
    await _plain_phase(run, profile)
    await _recording_phase(run, profile)
    if run.wanted(sorted(HTTP_ROWS)):
        with HttpSink() as sink:
            await _http_phase(run, profile, sink, 0, ["http_fast_1", "http_fast_8"])
            await _http_phase(run, profile, sink, 200, ["http_slow_1", "http_slow_8"])
    results = [run.results[key] for key in ROW_KEYS if key in run.results]
    print(table(results, args.rounds))
    if run.lags:
        print("Pushes still running after the last 250 (median s, untimed above): " + "; ".join(
            f"{key} dovecot {statistics.median(lags['dovecot']):.2f} "
            f"mailpush {statistics.median(lags['mailpush']):.2f}"
            for key, lags in run.lags.items() if lags))
    if args.chart is not None and any(result.skipped is None for result in results):
        title = (f"mailpush vs Dovecot {(dovecot_version() or '?').split()[0]}: "
                 f"{args.rounds} rounds, {os.cpu_count()} cores, "
                 f"{datetime.date.today().isoformat()}")
        chart(results, args.chart, title)
        print(f"chart: {args.chart}")
    print(ratio_line(results))
    return 0


# --- phases: a Dovecot and a mailpush configured alike, their rows measured in turn ------


async def _plain_phase(run: Run, profile: _Profiler) -> None:
    keys = run.wanted(["lmtp_1", "lmtp_8", "imap_append", "imap_fetch", "imap_sort",
                       "imap_thread", "imap_idle"])
    if not keys:
        return
    args = run.args
    print("phase: no push driver", file=sys.stderr)
    servers = DovecotInstance(users=run.users), MailpushInstance(run.users)
    async with _servers(*servers) as sides:
        for side in sides:
            await run_load(side.lmtp_port, 8, WARM_UP_DELIVERIES)
            await fill_mailbox(side.lmtp_port, "alice", 1, connections=1)
        with profile.attached("plain", sides):
            for key in ("lmtp_1", "lmtp_8"):
                if key in keys:
                    run.record(key, await _alternate(args.rounds, sides, _lmtp(
                        key, args.messages)))
            if "imap_append" in keys:
                # A new mailbox each round: Dovecot's APPEND slows down as a Maildir grows.
                run.record("imap_append", await _alternate(args.rounds, sides, _blocking(
                    lambda side, round_number: append_rate(
                        side.imap_port, "alice", f"Bench{round_number}", args.appends))))
            if "imap_fetch" in keys:
                print(f"  filling a {args.fetch_messages}-message INBOX on both",
                      file=sys.stderr)
                await asyncio.gather(*(fill_mailbox(side.lmtp_port, "fetch",
                                                    args.fetch_messages) for side in sides))
                measure = _blocking(lambda side, _: fetch_rate(
                    side.imap_port, "fetch", args.fetch_messages))
                for side in sides:  # the first FETCH fills Dovecot's cache: not timed
                    await measure(side, -1)
                run.record("imap_fetch", await _alternate(args.rounds, sides, measure))
            if "imap_sort" in keys or "imap_thread" in keys:
                await _sort_rows(run, sides, keys)
            if "imap_idle" in keys:
                run.record("imap_idle", await _alternate(args.rounds, sides, _blocking(
                    lambda side, _: idle_latency_ms(side.lmtp_port, side.imap_port, "alice",
                                                 args.idle_deliveries))))


async def _sort_rows(run: Run, sides: list[Side], keys: list[str]) -> None:
    """SORT and THREAD over one INBOX of varied mail per server (compare_workloads.fill_varied).

    As for FETCH, the first command on each server is not timed: it fills
    Dovecot's cache and sort/thread indexes, and mailpush's per-mailbox sort
    memory (imap/sort_memory.py: each message's sort facts, the last orders and
    thread answers), so the timed rounds measure both servers warm. The cold
    first command and THREAD after new mail are measured apart (docs/imap.md).
    """
    count = run.args.sort_messages
    print(f"  filling a {count}-message INBOX of varied mail on both", file=sys.stderr)
    await asyncio.gather(*(asyncio.to_thread(fill_varied, side.imap_port, "sort", count)
                           for side in sides))
    for key, command in (("imap_sort", b"SORT (SUBJECT DATE) UTF-8 ALL"),
                         ("imap_thread", b"THREAD REFERENCES UTF-8 ALL")):
        if key not in keys:
            continue
        measure = _blocking(lambda side, _, command=command: command_rate(
            side.imap_port, "sort", command, count))
        for side in sides:
            await measure(side, -1)
        run.record(key, await _alternate(run.args.rounds, sides, measure))


async def _recording_phase(run: Run, profile: _Profiler) -> None:
    keys = run.wanted(["lua_record_1", "lua_record_8", "imap_store"])
    if not keys:
        return
    args = run.args
    print("phase: Lua recording script", file=sys.stderr)
    dovecot = DovecotInstance(users=run.users, lua_script=RECORD_SCRIPT)
    mailpush = MailpushInstance(run.users, lua_script=RECORD_SCRIPT)
    records: dict[str, RecordFile] = {}
    for name, server in (("dovecot", dovecot), ("mailpush", mailpush)):
        path = server.output_file("record.txt")
        server.plugin_settings["record_file"] = str(path)
        records[name] = RecordFile(path)

    def done(name: str, event_name: str) -> Callable[[], int]:
        return lambda: records[name].count(event_name)

    async with _servers(dovecot, mailpush) as sides:
        for side in sides:
            side.pushes_done = done(side.name, "MessageNew")
            await _warm_up(side)
        with profile.attached("lua-record", sides):
            for key in ("lua_record_1", "lua_record_8"):
                if key in keys:
                    run.record(key, await _alternate(args.rounds, sides, _lmtp(
                        key, args.messages, run.lags.setdefault(key, {}))))
            if "imap_store" in keys:
                n = args.store_messages
                for side in sides:
                    before = _pushes(side)
                    await fill_mailbox(side.lmtp_port, "store", n)
                    await _settle(side, before + n)

                async def store(side: Side, round_number: int) -> float:
                    reads, clears = done(side.name, "MessageRead"), done(side.name, "FlagsClear")
                    expected_reads = await asyncio.to_thread(reads) + n
                    rate = await asyncio.to_thread(store_seen_rate, side.imap_port, "store", n)
                    await wait_until(f"{side.name} STORE", reads, expected_reads, _timeout(n))
                    expected_clears = await asyncio.to_thread(clears) + n
                    await asyncio.to_thread(unseen_all, side.imap_port, "store")
                    await wait_until(f"{side.name} -FLAGS", clears, expected_clears, _timeout(n))
                    return rate

                run.record("imap_store", await _alternate(args.rounds, sides, store))


async def _http_phase(
    run: Run, profile: _Profiler, sink: HttpSink, delay_ms: int, row_keys: list[str]
) -> None:
    keys = run.wanted(row_keys)
    if not keys:
        return
    args = run.args
    print(f"phase: Lua HTTP POST (Dovecot's example script), endpoint answering after "
          f"{delay_ms} ms", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="compare-lua-") as scratch:
        dovecot_script = Path(scratch) / "seed_http_post_2_3.lua"
        dovecot_script.write_text(_dovecot_2_3_variant(SEED_HTTP_SCRIPT.read_text()))
        names = {"dovecot": f"dovecot-{delay_ms}", "mailpush": f"mailpush-{delay_ms}"}
        dovecot = DovecotInstance(users=run.users, lua_script=dovecot_script, plugin_settings={
            "push_lua_url": sink.url(delay_ms, names["dovecot"])})
        mailpush = MailpushInstance(run.users, lua_script=SEED_HTTP_SCRIPT, plugin_settings={
            "push_lua_url": sink.url(delay_ms, names["mailpush"])})
        async with _servers(dovecot, mailpush) as sides:
            for side in sides:
                side.pushes_done = lambda name=names[side.name]: sink.count(name)
                await _warm_up(side)
            with profile.attached(f"lua-http-{delay_ms}ms", sides):
                for key in keys:
                    messages = args.messages if delay_ms == 0 else (
                        args.slow_messages * _connections(key))
                    run.record(key, await _alternate(args.rounds, sides, _lmtp(
                        key, messages, run.lags.setdefault(key, {}))))


# --- the pieces phases share ---------------------------------------------------------------

#: One measurement of one server in one round (numbered from 0).
Measure = Callable[[Side, int], Awaitable[float]]


async def _alternate(rounds: int, sides: list[Side], measure: Measure) -> dict[str, list[float]]:
    """Each round measures both servers, the first one alternating between rounds."""
    values: dict[str, list[float]] = {side.name: [] for side in sides}
    for round_number in range(rounds):
        order = sides if round_number % 2 == 0 else sides[::-1]
        for side in order:
            values[side.name].append(await measure(side, round_number))
    return values


def _connections(key: str) -> int:
    return int(key.rsplit("_", 1)[1])


def _recipients(key: str, round_number: int) -> list[str]:
    """Fresh users for one LMTP measurement, one per connection.

    Dovecot delivers ever more slowly into a growing Maildir (on this machine
    about 400/s into an empty INBOX, 210/s at 3,000 messages; mailpush stays
    flat), so reusing mailboxes would make the ratio depend on --rounds.
    """
    prefix = key.replace("_", "")
    return [f"{prefix}r{round_number}c{i}" for i in range(_connections(key))]


def _lmtp(key: str, messages: int, lags: dict[str, list[float]] | None = None) -> Measure:
    """Deliveries/s to fresh users; untimed, their mailboxes' creation and all pushes."""
    async def measure(side: Side, round_number: int) -> float:
        recipients = _recipients(key, round_number)
        before = _pushes(side)
        await asyncio.gather(*(fill_mailbox(side.lmtp_port, recipient, 1, connections=1)
                               for recipient in recipients))
        await _settle(side, before + len(recipients))
        before = _pushes(side)
        rate = await lmtp_rate(side.lmtp_port, recipients, messages)
        delivered = messages // len(recipients) * len(recipients)
        lag = await _settle(side, before + delivered)
        if lags is not None:
            lags.setdefault(side.name, []).append(lag)
        return rate

    return measure


def _blocking(function: Callable[[Side, int], float]) -> Measure:
    async def measure(side: Side, round_number: int) -> float:
        return await asyncio.to_thread(function, side, round_number)

    return measure


async def _warm_up(side: Side) -> None:
    """First deliveries create the users' mailboxes (and, in Dovecot, their processes)."""
    before = _pushes(side)
    await run_load(side.lmtp_port, 8, WARM_UP_DELIVERIES)
    await _settle(side, before + WARM_UP_DELIVERIES)


def _pushes(side: Side) -> int:
    return 0 if side.pushes_done is None else side.pushes_done()


async def _settle(side: Side, expected: int) -> float:
    """Seconds until the side's pushes reach `expected` (0 for a side without push)."""
    if side.pushes_done is None:
        return 0.0
    count = expected - _pushes(side)
    return await wait_until(side.name, side.pushes_done, expected, _timeout(max(count, 0)))


def _timeout(pushes: int) -> float:
    return 60 + 0.3 * pushes


@contextlib.asynccontextmanager
async def _servers(dovecot: DovecotInstance, mailpush: MailpushInstance) -> AsyncIterator[
        list[Side]]:
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(dovecot)
        try:
            await stack.enter_async_context(mailpush)
        except BaseException:
            print(mailpush.log_text()[-4000:], file=sys.stderr)
            raise
        try:
            yield [Side("dovecot", dovecot.lmtp_port, dovecot.imap_port),
                   Side("mailpush", mailpush.lmtp_port, mailpush.imap_port, pid=mailpush.pid)]
        except BaseException:
            print(f"--- dovecot log (tail) ---\n{dovecot.log_text()[-3000:]}\n"
                  f"--- mailpush log (tail) ---\n{mailpush.log_text()[-3000:]}", file=sys.stderr)
            raise


def _dovecot_2_3_variant(script: str) -> str:
    """Dovecot's example script with `return 0` in script_init: 2.3.19 disables it otherwise."""
    original = "client = dovecot.http.client({debug=True, timeout=10000})\nend"
    if original not in script:
        raise RuntimeError(f"{SEED_HTTP_SCRIPT} no longer has the example's script_init")
    return script.replace(original, original.removesuffix("end") + "  return 0\nend")


def _unavailable() -> dict[str, str]:
    """Rows that cannot run here, and why."""
    from mailpush.drivers import default_registry

    reasons: dict[str, str] = {}
    known = default_registry().known()
    for key in sorted(LUA_ROWS):
        if "lua" not in known:
            reasons[key] = (f"mailpush has no `lua` push driver registered (known: "
                            f"{', '.join(known)})")
        elif not DOVECOT_LUA_PLUGIN.exists():
            reasons[key] = f"Dovecot's Lua push driver is missing ({DOVECOT_LUA_PLUGIN})"
    if not any(Path(path).exists() for path in LUA_SOCKET_URL):
        for key in sorted(HTTP_ROWS):
            reasons.setdefault(key, "Dovecot's Lua cannot `require 'socket.url'` for the example "
                                    "script: apt-get install lua-socket")
    return reasons


class _Profiler:
    """`py-spy record -f raw` on mailpush for each phase, when --profile DIR is given."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def attached(self, phase: str, sides: list[Side]) -> Iterator[None]:
        pid = next(side.pid for side in sides if side.name == "mailpush")
        if self.directory is None or pid is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        output = self.directory / f"{phase}.txt"
        spy = subprocess.Popen(
            ["py-spy", "record", "--subprocesses", "-f", "raw", "-r", "100",
             "-o", str(output), "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # attached before the first measurement
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            print(f"  profile of mailpush: {output}", file=sys.stderr)


def _short(values: list[float]) -> str:
    return "[" + " ".join(f"{value:.4g}" for value in values) + "]"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a 1-2 minute smoke run: 2 rounds, small counts")
    parser.add_argument("--rounds", type=int, help="rounds per row and server (5; quick 2)")
    parser.add_argument("--messages", type=int,
                        help="deliveries per LMTP measurement (500; quick 120)")
    parser.add_argument("--slow-messages", type=int,
                        help="deliveries per connection against the 200 ms endpoint (15; quick 4)")
    parser.add_argument("--appends", type=int, help="APPENDs per measurement (500; quick 120)")
    parser.add_argument("--fetch-messages", type=int,
                        help="messages in the FETCH mailbox (10000; quick 2000)")
    parser.add_argument("--sort-messages", type=int,
                        help="messages in the SORT/THREAD mailbox (10000; quick 2000)")
    parser.add_argument("--store-messages", type=int,
                        help="messages in the STORE mailbox (1000; quick 300)")
    parser.add_argument("--idle-deliveries", type=int,
                        help="deliveries per IDLE measurement (8; quick 3)")
    parser.add_argument("--only", type=lambda text: text.split(","), default=ROW_KEYS,
                        help="comma-separated row keys: " + ",".join(ROW_KEYS))
    parser.add_argument("--chart", type=Path, default=BENCH / "compare.png",
                        help="where the PNG of the ratios goes (default bench/compare.png)")
    parser.add_argument("--no-chart", dest="chart", action="store_const", const=None)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record mailpush with py-spy (raw stacks), one file per phase")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(ROW_KEYS)
    if unknown:
        parser.error(f"--only: unknown rows {', '.join(sorted(unknown))}")
    preset = QUICK if args.quick else DEFAULTS
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    args = parse_args()
    if args.chart is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            sys.exit("compare: the chart needs matplotlib: pip install -e '.[bench]' "
                     "(or pass --no-chart)")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
