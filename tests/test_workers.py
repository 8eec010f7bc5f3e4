"""`mailpush_workers = 2`: a supervisor, two workers, shared ports (docs/operations.md#workers).

Every test runs the real `mailpush serve` and speaks LMTP and IMAP to it over
loopback. Which worker serves a connection is read from the kernel: the
process holding the server side of the TCP connection (`/proc/net/tcp` and
`/proc/PID/fd`).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailpush.config import load_settings
from mailpush.errors import ConfigError

from .conftest import free_port, imap_listener, write_config
from .support.http_receiver import HttpReceiver

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")

MESSAGE = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: %s\r\n\r\nbody\r\n"
#: Seconds the supervisor and its workers get to start (two Python interpreters).
START_TIMEOUT = 60.0


class Served:
    """A running `mailpush serve` with `mailpush_workers = 2`, its log, and its workers."""

    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        self.lmtp_port, self.imap_port = free_port(), free_port()
        self.config = write_config(
            tmp_path,
            "protocols = imap lmtp\nmailpush_workers = 2\nauth_failure_delay = 0\n"
            + imap_listener(self.imap_port)
            + extra,
            lmtp_port=self.lmtp_port,
        )
        self.log = tmp_path / "serve.log"
        self._notify_path = tmp_path / "notify.sock"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start it and wait for systemd's READY=1, sent once both workers listen."""
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(self._notify_path))
        notify.settimeout(0.2)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailpush.cli", "serve", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"),
            env=dict(os.environ, NOTIFY_SOCKET=str(self._notify_path)),
        )  # fmt: skip
        try:
            await asyncio.to_thread(self._until_ready, notify)
        finally:
            notify.close()

    def _until_ready(self, notify: socket.socket) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"mailpush serve exited: {self.log.read_text()}")
            try:
                notice = notify.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in notice.splitlines():
                assert f"MAINPID={self.process.pid}" in notice.splitlines()
                return
        pytest.fail(f"no READY=1 within {START_TIMEOUT}s: {self.log.read_text()}")

    def workers(self) -> dict[int, int]:
        """Worker index → pid, read from the supervisor's child processes."""
        assert self.process is not None
        found = {}
        for pid in _children(self.process.pid):
            try:
                arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # it ended meanwhile
            if b"--worker" in arguments:
                found[int(arguments[arguments.index(b"--worker") + 1])] = pid
        return found

    async def stop(self) -> int:
        """SIGTERM, as systemd stops it; its exit status."""
        process = self.process
        if process is None:
            return 0
        workers = self.workers()
        self.process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(process.wait, 40)
        except subprocess.TimeoutExpired:
            process.kill()
            for pid in workers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        await server.stop()


async def start(tmp_path: Path, started: list[Served], extra: str = "") -> Served:
    server = Served(tmp_path, extra)
    started.append(server)
    await server.start()
    assert sorted(server.workers()) == [0, 1]
    return server


# --- the setting ----------------------------------------------------------------------


def test_mailpush_workers_is_one_per_usable_core_unless_set(tmp_path: Path) -> None:
    config = write_config(tmp_path)  # which pins one process for the other tests: unpinned
    config.write_text(config.read_text().replace("mailpush_workers = 1\n", ""))
    assert "mailpush_workers =" not in config.read_text()
    assert load_settings(config).settings.workers == len(os.sched_getaffinity(0))


def test_mailpush_workers_1_is_one_process(tmp_path: Path) -> None:
    config = write_config(tmp_path, "mailpush_workers = 1\n")
    assert load_settings(config).settings.workers == 1


@pytest.mark.parametrize("value", ["auto", "0"])
def test_mailpush_workers_auto_is_one_per_usable_core(tmp_path: Path, value: str) -> None:
    settings = load_settings(write_config(tmp_path, f"mailpush_workers = {value}\n")).settings
    assert settings.workers == len(os.sched_getaffinity(0))


def test_a_mailpush_workers_that_is_no_count_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mailpush_workers.*auto"):
        load_settings(write_config(tmp_path, "mailpush_workers = lots\n"))


# --- serving --------------------------------------------------------------------------


