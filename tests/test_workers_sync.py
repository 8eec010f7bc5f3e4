"""A command's answer reports what another worker committed before it was sent.

Two IMAP connections served by different workers (docs/operations.md#workers):
what one commits reaches the other through the change feed, an announcement
sent before the committing client's answer, which the other worker's loop
may yet read after the NOOP that follows it. A client that saw its APPEND or
EXPUNGE answered on one connection and then sent NOOP on the other must hear
of it in that NOOP's answer, as Dovecot's index sync at the end of every
command tells it. imaptest's `close`, `copy` and `expunge2` scripts do
exactly this, and failed against two workers before.
"""

from __future__ import annotations

import asyncio
import imaplib
from pathlib import Path

from tests.test_workers import Served, logout, served, serving_pid, start

__all__ = ["served"]  # the fixture, for pytest

ROUNDS = 25
MESSAGE = b"From: a@example.org\r\nSubject: synced\r\n\r\nbody\r\n"


def other_worker_session(port: int, avoid: int, pids: set[int]) -> imaplib.IMAP4:
    """An IMAP connection served by a worker other than `avoid`."""
    for _ in range(200):
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        if serving_pid(client.sock, pids) != avoid:
            return client
        logout(client)
    raise AssertionError("no IMAP connection reached the other worker")


def noop_reports(client: imaplib.IMAP4, name: str) -> list[bytes]:
    """The untagged `name` responses NOOP's answer carried."""
    client.untagged_responses.pop(name, None)
    typ, _ = client.noop()
    assert typ == "OK"
    return [value for value in client.untagged_responses.pop(name, []) if value is not None]


async def test_noop_on_one_worker_reports_an_append_and_an_expunge_made_through_the_other(
    tmp_path: Path, served: list[Served]
) -> None:
    server = await start(tmp_path, served)
    pids = set(server.workers().values())

    def exercise() -> None:
        writer = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
        writing = serving_pid(writer.sock, pids)
        reader = other_worker_session(server.imap_port, writing, pids)
        try:
            for client in (writer, reader):
                client.login("alice", "secret")
                client.select("INBOX")
            for count in range(1, ROUNDS + 1):
                typ, _ = writer.append("INBOX", None, None, MESSAGE)
                assert typ == "OK"
                assert noop_reports(reader, "EXISTS") == [str(count).encode()], count
            for remaining in range(ROUNDS, 0, -1):
                writer.store(str(remaining), "+FLAGS", "(\\Deleted)")
                writer.expunge()
                assert noop_reports(reader, "EXPUNGE") == [str(remaining).encode()], remaining
        finally:
            logout(reader)
            logout(writer)

    await asyncio.to_thread(exercise)
