"""The SQLite store: UIDs, hierarchy, flags, expunge, status and change records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from mailpush.errors import (
    InvalidMailboxNameError,
    MailboxExistsError,
    MailboxNotFoundError,
    MailboxNotSelectableError,
    StoreError,
)
from mailpush.store import (
    Change,
    DeliveryTarget,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MessagesExpunged,
    MessagesSaved,
    NewMessage,
    OutboxEntry,
    SqliteStore,
)
from mailpush.store import flags as F
from mailpush.store.sqlite_writer import StatusAt

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "mail.db")
    s.open()
    yield s
    s.close()


async def test_store_assigns_strictly_increasing_uids(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")
    first = await store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    second = await store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    assert [m.uid for m in first.messages] == [1, 2]
    assert [m.uid for m in second.messages] == [3]


async def test_expunged_uids_are_never_reused(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")
    await store.append("alice", "INBOX", [NewMessage(MESSAGE, flags=F.DELETED)])
    await store.expunge("alice", "INBOX")
    again = await store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    assert again.messages[0].uid == 2


async def test_concurrent_writers_never_duplicate_uids(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")

    async def writer() -> list[int]:
        uids = []
        for _ in range(25):
            saved = await store.append("alice", "INBOX", [NewMessage(MESSAGE)])
            uids.append(saved.messages[0].uid)
        return uids

    results = await asyncio.gather(*(writer() for _ in range(8)))
    every = [uid for uids in results for uid in uids]
    assert len(every) == len(set(every)) == 200
    assert sorted(every) == list(range(1, 201))
    for uids in results:
        assert uids == sorted(uids)
    batches, operations = store.commit_stats
    assert batches < operations  # concurrent writes shared commits


async def test_raw_message_round_trips_byte_exact(store: SqliteStore) -> None:
    raw = b"Subject: x\r\nX: bare\nlf\r\n\r\n\x00\x01\xff\xfe 8bit \xc3\xa4\r\n.\r\n"
    await store.create_mailbox("alice", "INBOX")
    saved = await store.append("alice", "INBOX", [NewMessage(raw)])
    assert await store.raw_message("alice", "INBOX", saved.messages[0].uid) == raw


async def test_inbox_name_is_case_insensitive(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "inbox")
    await store.create_mailbox("alice", "Inbox/Sub")
    names = [m.name for m in await store.list_mailboxes("alice")]
    assert names == ["INBOX", "INBOX/Sub"]
    with pytest.raises(MailboxExistsError):
        await store.create_mailbox("alice", "INBOX")


async def test_create_of_nested_name_leaves_parents_noselect(store: SqliteStore) -> None:
    created = await store.create_mailbox("alice", "Projects/2024/Q1")
    assert created == MailboxCreated("alice", "Projects/2024/Q1", created.uidvalidity)
    boxes = {m.name: m.selectable for m in await store.list_mailboxes("alice")}
    assert boxes == {"Projects": False, "Projects/2024": False, "Projects/2024/Q1": True}
    with pytest.raises(MailboxNotSelectableError):
        await store.append("alice", "Projects", [NewMessage(MESSAGE)])


async def test_rename_moves_the_whole_hierarchy(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "Work")
    await store.create_mailbox("alice", "Work/Clients")
    await store.create_mailbox("alice", "Work/Clients/Acme")
    await store.create_mailbox("alice", "Workshop")
    saved = await store.append("alice", "Work/Clients", [NewMessage(MESSAGE)])
    await store.subscribe("alice", "Work/Clients")
    renamed = await store.rename_mailbox("alice", "Work", "Archive/Work")
    assert (renamed.old, renamed.new) == ("Work", "Archive/Work")
    names = [m.name for m in await store.list_mailboxes("alice") if m.selectable]
    assert names == ["Archive/Work", "Archive/Work/Clients", "Archive/Work/Clients/Acme",
                     "Workshop"]
    raw = await store.raw_message("alice", "Archive/Work/Clients", saved.messages[0].uid)
    assert raw == MESSAGE
    # Subscriptions stay as they were, as in Dovecot.
    assert await store.subscriptions("alice") == ["Work/Clients"]


async def test_rename_keeps_uidvalidity_and_refuses_taken_names(store: SqliteStore) -> None:
    created = await store.create_mailbox("alice", "A")
    await store.create_mailbox("alice", "B")
    with pytest.raises(MailboxExistsError):
        await store.rename_mailbox("alice", "A", "B")
    with pytest.raises(InvalidMailboxNameError):
        await store.rename_mailbox("alice", "A", "A/child")
    with pytest.raises(MailboxNotFoundError):
        await store.rename_mailbox("alice", "Missing", "C")
    await store.rename_mailbox("alice", "A", "C")
    assert (await store.mailbox("alice", "C")).uidvalidity == created.uidvalidity


async def test_rename_of_inbox_moves_messages_and_keeps_inbox(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")
    await store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    await store.rename_mailbox("alice", "INBOX", "Old")
    assert (await store.status("alice", "INBOX")).messages == 0
    assert (await store.status("alice", "Old")).messages == 2


async def test_delete_reports_expunge_then_delete_and_keeps_children(
    store: SqliteStore,
) -> None:
    seen: list[Change] = []
    store.hub.subscribe(seen.append)
    await store.create_mailbox("alice", "Parent")
    await store.create_mailbox("alice", "Parent/Child")
    await store.append("alice", "Parent", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    seen.clear()
    await store.delete_mailbox("alice", "Parent")
    assert isinstance(seen[0], MessagesExpunged) and seen[0].uids == (1, 2)
    assert seen[1] == MailboxDeleted("alice", "Parent")
    boxes = {m.name: m.selectable for m in await store.list_mailboxes("alice")}
    assert boxes == {"Parent": False, "Parent/Child": True}
    with pytest.raises(MailboxNotFoundError):
        await store.delete_mailbox("alice", "Parent")
    with pytest.raises(StoreError):
        await store.delete_mailbox("alice", "INBOX")


async def test_recreated_mailbox_gets_a_new_uidvalidity(store: SqliteStore) -> None:
    first = await store.create_mailbox("alice", "Box")
    await store.delete_mailbox("alice", "Box")
    second = await store.create_mailbox("alice", "Box")
    assert second.uidvalidity > first.uidvalidity


async def test_subscriptions_may_name_missing_mailboxes_and_report_only_changes(
    store: SqliteStore,
) -> None:
    assert (await store.subscribe("alice", "Ghost")) is not None
    assert (await store.subscribe("alice", "Ghost")) is None
    assert await store.subscriptions("alice") == ["Ghost"]
    assert (await store.unsubscribe("alice", "Ghost")) is not None
    assert (await store.unsubscribe("alice", "Ghost")) is None


async def test_flag_updates_report_old_and_new_values_only_for_real_changes(
    store: SqliteStore,
) -> None:
    await store.create_mailbox("alice", "INBOX")
    await store.append(
        "alice", "INBOX",
        [NewMessage(MESSAGE, flags=F.SEEN), NewMessage(MESSAGE, keywords=("$Label1",))],
    )
    changed = await store.update_flags("alice", "INBOX", [1, 2], "add", F.SEEN, ["Important"])
    assert [c.uid for c in changed.changes] == [1, 2]
    first, second = changed.changes
    assert (first.old_flags, first.new_flags) == (F.SEEN, F.SEEN)
    assert (first.old_keywords, first.new_keywords) == ((), ("Important",))
    assert (second.old_flags, second.new_flags) == (0, F.SEEN)
    assert second.new_keywords == ("$Label1", "Important")
    again = await store.update_flags("alice", "INBOX", [1, 2], "add", F.SEEN, ["important"])
    assert again.changes == ()
    removed = await store.update_flags("alice", "INBOX", [2], "remove", 0, ["$LABEL1"])
    assert removed.changes[0].new_keywords == ("Important",)
    replaced = await store.update_flags("alice", "INBOX", [2], "replace", F.ANSWERED, [])
    assert (replaced.changes[0].new_flags, replaced.changes[0].new_keywords) == (F.ANSWERED, ())
    status = await store.status("alice", "INBOX")
    assert status.keywords == ("$Label1", "Important")


async def test_expunge_removes_only_deleted_messages_of_the_given_uids(
    store: SqliteStore,
) -> None:
    await store.create_mailbox("alice", "INBOX")
    await store.append("alice", "INBOX", [NewMessage(MESSAGE, flags=F.DELETED)] * 3)
    await store.update_flags("alice", "INBOX", [3], "remove", F.DELETED)
    only_one = await store.expunge("alice", "INBOX", [1, 3])
    assert only_one.uids == (1,)
    rest = await store.expunge("alice", "INBOX")
    assert rest.uids == (2,)
    assert [m.uid for m in await store.messages("alice", "INBOX")] == [3]


async def test_status_counters_follow_every_operation(store: SqliteStore) -> None:
    created = await store.create_mailbox("alice", "INBOX")
    status = await store.status("alice", "INBOX")
    assert (status.messages, status.recent, status.unseen, status.uidnext) == (0, 0, 0, 1)
    assert status.uidvalidity == created.uidvalidity
    modseq = status.highestmodseq

    await store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE, F.SEEN)])
    status = await store.status("alice", "INBOX")
    assert (status.messages, status.recent, status.unseen, status.uidnext) == (2, 2, 1, 3)
    assert status.first_unseen_uid == 1
    assert status.highestmodseq > modseq
    modseq = status.highestmodseq

    assert await store.take_recent("alice", "INBOX") == [1, 2]
    status = await store.status("alice", "INBOX")
    assert status.recent == 0

    await store.update_flags("alice", "INBOX", [1], "add", F.SEEN | F.DELETED)
    status = await store.status("alice", "INBOX")
    assert (status.unseen, status.first_unseen_uid) == (0, None)
    assert status.highestmodseq > modseq
    modseq = status.highestmodseq

    await store.create_mailbox("alice", "Archive")
    await store.copy("alice", "INBOX", [2], "Archive")
    archive = await store.status("alice", "Archive")
    assert (archive.messages, archive.recent, archive.unseen, archive.uidnext) == (1, 1, 0, 2)

    await store.expunge("alice", "INBOX")
    status = await store.status("alice", "INBOX")
    assert (status.messages, status.unseen, status.uidnext) == (1, 0, 3)
    assert status.highestmodseq > modseq

    await store.move("alice", "INBOX", [2], "Archive")
    status = await store.status("alice", "INBOX")
    archive = await store.status("alice", "Archive")
    assert (status.messages, archive.messages, archive.uidnext) == (0, 2, 3)


async def test_copy_keeps_flags_and_bodies_survive_source_expunge(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")
    await store.create_mailbox("alice", "Copy")
    await store.append("alice", "INBOX", [NewMessage(MESSAGE, F.FLAGGED, ("$Label1",))])
    copied = await store.copy("alice", "INBOX", [1], "Copy")
    assert copied.source_mailbox == "INBOX" and copied.messages[0].source_uid == 1
    assert (copied.messages[0].flags, copied.messages[0].keywords) == (F.FLAGGED, ("$Label1",))
    await store.update_flags("alice", "INBOX", [1], "add", F.DELETED)
    await store.expunge("alice", "INBOX")
    assert await store.raw_message("alice", "Copy", 1) == MESSAGE


async def test_move_is_append_then_expunge(store: SqliteStore) -> None:
    seen: list[Change] = []
    store.hub.subscribe(seen.append, user="alice")
    await store.create_mailbox("alice", "INBOX")
    await store.create_mailbox("alice", "Dest")
    await store.append("alice", "INBOX", [NewMessage(MESSAGE)] * 2)
    seen.clear()
    saved, expunged = await store.move("alice", "INBOX", [1, 2], "Dest")
    assert seen == [saved, expunged]
    assert [m.source_uid for m in saved.messages] == [1, 2]
    assert expunged.uids == (1, 2) and expunged.mailbox == "INBOX"


async def test_delivery_creates_inbox_and_files_into_every_target(store: SqliteStore) -> None:
    seen: list[Change] = []
    store.hub.subscribe(seen.append)
    results = await store.deliver(
        "bob", MESSAGE,
        [DeliveryTarget("Filtered/One", create=True), DeliveryTarget("INBOX")],
    )
    assert [r.mailbox for r in results] == ["Filtered/One", "INBOX"]
    assert all(r.delivery for r in results)
    kinds = [type(c).__name__ for c in seen]
    assert kinds == ["MailboxCreated", "MessagesSaved", "MailboxCreated", "MessagesSaved"]
    with pytest.raises(MailboxNotFoundError):
        await store.deliver("bob", MESSAGE, [DeliveryTarget("Nope")])


async def test_default_mailboxes_report_only_inbox_as_created(store: SqliteStore) -> None:
    # Dovecot 2.3 reports an INBOX made on first use, not `auto = create` folders.
    seen: list[Change] = []
    store.hub.subscribe(seen.append)
    created = await store.ensure_mailboxes(
        "alice", [("INBOX", None), ("Sent", "\\Sent"), ("Trash", "\\Trash")]
    )
    assert [c.mailbox for c in created] == ["INBOX", "Sent", "Trash"]
    assert [(type(c).__name__, c.mailbox) for c in seen] == [("MailboxCreated", "INBOX")]
    assert [box.name for box in await store.list_mailboxes("alice")] == ["INBOX", "Sent", "Trash"]


async def test_a_failing_operation_changes_nothing(store: SqliteStore) -> None:
    await store.create_mailbox("alice", "INBOX")
    with pytest.raises(MailboxNotFoundError):
        await store.deliver("alice", MESSAGE, [DeliveryTarget("INBOX"), DeliveryTarget("Nope")])
    assert (await store.status("alice", "INBOX")).messages == 0


async def test_outbox_entries_are_written_in_the_same_transaction(
    tmp_path: Path,
) -> None:
    def recorder(changes: Sequence[Change], status: StatusAt) -> list[OutboxEntry]:
        change = changes[0]
        if isinstance(change, MessagesSaved):
            return [OutboxEntry(change.user, b"saved:%d" % change.messages[0].uid)]
        if isinstance(change, FlagsChanged):
            raise RuntimeError("recorder broke")
        return []

    store = SqliteStore(tmp_path / "mail.db", recorder=recorder)
    store.open()
    try:
        await store.create_mailbox("alice", "INBOX")
        await store.append("alice", "INBOX", [NewMessage(MESSAGE)])
        # A recorder failure rolls the mail change back too: both or neither.
        with pytest.raises(RuntimeError):
            await store.update_flags("alice", "INBOX", [1], "add", F.SEEN)
        assert (await store.messages("alice", "INBOX"))[0].flags == 0
    finally:
        store.close()
    import sqlite3

    rows = sqlite3.connect(tmp_path / "mail.db").execute(
        "SELECT user_name, payload FROM push_outbox"
    ).fetchall()
    assert rows == [("alice", b"saved:1")]


@pytest.mark.parametrize("name", ["", "a//b", "/a", "a/", "bad\x01name"])
async def test_invalid_mailbox_names_are_refused(store: SqliteStore, name: str) -> None:
    with pytest.raises(InvalidMailboxNameError):
        await store.create_mailbox("alice", name)