async def test_lmtp_connections_are_spread_over_both_workers(
    tmp_path: Path, served: list[Served]
) -> None:
    server = await start(tmp_path, served)
    pids = set(server.workers().values())

    def deliver_each_on_its_own_connection() -> set[int]:
        serving = set()
        for number in range(16):
            with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
                serving.add(serving_pid(client.sock, pids))
                client.sendmail("a@example.org", ["alice"], MESSAGE % b"%d" % number)
        return serving

    assert await asyncio.to_thread(deliver_each_on_its_own_connection) == pids
    assert len(await asyncio.to_thread(subjects_in_inbox, server.imap_port)) == 16


def webhook_push(receiver: HttpReceiver) -> str:
    """The configuration lines that push every change to `receiver`."""
    return (
        "mail_plugins = $mail_plugins notify push_notification\n"
        f"plugin {{\n  push_notification_driver = webhook:url={receiver.url}\n}}\n"
    )


@pytest.mark.parametrize(
    ("setting", "lmtp_on_worker_0"),
    [("", False), ("mailpush_dispatcher_lmtp = yes\n", True)],
    ids=["auto", "yes"],
)
async def test_with_push_drivers_worker_0_dispatches_and_takes_no_lmtp_unless_told(
    tmp_path: Path, served: list[Served], setting: str, lmtp_on_worker_0: bool
) -> None:
    receiver = HttpReceiver()
    await receiver.start()
    try:
        server = await start(
            tmp_path,
            served,
            setting + webhook_push(receiver),
        )
        workers = server.workers()
        expected = {workers[0], workers[1]} if lmtp_on_worker_0 else {workers[1]}
        assert listening_pids(server.lmtp_port, workers.values()) == expected
        # IMAP is served by both either way.
        assert listening_pids(server.imap_port, workers.values()) == set(workers.values())
        said = "worker 0 runs the push dispatcher and takes no LMTP connections"
        assert (said in server.log_text()) is not lmtp_on_worker_0

        def deliver_each_on_its_own_connection() -> set[int]:
            serving = set()
            for number in range(8):
                with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
                    serving.add(serving_pid(client.sock, workers.values()))
                    client.sendmail("a@example.org", ["alice"], MESSAGE % b"m%d" % number)
            return serving

        assert await asyncio.to_thread(deliver_each_on_its_own_connection) <= expected
        await receiver.until(
            lambda: all(receiver.accepted_with(b"m%d" % n) for n in range(8)), timeout=30
        )
    finally:
        await receiver.stop()


def test_mailpush_dispatcher_lmtp_takes_auto_yes_or_no(tmp_path: Path) -> None:
    assert load_settings(write_config(tmp_path, "")).settings.dispatcher_lmtp == "auto"
    told = load_settings(write_config(tmp_path, "mailpush_dispatcher_lmtp = no\n")).settings
    assert told.dispatcher_lmtp == "no"
    with pytest.raises(ConfigError, match=r"mailpush_dispatcher_lmtp"):
        load_settings(write_config(tmp_path, "mailpush_dispatcher_lmtp = sometimes\n"))


async def test_an_idle_session_on_one_worker_sees_a_delivery_through_the_other(
    tmp_path: Path, served: list[Served]
) -> None:
    server = await start(tmp_path, served)
    pids = set(server.workers().values())
    client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", server.imap_port, timeout=10)
    try:
        idling = serving_pid(client.sock, pids)

        def idle() -> None:
            client.login("alice", "secret")
            assert client.select("INBOX") == ("OK", [b"0"])
            client.send(b"i1 IDLE\r\n")
            assert client.readline().startswith(b"+ ")

        await asyncio.to_thread(idle)
        other = (pids - {idling}).pop()
        lmtp = await asyncio.to_thread(connection_served_by, server.lmtp_port, other, pids)
        waiting = asyncio.create_task(asyncio.to_thread(client.readline))
        await asyncio.to_thread(lmtp.sendmail, "a@example.org", ["alice"], MESSAGE % b"other")
        await asyncio.to_thread(lmtp.quit)
        delivered = time.monotonic()
        assert await asyncio.wait_for(waiting, 5) == b"* 1 EXISTS\r\n"
        assert time.monotonic() - delivered < 1.0
        await asyncio.to_thread(client.send, b"DONE\r\n")
    finally:
        await asyncio.to_thread(logout, client)


