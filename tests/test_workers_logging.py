"""With `mailpush_workers` > 1 every line a worker writes says which worker wrote it
(docs/operations.md#workers, `mailpush.logs.worker_tag`).

The formatter and the syslog writer first, in this process: `worker1: ` before
a file line's prefix, `dovecot(worker1)` as the syslog ident, nothing for a
lone server. Then the real `mailpush serve` with two workers and a
`log_path`: an IMAP login served by each worker (which one is read from the
kernel, tests/test_workers.py) logs a line carrying that worker's tag, and
the `mpid=` in it is that worker's pid.
"""

from __future__ import annotations

import asyncio
import contextvars
import imaplib
import logging
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from mailpush.logs import worker_tag
from mailpush.logs.line_format import DovecotLineFormatter
from mailpush.logs.session import LogSession, enter_session
from mailpush.logs.syslog import SyslogSocketHandler

from .test_logging_destinations import syslog_socket
from .test_logging_fail2ban import wait_for_lines
from .test_workers import Served, logout, served, serving_pid, start

__all__ = ["served", "syslog_socket"]  # the fixtures, for pytest

T = TypeVar("T")
STAMP = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "


@pytest.fixture
def as_worker_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process is worker 1 for the test (and a lone server again after it)."""
    monkeypatch.setattr(worker_tag, "_TAG", "")
    worker_tag.name_worker_in_log(1)


def imap_login_record() -> logging.LogRecord:
    return logging.LogRecord(
        "mailpush.imap.login_log", logging.INFO, __file__, 1,
        "Login: user=<%s>, method=PLAIN, rip=127.0.0.1", ("alice",), None,
    )  # fmt: skip


def in_imap_login_session(action: Callable[[], T]) -> T:
    """`action` run as a connection's task would, in its `imap-login` session."""

    def run() -> T:
        enter_session(LogSession("imap-login"))
        return action()

    return contextvars.copy_context().run(run)


def formatted(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    return in_imap_login_session(lambda: formatter.format(record))


# --- the line's shape -------------------------------------------------------------------


def test_a_lone_servers_file_line_names_no_worker() -> None:
    line = formatted(DovecotLineFormatter("%b %d %H:%M:%S "), imap_login_record())
    assert re.fullmatch(STAMP + r"imap-login: Info: Login: user=<alice>, method=PLAIN, "
                        r"rip=127\.0\.0\.1", line), line  # fmt: skip


def test_a_workers_file_line_names_it_before_the_prefix(as_worker_1: None) -> None:
    line = formatted(DovecotLineFormatter("%b %d %H:%M:%S "), imap_login_record())
    assert re.fullmatch(STAMP + r"worker1: imap-login: Info: Login: user=<alice>, "
                        r"method=PLAIN, rip=127\.0\.0\.1", line), line  # fmt: skip
    outside = logging.LogRecord("mailpush.server", logging.WARNING, __file__, 1, "x", None, None)
    assert DovecotLineFormatter().format(outside) == "worker1: mailpush.server: Warning: x"


def test_a_workers_syslog_line_names_it_in_the_ident(
    as_worker_1: None, syslog_socket: tuple[socket.socket, str]
) -> None:
    receiver, path = syslog_socket
    handler = SyslogSocketHandler("mail", path)
    handler.setFormatter(DovecotLineFormatter(for_syslog=True))
    try:
        in_imap_login_session(lambda: handler.emit(imap_login_record()))
    finally:
        handler.close()
    datagram = receiver.recv(65536).decode()
    # The tag is in the ident only: not a second time before `imap-login`.
    assert re.fullmatch(r"<22>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d dovecot\(worker1\): "
                        r"imap-login: Login: user=<alice>, method=PLAIN, rip=127\.0\.0\.1",
                        datagram), datagram  # fmt: skip


# --- the real server --------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")
async def test_each_workers_lines_carry_its_tag_and_the_supervisors_none(
    tmp_path: Path, served: list[Served]
) -> None:
    log = tmp_path / "log" / "mailpush.log"
    server = await start(tmp_path, served, f"log_path = {log}\n")
    workers = server.workers()
    index_of = {pid: index for index, pid in workers.items()}

    def log_in_once_on_each_worker() -> None:
        logged_in: set[int] = set()
        for _ in range(200):
            client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
            pid = serving_pid(client.sock, index_of)
            if pid not in logged_in:
                client.login("alice", "secret")
                logged_in.add(pid)
            logout(client)
            if len(logged_in) == len(workers):
                return
        raise AssertionError(f"the kernel gave every connection to {logged_in}")

    await asyncio.to_thread(log_in_once_on_each_worker)
    lines = await asyncio.to_thread(wait_for_lines, log, " Info: Login: user=<alice>", 2)

    logins = [
        re.fullmatch(STAMP + r"worker(\d): imap-login: Info: Login: user=<alice>, .*"
                     r" mpid=(\d+), .*", line)
        for line in lines if " Login: user=<alice>" in line
    ]  # fmt: skip
    assert all(logins), "\n".join(lines)
    assert {int(m[1]) for m in logins if m} == {0, 1}
    for match in logins:
        assert match is not None
        assert index_of[int(match[2])] == int(match[1]), match[0]
    # Each worker says it is ready; the supervisor, not a worker, says all are.
    for index in workers:
        assert any(
            re.fullmatch(STAMP + f"worker{index}: mailpush.server: Info: mailpush ready", line)
            for line in lines
        ), "\n".join(lines)
    assert any(
        re.fullmatch(STAMP + r"mailpush\.workers: Info: mailpush ready: 2 workers .*", line)
        for line in lines
    ), "\n".join(lines)

