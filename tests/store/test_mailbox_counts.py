"""A mailbox's STATUS counts are kept on its row, and always equal what its messages say.

The counts are read inside every push-recording commit and by IMAP STATUS, so
they are kept by triggers (store/mailbox_counts.py) instead of counted each
time. These tests drive every kind of write the store makes, on both
backends, and after each one compare STATUS with a count of the messages
themselves; and they check that an upgraded file starts from the right
numbers.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from mailpush.errors import MailboxExistsError, MailboxNotFoundError
from mailpush.store import DeliveryTarget, MailStore, NewMessage, SqliteStore
from mailpush.store import flags as F
from mailpush.store.sqlite_mailbox_rows import mailbox_status
from tests.store.test_store_contract import open_store_instance, postgres_server, store

__all__ = ["open_store_instance", "postgres_server", "store"]  # fixtures, for pytest

MESSAGE = b"From: a@example.org\r\nSubject: counted\r\n\r\nbody\r\n"
BOXES = ("INBOX", "Work", "Later")


async def assert_counts_match_messages(store: MailStore, user: str) -> None:
    for info in await store.list_mailboxes(user):
        if "\\Noselect" in getattr(info, "attributes", ()):
            continue
        messages = await store.messages(user, info.name)
        status = await store.status(user, info.name)
        unseen = [m.uid for m in messages if not m.flags & F.SEEN]
        assert (status.messages, status.recent, status.unseen, status.first_unseen_uid) == (
            len(messages), sum(1 for m in messages if m.recent), len(unseen),
            min(unseen, default=None),
        ), info.name


async def test_status_counts_follow_every_kind_of_write(store: MailStore) -> None:
    """Deliveries, appends with and without \\Seen, flag changes, \\Recent taken, COPY,
    MOVE, EXPUNGE, RENAME of INBOX (its messages move), DELETE and re-CREATE: after each,
    STATUS says what the messages say."""
    rng = random.Random(7)
    user = "alice"
    await store.deliver(user, MESSAGE, [DeliveryTarget("INBOX")])
    for name in BOXES[1:]:
        await store.create_mailbox(user, name)

    async def uids(box: str) -> list[int]:
        return [m.uid for m in await store.messages(user, box)]

    for step in range(120):
        box, other = rng.sample(BOXES, 2)
        present = await uids(box)
        some = rng.sample(present, min(len(present), rng.randint(1, 4))) if present else []
        kind = rng.choice(
            ["deliver", "append", "seen", "unseen", "replace", "recent", "copy", "move",
             "expunge", "rename_inbox", "recreate"]
        )
        if kind == "deliver":
            await store.deliver(user, MESSAGE, [DeliveryTarget(box)])
        elif kind == "append":
            flags = rng.choice([0, F.SEEN, F.SEEN | F.FLAGGED, F.ANSWERED])
            await store.append(user, box, [NewMessage(MESSAGE, flags)] * rng.randint(1, 3))
        elif kind in ("seen", "unseen") and some:
            await store.update_flags(user, box, some, "add" if kind == "seen" else "remove",
                                     F.SEEN)
        elif kind == "replace" and some:
            await store.update_flags(user, box, some, "replace",
                                     rng.choice([0, F.SEEN, F.DELETED | F.SEEN]))
        elif kind == "recent":
            await store.take_recent(user, box)
        elif kind == "copy" and some:
            await store.copy(user, box, some, other)
        elif kind == "move" and some:
            await store.move(user, box, some, other)
        elif kind == "expunge" and some:
            await store.expunge(user, box, some)
        elif kind == "rename_inbox":
            # RENAME INBOX moves its messages into a new mailbox and leaves INBOX empty.
            name = f"Old{step}"
            await store.rename_mailbox(user, "INBOX", name)
            await assert_counts_match_messages(store, user)
            await store.delete_mailbox(user, name)
        elif kind == "recreate" and box != "INBOX":
            await store.delete_mailbox(user, box)
            try:
                await store.create_mailbox(user, box)
            except MailboxExistsError:
                pass
        await assert_counts_match_messages(store, user)


async def test_status_of_a_missing_mailbox_is_still_refused(store: MailStore) -> None:
    await store.deliver("alice", MESSAGE, [DeliveryTarget("INBOX")])
    try:
        await store.status("alice", "Nowhere")
    except MailboxNotFoundError:
        return
    raise AssertionError("STATUS of a missing mailbox answered")


def test_a_status_read_does_not_grow_with_the_mailbox(tmp_path: Path) -> None:
    """What every push-recording commit reads under the writers' lock: a lookup, not a
    count. 40,000 messages are no slower to report than 40."""
    path = tmp_path / "mail.sqlite"
    store = SqliteStore(path, fsync="never")
    store.open()
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO users (id, name) VALUES (1, 'big'), (2, 'small')")
        for box_id, user_id, count in ((1, 1, 40_000), (2, 2, 40)):
            conn.execute("INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext)"
                         " VALUES (?, ?, 'INBOX', 1, ?)", (box_id, user_id, count + 1))
            conn.execute("INSERT INTO bodies (id, refs, raw, summary) VALUES (?, ?, x'00', '')",
                         (box_id, count))
            conn.executemany(
                "INSERT INTO messages (mailbox_id, uid, body_id, size, internal_date, flags,"
                " modseq) VALUES (?, ?, ?, 1, 0, ?, 1)",
                [(box_id, uid, box_id, F.SEEN if uid < count else 0)
                 for uid in range(1, count + 1)],
            )

        def timed(user: str) -> float:
            start = time.perf_counter()
            for _ in range(50):
                status = mailbox_status(conn, user, "INBOX")
            assert status.unseen == 1 and status.first_unseen_uid == status.messages
            return time.perf_counter() - start

        timed("small"), timed("big")  # warm
        small, big = timed("small"), timed("big")
    # Counting 40,000 rows takes about 100 times as long as 40; a lookup the same.
    assert big < 5 * small + 0.002, (big, small)


def test_an_upgraded_file_starts_from_its_messages_counts(tmp_path: Path) -> None:
    """A version-6 file has no counts: the upgrade counts every mailbox once, and the
    triggers keep them from there."""
    path = tmp_path / "mail.sqlite"
    store = SqliteStore(path, fsync="never")
    store.open()
    store.close()
    with sqlite3.connect(path) as conn:
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER messages_counted_{trigger}")
        conn.execute("DROP INDEX messages_unseen")
        for column in ("message_count", "recent_count", "unseen_count"):
            conn.execute(f"ALTER TABLE mailboxes DROP COLUMN {column}")  # as version 6 was
        conn.execute("UPDATE schema_version SET version = 6")
        conn.execute("INSERT INTO users (id, name) VALUES (1, 'alice')")
        conn.execute("INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext)"
                     " VALUES (1, 1, 'INBOX', 1, 4)")
        conn.execute("INSERT INTO bodies (id, refs, raw, summary) VALUES (1, 3, x'00', '')")
        conn.executemany(
            "INSERT INTO messages (mailbox_id, uid, body_id, size, internal_date, flags,"
            " modseq, recent) VALUES (1, ?, 1, 1, 0, ?, 1, ?)",
            [(1, F.SEEN, 0), (2, 0, 1), (3, 0, 1)],
        )
    store = SqliteStore(path, fsync="never")
    store.open()
    try:
        with sqlite3.connect(path) as conn:
            status = mailbox_status(conn, "alice", "INBOX")
            assert (status.messages, status.recent, status.unseen, status.first_unseen_uid) == (
                3, 2, 2, 2
            )
            conn.execute("DELETE FROM messages WHERE uid = 2")
            status = mailbox_status(conn, "alice", "INBOX")  # the triggers are back
            assert (status.messages, status.recent, status.unseen) == (2, 1, 1)
    finally:
        store.close()
