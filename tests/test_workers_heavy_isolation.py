"""`mailpush_workers = 2`: a heavy IMAP command in one worker, fast deliveries in the other.

Each worker is a whole server on the same store (docs/operations.md#workers).
Here a `SEARCH TEXT` decodes some 25 MB of RFC 2047 headers for seconds in the
worker serving that IMAP session, while LMTP deliveries into the very mailbox
being searched go to the other worker. They must not wait for the SEARCH: the
bound on their latency is derived from a baseline measured on the same
connection just before, so a loaded machine widens it, while a delivery that
waited for the SEARCH would exceed it by seconds.

The control run (`MAILPUSH_CHECK_STALL_CONTROL=1`) shows the check can fail:
with the heavy work put back on the event loop and both connections on the
same worker, the same measurement sees the deliveries wait.

Which worker serves a connection is read from the kernel, as in
tests/test_workers.py: the process holding the server side of the TCP
connection.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import smtplib
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .test_workers import Served, connection_served_by, logout, serving_pid

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")

#: 200 messages of some 120 kB, nearly all of it encoded words SEARCH TEXT decodes one
#: by one: 2-3 s of SEARCH on an idle 2-core machine, 0.7 s to deliver them.
MESSAGES = 200
NOTE_HEADERS = 2_000
FILL_CONNECTIONS = 4
#: Only message 0 (sequence number 1, delivered first) has it in its Subject.
SEARCHED = '"Report 0"'
BASELINE_DELIVERIES = 20
#: A delivery may take this many times the baseline's median, and never less than
#: `LEAST_BOUND` seconds: a scheduling hiccup on a busy machine is not a stall.
SLOWDOWN = 10
LEAST_BOUND = 0.5
#: Between two deliveries: a steady stream, not a load test of the delivering worker.
PAUSE = 0.01
#: Deliveries that must both start and end while the SEARCH runs, or it proved nothing.
OVERLAPPING = 5

#: Put on PYTHONPATH, it makes every worker parse mail on its event loop again, as
#: before the heavy-work pool existed: the control run, where deliveries must wait.
ON_THE_LOOP = """\
from mailpush.imap.heavy_work import HeavyWork


async def _run_on_the_loop(self, function, *args):
    return function(*args)