@pytest.mark.parametrize("index", [0, 1], ids=["the-dispatching-worker", "worker-1"])
async def test_a_worker_killed_with_sigkill_is_restarted_and_loses_nothing_acknowledged(
    tmp_path: Path, served: list[Served], index: int
) -> None:
    receiver = HttpReceiver()
    await receiver.start()
    try:
        server = await start(
            tmp_path,
            served,
            webhook_push(receiver),
        )
        killed = server.workers()[index]
        acknowledged: list[bytes] = []
        delivering = True

        def deliver_until_told() -> None:
            number = 0
            while delivering:
                subject = b"message-%d-end" % number
                number += 1
                try:
                    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
                        client.sendmail("a@example.org", ["alice"], MESSAGE % subject)
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.01)  # the killed worker's connection: not acknowledged
                    continue
                acknowledged.append(subject)

        deliveries = asyncio.create_task(asyncio.to_thread(deliver_until_told))
        try:
            await until(lambda: len(acknowledged) >= 10, "ten deliveries", deliveries)
            os.kill(killed, signal.SIGKILL)
            serving_again = re.compile(rf"worker {index} \(pid \d+\) is serving again")
            await until(
                lambda: (
                    server.workers().get(index) not in (None, killed)
                    and serving_again.search(server.log_text()) is not None
                ),
                f"worker {index} restarted",
                deliveries,
            )
            restarted_at = len(acknowledged)
            await until(lambda: len(acknowledged) >= restarted_at + 10, "ten more", deliveries)
        finally:
            delivering = False
            await deliveries

        log = server.log_text()
        assert re.search(
            rf"worker {index} \(pid {killed}\) was killed by SIGKILL after .*; starting it again",
            log,
        ), log
        stored = await asyncio.to_thread(subjects_in_inbox, server.imap_port)
        assert set(acknowledged) <= set(stored)
        # At least once: each acknowledged message is pushed, some perhaps twice.
        await receiver.until(
            lambda: all(receiver.accepted_with(subject) for subject in acknowledged), timeout=30
        )
    finally:
        await receiver.stop()


async def test_sighup_reloads_every_worker(tmp_path: Path, served: list[Served]) -> None:
    server = await start(tmp_path, served)
    pids = set(server.workers().values())
    server.config.write_text(server.config.read_text() + "mailpush_max_message_size = 1234567\n")
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    await until(
        lambda: server.log_text().count("reload: configuration reloaded") == 2, "two reloads"
    )

    def size_advertised_by_each_worker() -> dict[int, str]:
        advertised: dict[int, str] = {}
        for _ in range(200):
            with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
                client.ehlo("test")
                advertised[serving_pid(client.sock, pids)] = client.esmtp_features["size"]
            if len(advertised) == len(pids):
                break
        return advertised

    assert await asyncio.to_thread(size_advertised_by_each_worker) == dict.fromkeys(pids, "1234567")


async def test_who_and_reload_over_the_control_socket_reach_every_worker(
    tmp_path: Path, served: list[Served]
) -> None:
    server = await start(tmp_path, served)
    pids = set(server.workers().values())
    sessions: list[imaplib.IMAP4] = []
    try:
        serving: set[int] = set()
        while serving != pids:
            client = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", server.imap_port)
            sessions.append(client)
            serving.add(serving_pid(client.sock, pids))
            await asyncio.to_thread(client.login, "bob", "secret")

        who = await asyncio.to_thread(mailpush, server.config, "who", "bob")
        assert who.count("bob ") == len(sessions), who
        reloaded = await asyncio.to_thread(mailpush, server.config, "reload")
        assert "configuration reloaded" in reloaded and "(in 2 workers)" in reloaded
    finally:
        for client in sessions:
            await asyncio.to_thread(logout, client)


