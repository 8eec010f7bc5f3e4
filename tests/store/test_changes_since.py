"""`changes_since`: what changed in a mailbox after a modseq, read from the store alone.

A CONDSTORE/QRESYNC client resynchronising, and an IMAP session hearing that
another process committed something, both ask it; it must name new and
re-flagged messages and every expunged UID (EXPUNGE, MOVE, renaming INBOX)
with a modseq above the one asked about, reading one mailbox's rows only.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpush.store import NewMessage, SqliteStore
from mailpush.store import flags as F

RAW = b"Subject: s\r\n\r\nbody\r\n"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    mail = SqliteStore(tmp_path / "mail.db", fsync="never")
    mail.open()
    yield mail
    await asyncio.to_thread(mail.close)


async def test_changes_since_names_new_and_reflagged_messages_and_expunged_uids(
    store: SqliteStore,
) -> None:
    await store.append("alice", "INBOX", [NewMessage(RAW)] * 4)
    since = (await store.status("alice", "INBOX")).highestmodseq
    flagged = await store.update_flags("alice", "INBOX", [2], "add", F.FLAGGED)
    await store.update_flags("alice", "INBOX", [3], "add", F.DELETED)
    expunged = await store.expunge("alice", "INBOX")
    saved = await store.append("alice", "INBOX", [NewMessage(RAW)])

    changes = await store.changes_since("alice", "INBOX", since)

    assert [(m.uid, m.flags, m.modseq) for m in changes.messages] == [
        (2, F.FLAGGED, flagged.changes[0].modseq),
        (5, 0, saved.messages[0].modseq),
    ]
    assert changes.expunged == (3,)
    status = await store.status("alice", "INBOX")
    assert (changes.highestmodseq, changes.uidvalidity, changes.uidnext) == (
        status.highestmodseq, status.uidvalidity, status.uidnext,
    )
    # Asked from the expunge's own modseq on, only what came after it.
    later = await store.changes_since("alice", "INBOX", expunged.modseq)
    assert ([m.uid for m in later.messages], later.expunged) == ([5], ())


async def test_moved_messages_are_expunged_uids_of_their_source(store: SqliteStore) -> None:
    await store.append("alice", "INBOX", [NewMessage(RAW)] * 2)
    await store.create_mailbox("alice", "Archive")
    since = (await store.status("alice", "INBOX")).highestmodseq
    await store.move("alice", "INBOX", [1], "Archive")

    assert (await store.changes_since("alice", "INBOX", since)).expunged == (1,)
    archive = await store.changes_since("alice", "Archive", 0)
    assert [m.uid for m in archive.messages] == [1]


async def test_renaming_inbox_expunges_its_uids_there(store: SqliteStore) -> None:
    await store.append("alice", "INBOX", [NewMessage(RAW)] * 2)
    since = (await store.status("alice", "INBOX")).highestmodseq
    await store.rename_mailbox("alice", "INBOX", "Old")

    assert (await store.changes_since("alice", "INBOX", since)).expunged == (1, 2)


async def test_a_deleted_mailbox_takes_its_expunged_uids_along(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "Box")
    await store.append("alice", "Box", [NewMessage(RAW)])
    await store.update_flags("alice", "Box", [1], "add", F.DELETED)
    await store.expunge("alice", "Box")
    await store.delete_mailbox("alice", "Box")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM expunged_messages").fetchone() == (0,)


def test_reads_stay_within_the_mailbox_and_seek_expunges_by_modseq(tmp_path: Path) -> None:
    """Never a scan of every user's mail: messages by the mailbox's primary-key range
    (no modseq index: it would slow STORE 1:*), expunges by (mailbox_id, modseq)."""
    store = SqliteStore(tmp_path / "mail.db", fsync="never")
    store.open()
    store.close()
    with sqlite3.connect(tmp_path / "mail.db") as conn:
        plans = [
            " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, (1, 5)))
            for sql in (
                "SELECT uid FROM messages WHERE mailbox_id = ? AND modseq > ?",
                "SELECT uid FROM expunged_messages WHERE mailbox_id = ? AND modseq > ?",
            )
        ]
    assert "USING INDEX sqlite_autoindex_messages_1 (mailbox_id=?)" in plans[0]
    assert "USING INDEX expunged_messages_modseq (mailbox_id=? AND modseq>?)" in plans[1]