HeavyWork.run = _run_on_the_loop
"""


async def test_a_heavy_search_on_one_worker_leaves_deliveries_on_the_other_fast(
    tmp_path: Path,
) -> None:
    async with supervised(tmp_path) as server:
        measured = await deliveries_during_a_heavy_search(server, same_worker=False)

    assert measured.found == [b"1"], measured.found
    assert measured.slowest < measured.bound, measured.report()
    assert len(measured.overlapping) >= OVERLAPPING, (
        f"the SEARCH ended before the deliveries could overlap it: more mail. {measured.report()}"
    )
    assert measured.search.took > 2 * measured.bound, (
        f"a delivery stalled by the SEARCH would not exceed the bound: more mail. "
        f"{measured.report()}"
    )


@pytest.mark.skipif(
    not os.environ.get("MAILPUSH_CHECK_STALL_CONTROL"),
    reason="a check of the test, not of mailpush: MAILPUSH_CHECK_STALL_CONTROL=1 runs it",
)
async def test_control_deliveries_stalled_by_a_search_on_their_loop_exceed_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patched = tmp_path / "on-the-loop"
    patched.mkdir()
    (patched / "sitecustomize.py").write_text(ON_THE_LOOP)
    # The supervisor and its workers (and their pools) inherit the test's environment.
    monkeypatch.setenv("PYTHONPATH", str(patched), prepend=os.pathsep)
    async with supervised(tmp_path) as server:
        measured = await deliveries_during_a_heavy_search(server, same_worker=True)

    assert measured.found == [b"1"], measured.found
    assert measured.slowest > measured.bound, measured.report()


# --- the scenario -----------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """When something started and ended, in `time.monotonic()` seconds."""

    started: float
    ended: float

    @property
    def took(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class Measured:
    """Delivery latencies before and during one SEARCH, and what the SEARCH found."""

    baseline: list[float]
    search: Timed
    found: list[bytes]
    during: list[Timed]

    @property
    def bound(self) -> float:
        return max(SLOWDOWN * statistics.median(self.baseline), LEAST_BOUND)

    @property
    def slowest(self) -> float:
        """The slowest delivery, not a percentile: they go one at a time, so a stalled
        worker holds back a single one, however many ran before it."""
        return max(delivery.took for delivery in self.during)

    @property
    def overlapping(self) -> list[Timed]:
        """The deliveries that started and ended while the SEARCH ran."""
        return [
            delivery
            for delivery in self.during
            if delivery.started >= self.search.started and delivery.ended <= self.search.ended
        ]

    def report(self) -> str:
        took = sorted(round(delivery.took * 1000, 1) for delivery in self.during)
        return (
            f"baseline median {statistics.median(self.baseline) * 1000:.1f} ms, "
            f"bound {self.bound * 1000:.0f} ms; SEARCH took {self.search.took:.2f} s; "
            f"{len(took)} deliveries meanwhile ({len(self.overlapping)} inside it), "
            f"median {statistics.median(took)} ms, slowest {took[-5:]} ms"
        )


async def deliveries_during_a_heavy_search(server: Served, same_worker: bool) -> Measured:
    """Alice's SEARCH TEXT over her filled INBOX on one worker; deliveries into that INBOX
    timed on a connection to the other worker (or to the same one, `same_worker`)."""
    workers = set(server.workers().values())
    await asyncio.to_thread(fill_inbox, server.lmtp_port)
    imap = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", server.imap_port, timeout=60)
    lmtp: smtplib.LMTP | None = None
    try:
        searching = serving_pid(imap.sock, workers)
        await asyncio.to_thread(select_inbox_and_start_the_pool, imap)
        delivering = searching if same_worker else (workers - {searching}).pop()
        lmtp = await asyncio.to_thread(connection_served_by, server.lmtp_port, delivering, workers)
        baseline = [
            (await asyncio.to_thread(deliver, lmtp, f"baseline {number}")).took
            for number in range(BASELINE_DELIVERIES)
        ]
        searched = threading.Event()
        search = asyncio.create_task(asyncio.to_thread(search_text, imap, searched))
        during = await asyncio.to_thread(deliver_until, lmtp, searched)
        timed, found = await search
        return Measured(baseline, timed, found, during)
    finally:
        if lmtp is not None:
            await asyncio.to_thread(lmtp.quit)
        await asyncio.to_thread(logout, imap)


def fill_inbox(lmtp_port: int) -> None:
    """Message 0 first, so that it is sequence number 1; then the rest on several connections."""

    def deliver_each(numbers: range) -> None:
        with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
            for number in numbers:
                client.sendmail("joe@example.net", ["alice"], message(number))

    deliver_each(range(1))
    with ThreadPoolExecutor(FILL_CONNECTIONS) as connections:
        shares = [
            range(first, MESSAGES, FILL_CONNECTIONS) for first in range(1, 1 + FILL_CONNECTIONS)
        ]
        list(connections.map(deliver_each, shares))  # list(): a failed share raises here


def message(number: int) -> bytes:
    notes = b"".join(
        b"X-Note-%d: =?utf-8?q?caf=C3=A9_cr=C3=A8me_=E2=82=AC_%d?=\r\n" % (i, number)
        for i in range(NOTE_HEADERS)
    )
    head = b"From: Joe <joe@example.net>\r\nTo: alice@example.org\r\nSubject: Report %d\r\n"
    body = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit %d\r\n"
    return head % number + notes + b"\r\n" + body % number


def select_inbox_and_start_the_pool(imap: imaplib.IMAP4) -> None:
    """Log in and select; a small SEARCH TEXT starts the worker's pool, whose start
    (two interpreters) is not what the deliveries are measured against."""
    imap.login("alice", "secret")
    status, data = imap.select("INBOX", readonly=True)
    assert status == "OK" and int(data[0] or 0) == MESSAGES, data
    status, data = imap.search(None, "1:2", "TEXT", SEARCHED)
    assert (status, data) == ("OK", [b"1"])


def search_text(imap: imaplib.IMAP4, searched: threading.Event) -> tuple[Timed, list[bytes]]:
    try:
        started = time.monotonic()
        status, data = imap.search(None, "TEXT", SEARCHED)
        ended = time.monotonic()
    finally:
        searched.set()
    assert status == "OK", data
    return Timed(started, ended), data


def deliver_until(lmtp: smtplib.LMTP, searched: threading.Event) -> list[Timed]:
    """Deliveries one after another, `PAUSE` apart, until the SEARCH has answered."""
    took: list[Timed] = []
    deadline = time.monotonic() + 60
    while not searched.wait(PAUSE) and time.monotonic() < deadline:
        took.append(deliver(lmtp, f"during {len(took)}"))
    return took


def deliver(lmtp: smtplib.LMTP, subject: str) -> Timed:
    started = time.monotonic()
    lmtp.sendmail(
        "joe@example.net",
        ["alice"],
        f"From: joe@example.net\r\nSubject: {subject}\r\n\r\nHello Alice\r\n".encode(),
    )
    return Timed(started, time.monotonic())


@asynccontextmanager
async def supervised(tmp_path: Path) -> AsyncIterator[Served]:
    """`mailpush serve` with two workers, stopped on the way out."""
    server = Served(tmp_path)
    try:
        await server.start()
        assert sorted(server.workers()) == [0, 1]
        yield server
    finally:
        await server.stop()
