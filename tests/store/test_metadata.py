"""RFC 5464 METADATA in the store: server and mailbox entries, limits, no push events."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from mailpush.errors import (
    InvalidMetadataEntryError,
    MailboxNotFoundError,
    MetadataValueTooLargeError,
    TooManyMetadataEntriesError,
)
from mailpush.store import Change, OutboxEntry, SqliteStore
from mailpush.store.sqlite_store import SCHEMA_VERSION
from mailpush.store.sqlite_writer import StatusAt

OX_OPT_IN = "/private/vendor/vendor.dovecot/http-notify"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "mail.db", fsync="never")
    s.open()
    yield s
    await asyncio.to_thread(s.close)


async def test_server_entries_are_set_read_and_unset_per_user(store: SqliteStore) -> None:
    assert await store.get_metadata("alice", None, OX_OPT_IN) is None
    await store.set_metadata("alice", None, OX_OPT_IN, "user=11@3")
    assert await store.get_metadata("alice", None, OX_OPT_IN) == "user=11@3"
    assert await store.get_metadata("bob", None, OX_OPT_IN) is None
    await store.set_metadata("alice", None, OX_OPT_IN, "user=12@3")
    assert await store.get_metadata("alice", None, OX_OPT_IN) == "user=12@3"
    await store.set_metadata("alice", None, OX_OPT_IN, None)
    assert await store.get_metadata("alice", None, OX_OPT_IN) is None
    await store.set_metadata("alice", None, OX_OPT_IN, None)  # unsetting twice is no error


async def test_entry_names_are_case_insensitive_and_kept_lower_case(
    store: SqliteStore,
) -> None:
    await store.set_metadata("alice", None, "/Private/Comment", "hello")
    assert await store.get_metadata("alice", None, "/PRIVATE/comment") == "hello"
    assert await store.list_metadata("alice", None) == {"/private/comment": "hello"}


async def test_private_and_shared_are_separate_entries(store: SqliteStore) -> None:
    await store.set_metadata("alice", None, "/private/comment", "mine")
    await store.set_metadata("alice", None, "/shared/comment", "everyone's")
    assert await store.get_metadata("alice", None, "/private/comment") == "mine"
    assert await store.get_metadata("alice", None, "/shared/comment") == "everyone's"


async def test_values_keep_empty_strings_nul_bytes_and_unicode(store: SqliteStore) -> None:
    values = {"/private/empty": "", "/private/nul": "a\x00b", "/private/text": "Grüße ✓"}
    for entry, value in values.items():
        await store.set_metadata("alice", None, entry, value)
    assert await store.list_metadata("alice", None) == values


async def test_list_returns_the_prefix_and_everything_below_it_only(
    store: SqliteStore,
) -> None:
    for entry in ("/private/a", "/private/a/b", "/private/a/b/c", "/private/ab", "/shared/a"):
        await store.set_metadata("alice", None, entry, entry.upper())
    assert list(await store.list_metadata("alice", None, "/private/a")) == [
        "/private/a", "/private/a/b", "/private/a/b/c",
    ]
    assert list(await store.list_metadata("alice", None, "/PRIVATE")) == [
        "/private/a", "/private/a/b", "/private/a/b/c", "/private/ab",
    ]
    assert len(await store.list_metadata("alice", None)) == 5
    assert await store.list_metadata("bob", None) == {}


@pytest.mark.parametrize(
    "entry",
    ["comment", "/comment", "/private", "/shared", "/private/", "/private//x",
     "/private/a*", "/private/a%", "/private/a\x01", "/vendor/x"],
)
async def test_names_rfc_5464_forbids_are_refused(store: SqliteStore, entry: str) -> None:
    with pytest.raises(InvalidMetadataEntryError):
        await store.set_metadata("alice", None, entry, "x")
    with pytest.raises(InvalidMetadataEntryError):
        await store.get_metadata("alice", None, entry)


async def test_a_bare_root_is_a_valid_list_prefix(store: SqliteStore) -> None:
    await store.set_metadata("alice", None, "/shared/x", "1")
    assert await store.list_metadata("alice", None, "/shared") == {"/shared/x": "1"}
    with pytest.raises(InvalidMetadataEntryError):
        await store.list_metadata("alice", None, "/other")


async def test_mailbox_entries_are_separate_from_server_entries(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")
    await store.set_metadata("alice", "inbox", "/private/comment", "box")
    await store.set_metadata("alice", None, "/private/comment", "server")
    assert await store.get_metadata("alice", "INBOX", "/private/comment") == "box"
    assert await store.get_metadata("alice", None, "/private/comment") == "server"
    assert await store.list_metadata("alice", "INBOX") == {"/private/comment": "box"}


async def test_a_missing_mailbox_is_refused_for_reads_and_writes(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "Parent/Child")  # Parent exists only as \Noselect
    for mailbox in ("Nope", "Parent"):
        with pytest.raises(MailboxNotFoundError):
            await store.set_metadata("alice", mailbox, "/private/comment", "x")
        with pytest.raises(MailboxNotFoundError):
            await store.get_metadata("alice", mailbox, "/private/comment")
        with pytest.raises(MailboxNotFoundError):
            await store.list_metadata("alice", mailbox)
    with pytest.raises(MailboxNotFoundError):
        await store.get_metadata("nobody", "INBOX", "/private/comment")


async def test_mailbox_entries_follow_a_rename_with_children(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "Work")
    await store.create_mailbox("alice", "Work/Reports")
    await store.set_metadata("alice", "Work", "/private/comment", "parent")
    await store.set_metadata("alice", "Work/Reports", "/shared/comment", "child")
    await store.rename_mailbox("alice", "Work", "Archive/Work")
    assert await store.get_metadata("alice", "Archive/Work", "/private/comment") == "parent"
    assert await store.list_metadata("alice", "Archive/Work/Reports") == {
        "/shared/comment": "child"
    }
    with pytest.raises(MailboxNotFoundError):
        await store.get_metadata("alice", "Work", "/private/comment")


async def test_mailbox_entries_go_with_the_mailbox(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "Box")
    await store.set_metadata("alice", "Box", "/private/comment", "old")
    await store.delete_mailbox("alice", "Box")
    await store.create_mailbox("alice", "Box")
    assert await store.list_metadata("alice", "Box") == {}


async def test_metadata_writes_record_no_change_and_no_push_transaction(
    tmp_path: Path,
) -> None:
    recorded: list[Change] = []

    def recorder(changes: Sequence[Change], status: StatusAt) -> list[OutboxEntry]:
        recorded.extend(changes)
        return [OutboxEntry(change.user, b"x", ("lua",)) for change in changes]

    store = SqliteStore(tmp_path / "mail.db", fsync="never", recorder=recorder)
    store.open()
    published: list[Change] = []
    store.hub.subscribe(published.append)
    try:
        await store.create_mailbox("alice", "INBOX")
        recorded.clear()
        await store.set_metadata("alice", None, OX_OPT_IN, "user=1")
        await store.set_metadata("alice", "INBOX", "/private/comment", "x")
        await store.set_metadata("alice", "INBOX", "/private/comment", None)
        await asyncio.sleep(0.05)  # let any hub publication arrive
    finally:
        await asyncio.to_thread(store.close)
    assert recorded == []
    assert [type(c).__name__ for c in published] == ["MailboxCreated"]
    rows = sqlite3.connect(tmp_path / "mail.db").execute("SELECT COUNT(*) FROM push_outbox")
    assert rows.fetchone()[0] == 1  # only the mailbox creation


async def test_a_value_over_the_size_limit_is_refused(store: SqliteStore) -> None:
    limit = store.metadata.max_value_size
    await store.set_metadata("alice", None, "/private/big", "x" * limit)
    with pytest.raises(MetadataValueTooLargeError) as caught:
        await store.set_metadata("alice", None, "/private/big", "é" * limit)
    assert caught.value.limit == limit
    assert await store.get_metadata("alice", None, "/private/big") == "x" * limit


async def test_too_many_entries_refuses_new_ones_but_allows_replacing_and_unsetting(
    store: SqliteStore,
) -> None:
    store.metadata.max_entries = 3
    await store.create_mailbox("alice", "INBOX")
    await store.set_metadata("alice", None, "/private/a", "1")
    await store.set_metadata("alice", None, "/private/b", "2")
    await store.set_metadata("alice", "INBOX", "/private/c", "3")
    with pytest.raises(TooManyMetadataEntriesError):
        await store.set_metadata("alice", "INBOX", "/private/d", "4")
    await store.set_metadata("alice", None, "/private/a", "replaced")
    await store.set_metadata("bob", None, "/private/a", "another user's count")
    await store.set_metadata("alice", None, "/private/b", None)
    await store.set_metadata("alice", "INBOX", "/private/d", "4")
    assert await store.list_metadata("alice", "INBOX") == {"/private/c": "3", "/private/d": "4"}


async def test_several_entries_are_set_all_or_none(store: SqliteStore) -> None:
    store.metadata.max_entries = 1
    await store.set_metadata("alice", None, "/private/a", "1")
    with pytest.raises(TooManyMetadataEntriesError):
        await store.set_metadata_entries(
            "alice", None, {"/private/a": None, "/private/b": "2", "/private/c": "3"}
        )
    assert await store.list_metadata("alice", None) == {"/private/a": "1"}
    await store.set_metadata_entries("alice", None, {"/private/a": None, "/private/b": "2"})
    assert await store.list_metadata("alice", None) == {"/private/b": "2"}


async def test_a_version_1_database_gains_the_metadata_tables(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    old = SqliteStore(path, fsync="never")
    old.open()
    await old.create_mailbox("alice", "INBOX")
    await asyncio.to_thread(old.close)
    with sqlite3.connect(path) as conn:  # what mailpush with schema 1 left behind
        conn.execute("DROP TABLE server_metadata")
        conn.execute("DROP TABLE mailbox_metadata")
        conn.execute("UPDATE schema_version SET version = 1")

    store = SqliteStore(path, fsync="never")
    store.open()
    try:
        await store.set_metadata("alice", "INBOX", "/private/comment", "upgraded")
        await store.set_metadata("alice", None, OX_OPT_IN, "user=1")
        assert await store.get_metadata("alice", "INBOX", "/private/comment") == "upgraded"
    finally:
        await asyncio.to_thread(store.close)
    version = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchone()
    assert version[0] == SCHEMA_VERSION
