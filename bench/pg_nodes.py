"""1, 2 and 3 mailpush nodes on one PostgreSQL: LMTP deliveries/s and push latency.

Starts a private PostgreSQL (`tests/support/postgres.py`, durable: fsync and
synchronous_commit on, unix socket) and, for each node count, a fresh
database and that many `mailpush serve` processes, each with a data
directory and LMTP port of its own and the same `mailpush_store` URI, their
webhook driver pointed at a push endpoint in a process of its own (this
script with `--sink`, which notes when each message's push arrived). Then
8 LMTP connections, spread round-robin over the nodes and each delivering
to a user of its own, send `--messages` messages (after an untimed
warm-up), and the run waits until every push has arrived. Prints, per node
count, one summary line:

    pg_nodes nodes=N n=... per_s=... p50_ms=... p99_ms=... push_p50_ms=... \
        push_p99_ms=... push_wait_s=... node_cpu_ms=... pg_cpu_ms=... wal_kb=... db_kb=...

`per_s`: acknowledged deliveries per second (all nodes together); `p50_ms`,
`p99_ms`: DATA→250; `push_*`: from a message's 250 to its MessageNew push at
the endpoint; `push_wait_s`: from the last 250 until the last push arrived;
`node_cpu_ms` and `pg_cpu_ms`: CPU time per delivery of the mailpush
processes together and of the PostgreSQL server; `wal_kb`: WAL written per
delivery; `db_kb`: what the database grew by per delivery (message, indexes,
outbox rows; nothing purged yet; the message is 2.7 KB). Every process shares one
machine: with 2 cores, more nodes add contention, not capacity (see
docs/cluster.md#measured-here).

Then one node alone holds `--idle-sessions` IMAP sessions idling on INBOX
(logged in, selected) and prints what they cost it in memory:

    pg_nodes_idle sessions=N rss_before_mb=... rss_after_mb=... kb_per_session=...

Usage: python bench/pg_nodes.py [--messages N] [--nodes 1,2,3] [--idle-sessions N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    PostgresServer,
    database_name,
    find_postgres_bin,
    start_postgres,
)

from lmtp_deliver import MESSAGE, percentile, read_reply  # noqa: E402
from mailpush_instance import MailpushProcess, free_port  # noqa: E402

CONNECTIONS = 8
USERS = [f"user{i}" for i in range(CONNECTIONS)]
#: Seconds to wait for the last push after the last delivery.
PUSH_TIMEOUT = 120.0


async def main_async(args: argparse.Namespace) -> list[str]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL binaries not found: install the Debian package postgresql")
    server = start_postgres(bin_dir, durable=True)
    sink = Sink()
    lines = []
    try:
        await asyncio.to_thread(sink.start)
        for nodes in args.nodes:
            uri = server.create_database(f"nodes{nodes}")
            line = await one_run(nodes, uri, sink, args.messages, server)
            print(line, flush=True)
            lines.append(line)
        if args.idle_sessions:
            uri = server.create_database("idle")
            line = await idle_run(uri, args.idle_sessions)
            print(line, flush=True)
            lines.append(line)
    finally:
        sink.stop()
        server.stop()
    return lines


async def one_run(
    nodes: int, uri: str, sink: Sink, messages: int, server: PostgresServer
) -> str:
    pg_pid = server.process.pid
    with tempfile.TemporaryDirectory(prefix="mailpush-pg-nodes-") as tmp:
        directory = Path(tmp)
        users = directory / "users"
        users.write_text("".join(f"{user}:{{PLAIN}}pw::::\n" for user in USERS))
        ports = [free_port() for _ in range(nodes)]
        processes = [
            MailpushProcess(
                node_config(directory / f"node{n}", port, users, uri, sink.url(f"n{nodes}")),
                [port],
                directory / f"node{n}" / "serve.log",
            )
            for n, port in enumerate(ports)
        ]
        for process in processes:  # one after another: the first one migrates
            await process.start()
        try:
            await load(ports, "warm", 10 * CONNECTIONS)
            await sink.wait_for(f"n{nodes}", lambda subjects: _count(subjects, "warm")
                                >= 10 * CONNECTIONS)
            cpu_before = _cpu([p.pid for p in processes]), _tree_cpu(pg_pid)
            wal_before = _wal_position(server)
            size_before = _database_bytes(server, uri)
            started = time.perf_counter()
            acks = await load(ports, "m", messages)
            elapsed = time.perf_counter() - started
            wal_bytes = _wal_position(server) - wal_before
            stored = _database_bytes(server, uri) - size_before
            last_ack = max(ack for _, ack in acks.values())
            arrivals = await sink.wait_for(
                f"n{nodes}", lambda subjects: _count(subjects, "m") >= len(acks)
            )
            push_wait = max(arrivals[s] for s in acks) - last_ack
            node_cpu = _cpu([p.pid for p in processes]) - cpu_before[0]
            pg_cpu = _tree_cpu(pg_pid) - cpu_before[1]
        finally:
            for process in processes:
                await process.stop()
    latencies = sorted(ack - sent for sent, ack in acks.values())
    push = sorted(arrivals[s] - ack for s, (_, ack) in acks.items())
    return (
        f"pg_nodes nodes={nodes} n={len(acks)} per_s={len(acks) / elapsed:.0f}"
        f" p50_ms={statistics.median(latencies) * 1000:.1f}"
        f" p99_ms={percentile(latencies, 0.99) * 1000:.1f}"
        f" push_p50_ms={statistics.median(push) * 1000:.1f}"
        f" push_p99_ms={percentile(push, 0.99) * 1000:.1f}"
        f" push_wait_s={push_wait:.2f}"
        f" node_cpu_ms={node_cpu / len(acks) * 1000:.2f}"
        f" pg_cpu_ms={pg_cpu / len(acks) * 1000:.2f}"
        f" wal_kb={wal_bytes / len(acks) / 1024:.1f}"
        f" db_kb={stored / len(acks) / 1024:.1f}"
    )


async def idle_run(uri: str, sessions: int) -> str:
    """One node's memory per IMAP session idling on INBOX (what a connected user costs)."""
    with tempfile.TemporaryDirectory(prefix="mailpush-pg-nodes-") as tmp:
        directory = Path(tmp)
        users = directory / "users"
        users.write_text("".join(f"{user}:{{PLAIN}}pw::::\n" for user in USERS))
        lmtp, imap = free_port(), free_port()
        config = node_config(directory / "node", lmtp, users, uri, None, imap)
        process = MailpushProcess(config, [lmtp, imap], directory / "node" / "serve.log")
        await process.start()
        streams: list[asyncio.StreamWriter] = []
        try:
            await load([lmtp], "idle", 10 * CONNECTIONS)  # INBOXes with mail in them
            await idle_session(imap, USERS[0], streams)  # imports and caches warmed up
            before = _rss_kb(process.pid)
            for n in range(sessions):
                await idle_session(imap, USERS[n % len(USERS)], streams)
            await asyncio.sleep(1)
            after = _rss_kb(process.pid)
        finally:
            for writer in streams:
                writer.close()
            await process.stop()
    return (
        f"pg_nodes_idle sessions={sessions} rss_before_mb={before / 1024:.0f}"
        f" rss_after_mb={after / 1024:.0f} kb_per_session={(after - before) / sessions:.1f}"
    )