async def test_metrics_of_worker_0_count_what_every_worker_served(
    tmp_path: Path, served: list[Served]
) -> None:
    """/metrics is served by worker 0 but counts every worker's deliveries, each
    worker's series labelled `worker`, each family once (a valid exposition)."""
    metrics_port = free_port()
    server = await start(
        tmp_path, served, f"mailpush_metrics_listen = 127.0.0.1:{metrics_port}\n"
    )
    workers = server.workers()
    pids = set(workers.values())

    def deliver(count: int, worker: int) -> None:
        client = connection_served_by(server.lmtp_port, workers[worker], pids)
        try:
            for number in range(count):
                client.sendmail("a@example.org", ["alice"], MESSAGE % b"w%d-%d" % (worker, number))
        finally:
            client.quit()

    await asyncio.to_thread(deliver, 2, 0)
    await asyncio.to_thread(deliver, 3, 1)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(scrape)
    assert text.count("# TYPE mailpush_lmtp_deliveries_total counter") == 1
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "mailpush_lmtp_deliveries"
    ]
    per_worker: dict[str, float] = {}
    for sample in family.samples:
        if sample.name == "mailpush_lmtp_deliveries_total":
            worker = sample.labels["worker"]
            per_worker[worker] = per_worker.get(worker, 0) + sample.value
    assert per_worker == {"0": 2, "1": 3}


async def test_sigterm_stops_the_supervisor_and_every_worker(
    tmp_path: Path, served: list[Served]
) -> None:
    server = await start(tmp_path, served)
    workers = server.workers().values()
    assert await server.stop() == 0, server.log_text()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    with socket.socket() as again:
        again.bind(("127.0.0.1", server.lmtp_port))  # nothing holds the port any more
    assert "stopped" in server.log_text().splitlines()[-1]


async def test_a_port_another_process_listens_on_stops_start_up_before_any_worker(
    tmp_path: Path,
) -> None:
    """Workers bind with SO_REUSEPORT, which another such listener would not refuse."""
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(tmp_path, "mailpush_workers = 2\n", lmtp_port=port)
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "mailpush.cli", "serve", "-c", str(config)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"lmtp: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "--worker" not in result.stderr and "mailpush ready" not in result.stderr


# --- helpers --------------------------------------------------------------------------


def serving_pid(sock: socket.socket, candidates: Iterable[int]) -> int:
    """The process, of `candidates`, holding the server side of `sock`'s TCP connection."""
    client = sock.getsockname()[:2]
    server = sock.getpeername()[:2]
    wanted = (_proc_address(*server), _proc_address(*client))
    inodes = [
        fields[9]
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if (fields[1], fields[2]) == wanted
    ]
    assert inodes, f"no server side of {client} in /proc/net/tcp"
    target = f"socket:[{inodes[0]}]"
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == target:
                    return pid
    raise AssertionError(f"no worker holds the server side of {client}")


def listening_pids(port: int, candidates: Iterable[int]) -> set[int]:
    """The processes, of `candidates`, holding a socket that listens on `port` (IPv4)."""
    listening = {
        f"socket:[{fields[9]}]"
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if fields[3] == "0A" and fields[1].endswith(f":{port:04X}")
    }
    holders = set()
    for pid in candidates:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in listening:
                    holders.add(pid)
    return holders


def _proc_address(host: str, port: int) -> str:
    return f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"


def connection_served_by(port: int, wanted: int, workers: set[int]) -> smtplib.LMTP:
    """An LMTP connection worker `wanted` serves (the kernel spreads them over `workers`)."""
    for _ in range(200):
        client = smtplib.LMTP("127.0.0.1", port)
        if serving_pid(client.sock, workers) == wanted:
            return client
        client.quit()
    raise AssertionError(f"no connection to {port} was served by {wanted}")


def subjects_in_inbox(imap_port: int) -> list[bytes]:
    client = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    try:
        client.login("alice", "secret")
        client.select("INBOX")
        typ, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
        headers = [item[1] for item in data if isinstance(item, tuple)]
        return [header.split(b":", 1)[1].strip() for header in headers]
    finally:
        logout(client)


def mailpush(config: Path, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", *arguments, "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def logout(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        client.shutdown()


async def until(
    condition: Callable[[], object], what: str, task: asyncio.Task[None] | None = None
) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if task is not None and task.done():
            task.result()
        if time.monotonic() > deadline:
            pytest.fail(f"waited 30s for {what}")
        await asyncio.sleep(0.05)


def _children(parent: int) -> list[int]:
    children = []
    for path in Path("/proc").iterdir():
        if not path.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (path / "stat").read_text()
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(path.name))
    return children


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True
