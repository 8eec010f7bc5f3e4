"""A data directory written by the previous schema (version 3) opens, migrates and works.

The version-3 file is made from that version's own `schema.sql`
(tests/store/schema_v3.sql, as released), with mail and a pending push in it
in that version's forms: bodies without summaries, an outbox row holding a
version-1 transaction with its events. Opening it with this mailpush must
keep every message readable, deliver the pending push, and give an old
message's COPY the same event fields a new delivery gets (the migration
computed its summary).
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import pytest

from mailpush.config import load_settings
from mailpush.drivers import DriverRegistry, PushDriver
from mailpush.errors import StoreError
from mailpush.events import PushEvent, PushTransaction, transaction_to_json
from mailpush.events.mapping import transactions_for_change
from mailpush.mime import summarize
from mailpush.server import STORE_FILE, MailpushServer
from mailpush.store import MessagesSaved, SavedMessage, SqliteStore
from mailpush.store import flags as F
from mailpush.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION

from ..conftest import write_config

SCHEMA_V3 = Path(__file__).with_name("schema_v3.sql")
OLD_RAW = (
    b"From: Old Sender <old@example.net>\r\nTo: alice@example.org\r\n"
    b"Subject: =?UTF-8?Q?fr=C3=BCher?=\r\nMessage-ID: <old-1@example.net>\r\n\r\nkept body\r\n"
)
UIDVALIDITY = 1_700_000_000


class RecordingDriver(PushDriver):
    """Keeps every transaction with its events, as the dispatcher hands them over."""

    name = "recording"
    received: ClassVar[list[PushTransaction]] = []

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        self.received.append(txn)
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        return None


def write_version_3_store(path: Path) -> PushTransaction:
    """A version-3 file with alice's INBOX (one message) and one pending push; the push."""
    saved = SavedMessage(1, F.SEEN, ("$Old",), len(OLD_RAW), 1_700_000_100, 2, summarize(OLD_RAW))
    (pending,) = transactions_for_change(
        MessagesSaved("alice", "INBOX", UIDVALIDITY, (saved,), delivery=True),
        new_id=lambda: "pending-before-upgrade", now=lambda: 1_700_000_100.0,
    )
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V3.read_text())
        conn.execute("INSERT INTO schema_version VALUES (3)")
        conn.execute("INSERT INTO users (id, name, uidvalidity_last) VALUES (1, 'alice', ?)",
                     (UIDVALIDITY,))
        conn.execute("INSERT INTO mailboxes (id, user_id, name, uidvalidity, uidnext,"
                     " highestmodseq) VALUES (1, 1, 'INBOX', ?, 2, 2)", (UIDVALIDITY,))
        conn.execute("INSERT INTO bodies (id, refs, raw) VALUES (1, 1, ?)", (OLD_RAW,))
        conn.execute("INSERT INTO messages (mailbox_id, uid, body_id, size, internal_date,"
                     " flags, keywords, modseq, recent) VALUES (1, 1, 1, ?, 1700000100, ?,"
                     " '$Old', 2, 0)", (len(OLD_RAW), F.SEEN))
        conn.execute("INSERT INTO mailbox_keywords VALUES (1, '$old', '$Old')")
        # The version-1 stored form: the transaction with its events, as version 3 wrote it.
        conn.execute("INSERT INTO push_outbox (id, txn_id, user_name, created, payload)"
                     " VALUES (1, ?, 'alice', ?, ?)",
                     (pending.id, pending.created, transaction_to_json(pending)))
        conn.execute("INSERT INTO push_deliveries (outbox_id, driver, user_name, state,"
                     " next_attempt) VALUES (1, 'recording', 'alice', 'pending', 0)")
    return pending


def test_migrations_are_one_ordered_step_per_version() -> None:
    versions = [migration.version for migration in MIGRATIONS]
    assert versions == list(range(2, SCHEMA_VERSION + 1))


async def test_a_version_3_data_dir_opens_keeps_its_mail_and_delivers_its_pending_push(
    tmp_path: Path,
) -> None:
    RecordingDriver.received = []
    config = write_config(tmp_path, textwrap.dedent("""\
        mail_plugins = $mail_plugins notify push_notification
        plugin {
          push_notification_driver = recording
        }
        """))
    settings = load_settings(config).settings
    pending = write_version_3_store(settings.data_dir / STORE_FILE)

    server = MailpushServer(settings, registry=DriverRegistry([RecordingDriver]))
    await server.start()
    try:
        store = server.store
        assert store is not None
        (info,) = await store.messages("alice", "INBOX")
        assert (info.uid, info.flags, info.keywords) == (1, F.SEEN, ("$Old",))
        assert await store.raw_message("alice", "INBOX", 1) == OLD_RAW
        await store.create_mailbox("alice", "Archive")
        await store.copy("alice", "INBOX", [1], "Archive")
        async with asyncio.timeout(10):
            while len(RecordingDriver.received) < 3:
                await asyncio.sleep(0.02)
    finally:
        await server.stop()

    delivered, created, copied = RecordingDriver.received
    assert delivered == pending  # the version-1 row, read back exactly
    assert created.events[0].name == "MailboxCreate"
    (event,) = copied.events
    assert (event.name, event.mailbox, event.uid, event.flags, event.keywords) == (
        "MessageAppend", "Archive", 1, ("\\Seen",), ("$Old",)
    )
    # The summary the migration computed is what the old message's delivery carried.
    assert event.message == pending.events[0].message
    assert event.message is not None and event.message.subject == "früher"


async def test_a_version_3_store_gains_the_expunge_record_qresync_reads(tmp_path: Path) -> None:
    """Version 5: an expunge after the upgrade is remembered with its modseq; the old
    message keeps its modseq, so a resync from before the upgrade still sees it change."""
    path = tmp_path / "mail.sqlite"
    write_version_3_store(path)
    store = SqliteStore(path, fsync="never")
    store.open()
    try:
        assert [(i.uid, i.modseq) for i in await store.messages("alice", "INBOX")] == [(1, 2)]
        await store.update_flags("alice", "INBOX", [1], "add", F.DELETED)
        expunged = await store.expunge("alice", "INBOX")
        changes = await store.changes_since("alice", "INBOX", 2)
    finally:
        await asyncio.to_thread(store.close)
    assert changes.expunged == (1,)
    assert changes.highestmodseq == expunged.modseq == 4
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    indexes = {row[0] for row in rows}
    assert "expunged_messages_modseq" in indexes


def test_store_migrate_runs_the_migrations_alone_and_reports_them(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    settings = load_settings(config).settings
    path = settings.data_dir / STORE_FILE
    write_version_3_store(path)

    result = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", "store", "migrate", "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"schema 3 → {SCHEMA_VERSION}" in result.stdout
    assert "message summaries stored with the bodies" in result.stdout
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        (summary,) = conn.execute("SELECT summary FROM bodies").fetchone()
        assert "früher" in summary
        # Alone: the pending push is still pending, nothing was claimed or delivered.
        assert conn.execute("SELECT state FROM push_deliveries").fetchone() == ("pending",)

    again = subprocess.run(
        [sys.executable, "-m", "mailpush.cli", "store", "migrate", "-c", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert f"schema {SCHEMA_VERSION} is current" in again.stdout


async def test_a_store_newer_than_this_mailpush_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mail.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    store = SqliteStore(path, fsync="never")
    with pytest.raises(StoreError, match="upgrade mailpush to open it") as refused:
        store.open()
    assert str(path) in str(refused.value)