async def idle_session(port: int, user: str, streams: list[asyncio.StreamWriter]) -> None:
    """Log in, SELECT INBOX and IDLE; the connection stays open in `streams`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    streams.append(writer)
    await reader.readline()
    for tag, command in ((b"a", f"LOGIN {user} pw"), (b"b", "SELECT INBOX")):
        writer.write(tag + b" " + command.encode() + b"\r\n")
        while not (line := await reader.readline()).startswith(tag + b" "):
            if not line:
                raise ConnectionError("the server closed the IMAP connection")
        if not line.startswith(tag + b" OK"):
            raise RuntimeError(f"IMAP {command.split()[0]} failed: {line!r}")
    writer.write(b"c IDLE\r\n")
    if not (await reader.readline()).startswith(b"+"):
        raise RuntimeError("IDLE was not accepted")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def node_config(
    directory: Path, port: int, users: Path, uri: str, push_url: str | None,
    imap_port: int | None = None,
) -> Path:
    """One node: its own data directory and LMTP port (and IMAP port, if given), the shared
    store, the webhook driver (if given)."""
    directory.mkdir()
    imap = "" if imap_port is None else textwrap.dedent(f"""\
        protocols = imap lmtp
        disable_plaintext_auth = no
        mail_max_userip_connections = 0
        service imap-login {{
          inet_listener imap {{
            address = 127.0.0.1
            port = {imap_port}
          }}
          inet_listener imaps {{
            port = 0
          }}
        }}
        """)
    push = "" if push_url is None else (
        f"plugin {{\n  push_notification_driver = webhook:url={push_url}\n}}\n"
    )
    config = directory / "mailpush.conf"
    config.write_text(textwrap.dedent(f"""\
        protocols = lmtp
        mailpush_data_dir = {directory / "data"}
        mailpush_store = {uri}
        passdb {{
          driver = passwd-file
          args = {users}
        }}
        service lmtp {{
          inet_listener lmtp {{
            address = 127.0.0.1
            port = {port}
          }}
        }}
        """) + imap + push)
    return config


#: Per delivery, by subject: (when its MAIL was sent, when its 250 came), wall clock.
Acks = dict[str, tuple[float, float]]


async def load(ports: Sequence[int], tag: str, total: int) -> Acks:
    """Deliver `total` messages over 8 connections spread over `ports`."""
    acks: Acks = {}
    per_connection = total // CONNECTIONS
    await asyncio.gather(*(
        connection(ports[i % len(ports)], USERS[i], f"{tag}-{i}", per_connection, acks)
        for i in range(CONNECTIONS)
    ))
    return acks


async def connection(port: int, rcpt: str, tag: str, count: int, acks: Acks) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await read_reply(reader)
    writer.write(b"LHLO bench.example\r\n")
    await read_reply(reader)
    for n in range(count):
        subject = f"{tag}-{n}"
        message = MESSAGE.replace(b"Subject: benchmark message", f"Subject: {subject}".encode())
        sent = time.time()
        writer.write(b"MAIL FROM:<bench@example.net>\r\nRCPT TO:<" + rcpt.encode()
                     + b">\r\nDATA\r\n")
        for expected in (b"250", b"250", b"354"):
            reply = await read_reply(reader)
            if not reply.startswith(expected):
                raise RuntimeError(f"unexpected reply {reply!r}")
        writer.write(message + b".\r\n")
        reply = await read_reply(reader)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"delivery failed: {reply!r}")
        acks[subject] = (sent, time.time())
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


def _wal_position(server: PostgresServer) -> int:
    """Bytes of WAL the server has written so far (`wal_kb`: per delivery)."""
    with psycopg.connect(server.uri(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def _database_bytes(server: PostgresServer, uri: str) -> int:
    """The database's size on disk (`db_kb`: what it grew by per delivery)."""
    with psycopg.connect(server.uri(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (database_name(uri),)).fetchone()
    assert row is not None
    return int(row[0])


def _count(subjects: dict[str, float], tag: str) -> int:
    return sum(1 for subject in subjects if subject.startswith(f"{tag}-"))


def _cpu(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _tree_cpu(root: int) -> float:
    """CPU seconds of `root` and its descendants that are alive (the PostgreSQL server:
    its backends end with their connections, so this is read while the nodes run)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    try:
        return _cpu(alive)
    except (OSError, IndexError):
        return 0.0


class Sink:
    """The push endpoint: this script with `--sink`, in a process of its own."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--sink"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().decode()
        if not line.startswith("port="):
            self.stop()
            raise RuntimeError(f"the push sink did not start (said {line!r})")
        self.port = int(line.removeprefix("port="))

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/push/{name}"

    async def wait_for(
        self, name: str, done: Callable[[dict[str, float]], bool]
    ) -> dict[str, float]:
        """Poll the arrivals at `name` until `done(arrivals)`; subject → arrival time."""
        import urllib.request

        deadline = time.monotonic() + PUSH_TIMEOUT
        while True:
            def fetch() -> dict[str, float]:
                url = f"http://127.0.0.1:{self.port}/arrivals/{name}"
                with urllib.request.urlopen(url, timeout=30) as reply:
                    return dict(json.load(reply))

            arrivals = await asyncio.to_thread(fetch)
            if done(arrivals):
                return arrivals
            if time.monotonic() > deadline:
                raise TimeoutError(f"pushes still missing after {PUSH_TIMEOUT:.0f} s")
            await asyncio.sleep(0.2)


async def _serve_sink() -> None:
    """Answer each push at once; note when the MessageNew of each subject arrived."""
    arrivals: dict[str, dict[str, float]] = {}

    async def push(request: web.Request) -> web.Response:
        body = await request.json()
        now = time.time()
        seen = arrivals.setdefault(request.match_info["name"], {})
        for event in body.get("events", ()):
            subject = event.get("subject")
            if event.get("name") == "MessageNew" and subject and subject not in seen:
                seen[subject] = now
        return web.Response(text="ok")

    async def listing(request: web.Request) -> web.Response:
        return web.json_response(arrivals.get(request.match_info["name"], {}))

    app = web.Application()
    app.router.add_post("/push/{name}", push)
    app.router.add_get("/arrivals/{name}", listing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"port={port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--nodes", default="1,2,3",
                        help="node counts to run, comma-separated (default 1,2,3)")
    parser.add_argument("--idle-sessions", type=int, default=1000,
                        help="IMAP sessions idling on one node, for its memory per session"
                        " (0: skip)")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        try:
            asyncio.run(_serve_sink())
        except KeyboardInterrupt:
            pass
        return
    args.nodes = [int(n) for n in args.nodes.split(",")]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
