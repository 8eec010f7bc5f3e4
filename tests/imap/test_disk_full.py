"""A full disk under the store: reads keep working, writes answer `NO [OVERQUOTA]`.

The store lives on a 2 MB tmpfs that the test fills with a file until the
kernel answers ENOSPC, which is what a real full disk looks like to SQLite.
Without root (or where mounting is refused) SQLite's `max_page_count` would
produce the same SQLITE_FULL, but not the same path through the file system,
so the test is skipped instead with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import imaplib
import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailpush.imap import ImapOptions, ImapServer
from mailpush.store import SqliteStore

from .conftest import PASSWORD, passwd_authenticator

MESSAGE = (
    b"From: Joe <joe@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Quarterly plan\r\n"
    b"Message-ID: <full@example.net>\r\n"
    b"\r\n"
    b"The plan for the next quarter.\r\n"
)


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted at `path`; skips the test where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the file system has no block left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return
    finally:
        os.close(fd)


@pytest.fixture
async def full_disk_stack(
    tmp_path: Path, users: Path
) -> AsyncIterator[tuple[SqliteStore, int, Path]]:
    with small_disk(tmp_path / "disk") as disk:
        store = SqliteStore(disk / "mail.db", fsync="never")
        store.open()
        imap = ImapServer(
            store,
            passwd_authenticator(users),
            ImapOptions(address="127.0.0.1", port=0, auth_failure_delay=0.01),
        )
        _, port = await imap.start()
        try:
            yield store, port, disk
        finally:
            await imap.stop(1.0)
            await asyncio.to_thread(store.close)


async def test_full_disk_keeps_reads_working_and_refuses_writes_with_overquota(
    full_disk_stack: tuple[SqliteStore, int, Path],
) -> None:
    store, port, disk = full_disk_stack

    def prepare() -> None:
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login("alice", PASSWORD)
        for _ in range(3):
            assert client.append("INBOX", "", None, MESSAGE)[0] == "OK"
        client.logout()
        # An empty WAL: from now on every write needs new blocks on the disk.
        with sqlite3.connect(store.path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        fill(disk / "filler")

    await asyncio.to_thread(prepare)

    def while_full() -> dict[str, tuple[str, list[object]]]:
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login("alice", PASSWORD)
        out = {
            # The appended messages are \Recent: SELECT would claim them (a write).
            "select": client.select("INBOX"),
            "fetch": client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"),
            "fetch_seen": client.fetch("1", "(BODY[TEXT])"),
            "search": client.search(None, "TEXT", '"next quarter"'),
            "store": client.store("1", "+FLAGS", "(\\Flagged)"),
            "append": client.append("INBOX", "", None, MESSAGE),
            "create": client.create("Projects"),
            "examine": client.select("INBOX", readonly=True),
        }
        client.logout()
        return out

    full = await asyncio.to_thread(while_full)
    assert full["select"][0] == "OK", full["select"]
    assert full["examine"][0] == "OK", full["examine"]
    assert full["fetch"][0] == "OK", full["fetch"]
    assert b"Quarterly plan" in full["fetch"][1][0][1]  # type: ignore[index]
    assert full["fetch_seen"][0] == "OK", full["fetch_seen"]
    assert full["search"] == ("OK", [b"1 2 3"])
    for write in ("store", "append", "create"):
        status, data = full[write]
        assert status == "NO", (write, data)
        assert data[0].startswith(b"[OVERQUOTA]"), (write, data)  # type: ignore[union-attr]

    (disk / "filler").unlink()

    def after_freeing() -> dict[str, tuple[str, list[object]]]:
        client = imaplib.IMAP4("127.0.0.1", port)
        client.login("alice", PASSWORD)
        client.select("INBOX")
        out = {
            "store": client.store("1", "+FLAGS", "(\\Flagged)"),
            "append": client.append("INBOX", "", None, MESSAGE),
            "create": client.create("Projects"),
        }
        client.logout()
        return out

    freed = await asyncio.to_thread(after_freeing)
    for write in ("store", "append", "create"):
        assert freed[write][0] == "OK", (write, freed[write])
