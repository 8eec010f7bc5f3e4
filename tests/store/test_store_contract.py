"""The `MailStore` contract, checked against every backend: SQLite and PostgreSQL.

Each test runs once per backend (`backend` is parametrized); the PostgreSQL
runs use a private server started for the session (tests/support/postgres.py)
and skip, naming the Debian package, where its binaries are missing. What is
asserted here is what a front end or the dispatcher relies on, whichever
database is underneath (docs/postgresql.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest

from mailpush.errors import (
    MailboxExistsError,
    MailboxNotFoundError,
    MessageNotFoundError,
    StoreError,
)
from mailpush.store import (
    Change,
    DeliveryTarget,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MailStore,
    MessagesExpunged,
    MessagesSaved,
    NewMessage,
    OutboxEntry,
    SqliteStore,
)
from mailpush.store import flags as F
from mailpush.store.outbox import StatusAt
from tests.support.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the session fixture, imported for pytest to find

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"

#: Opens one more store instance over the same database (another process or node).
StoreFactory = Callable[[], MailStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store_instance(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StoreFactory]:
    opened: list[MailStore] = []
    if request.param == "sqlite":
        path = tmp_path / "mail.sqlite"

        def make() -> MailStore:
            return SqliteStore(path, fsync="never")
    else:
        from mailpush.store.pg_store import PostgresStore

        server: PostgresServer = request.getfixturevalue("postgres_server")
        uri = server.create_database()

        def make() -> MailStore:
            return PostgresStore(uri)

    def factory() -> MailStore:
        store = make()
        store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
async def store(open_store_instance: StoreFactory) -> AsyncIterator[MailStore]:
    yield open_store_instance()


def _recorder(drivers: tuple[str, ...] = ("webhook",)) -> Callable[..., list[OutboxEntry]]:
    """One outbox entry per change, its payload the change's type and mailbox."""

    def record(changes: Sequence[Change], status: StatusAt) -> list[OutboxEntry]:
        return [
            OutboxEntry(c.user, f"{type(c).__name__} {getattr(c, 'mailbox', '')}".encode(),
                        drivers)
            for c in changes
        ]

    return record


# --- mailboxes -------------------------------------------------------------------------


async def test_create_rename_delete_mailbox(store: MailStore) -> None:
    created = await store.create_mailbox("alice", "Work")
    assert isinstance(created, MailboxCreated) and created.mailbox == "Work"
    await store.create_mailbox("alice", "Work/Reports")
    with pytest.raises(MailboxExistsError):
        await store.create_mailbox("alice", "Work")

    renamed = await store.rename_mailbox("alice", "Work", "Jobs")
    assert renamed == MailboxRenamed("alice", "Work", "Jobs")
    names = [m.name for m in await store.list_mailboxes("alice")]
    assert names == ["Jobs", "Jobs/Reports"]

    deleted = await store.delete_mailbox("alice", "Jobs/Reports")
    assert isinstance(deleted, MailboxDeleted)
    with pytest.raises(MailboxNotFoundError):
        await store.mailbox("alice", "Jobs/Reports")


async def test_list_sorts_names_bytewise_with_inbox_first(store: MailStore) -> None:
    for name in ("b", "B", "a", "Zeta", "_x"):
        await store.create_mailbox("alice", name)
    await store.create_mailbox("alice", "INBOX")
    names = [m.name for m in await store.list_mailboxes("alice")]
    assert names == ["INBOX", "B", "Zeta", "_x", "a", "b"]


async def test_subscriptions_report_only_real_changes(store: MailStore) -> None:
    assert await store.subscribe("alice", "News") is not None
    assert await store.subscribe("alice", "News") is None
    assert await store.subscriptions("alice") == ["News"]
    assert await store.unsubscribe("alice", "News") is not None
    assert await store.subscriptions("alice") == []


# --- messages --------------------------------------------------------------------------


async def test_append_assigns_increasing_uids_and_modseqs(store: MailStore) -> None:
    first = await store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    second = await store.append("alice", "INBOX", [NewMessage(MESSAGE, flags=F.SEEN)])
    assert [m.uid for m in first.messages] == [1, 2]
    assert [m.uid for m in second.messages] == [3]
    assert second.messages[0].modseq > first.messages[0].modseq
    assert await store.raw_message("alice", "INBOX", 3) == MESSAGE


async def test_deliver_files_one_record_per_mailbox(store: MailStore) -> None:
    await store.create_mailbox("alice", "Lists")
    saved = await store.deliver(
        "alice", MESSAGE, [DeliveryTarget("INBOX"), DeliveryTarget("Lists", flags=F.FLAGGED)]
    )
    assert [(s.mailbox, s.delivery) for s in saved] == [("INBOX", True), ("Lists", True)]
    listed = await store.messages("alice", "Lists")
    assert [(m.uid, m.flags) for m in listed] == [(1, F.FLAGGED)]


async def test_copy_keeps_flags_and_move_expunges_the_source(store: MailStore) -> None:
    await store.create_mailbox("alice", "Archive")
    await store.append("alice", "INBOX", [NewMessage(MESSAGE, flags=F.SEEN, keywords=("$Work",))])
    copied = await store.copy("alice", "INBOX", [1], "Archive")
    assert [(m.uid, m.flags, m.keywords, m.source_uid) for m in copied.messages] == [
        (1, F.SEEN, ("$Work",), 1)
    ]
    saved, expunged = await store.move("alice", "INBOX", [1], "Archive")
    assert [m.uid for m in saved.messages] == [2]
    assert expunged.uids == (1,)
    assert await store.messages("alice", "INBOX") == []
    assert await store.raw_messages("alice", "Archive", [1, 2]) == {1: MESSAGE, 2: MESSAGE}


async def test_copy_and_move_of_a_set_with_an_expunged_message_do_nothing(
    store: MailStore,
) -> None:
    """A session numbered 1 and 2, and 2 was expunged before its COPY ran: all or nothing,
    as Dovecot answers `NO [EXPUNGEISSUED]` and copies none of the set."""
    await store.create_mailbox("alice", "Archive")
    await store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    await store.update_flags("alice", "INBOX", [2], "add", F.DELETED)
    await store.expunge("alice", "INBOX")

    with pytest.raises(MessageNotFoundError) as copying:
        await store.copy("alice", "INBOX", [1, 2], "Archive")
    with pytest.raises(MessageNotFoundError):
        await store.move("alice", "INBOX", [1, 2], "Archive")

    assert copying.value.uid == 2
    assert await store.messages("alice", "Archive") == []
    assert [m.uid for m in await store.messages("alice", "INBOX")] == [1]


async def test_flag_updates_report_only_messages_that_changed(store: MailStore) -> None:
    await store.append("alice", "INBOX", [NewMessage(MESSAGE, flags=F.SEEN), NewMessage(MESSAGE)])
    added = await store.update_flags("alice", "INBOX", [1, 2], "add", F.SEEN)
    assert [(c.uid, c.old_flags, c.new_flags) for c in added.changes] == [(2, 0, F.SEEN)]
    removed = await store.update_flags("alice", "INBOX", [1, 2], "remove", F.SEEN)
    assert [c.uid for c in removed.changes] == [1, 2]
    replaced = await store.update_flags(
        "alice", "INBOX", [1], "replace", F.FLAGGED, keywords=("Todo",)
    )
    assert replaced.changes[0].new_flags == F.FLAGGED
    assert replaced.changes[0].new_keywords == ("Todo",)
    assert replaced.changes[0].modseq > removed.changes[-1].modseq
    assert (await store.status("alice", "INBOX")).keywords == ("Todo",)


async def test_expunge_removes_only_deleted_messages(store: MailStore) -> None:
    deleted = NewMessage(MESSAGE, flags=F.DELETED)
    await store.append("alice", "INBOX", [deleted, NewMessage(MESSAGE), deleted])
    only_three = await store.expunge("alice", "INBOX", [3])
    assert only_three.uids == (3,)
    rest = await store.expunge("alice", "INBOX")
    assert rest.uids == (1,)
    assert [m.uid for m in await store.messages("alice", "INBOX")] == [2]


async def test_status_counts_messages_recent_and_unseen(store: MailStore) -> None:
    seen = NewMessage(MESSAGE, flags=F.SEEN)
    await store.append("alice", "INBOX", [seen, NewMessage(MESSAGE), NewMessage(MESSAGE)])
    assert await store.take_recent("alice", "INBOX", up_to_uid=1) == [1]
    status = await store.status("alice", "INBOX")
    assert (status.messages, status.recent, status.unseen) == (3, 2, 2)
    assert (status.uidnext, status.first_unseen_uid) == (4, 2)


async def test_a_snapshot_is_the_status_and_the_messages_of_one_moment(
    open_store_instance: StoreFactory,
) -> None:
    """SELECT's read: while another instance delivers, every snapshot lists exactly
    the messages its status counts, each UID below its UIDNEXT, none above its
    HIGHESTMODSEQ (read in two steps, a delivery in between broke all three)."""
    reader, writer = open_store_instance(), open_store_instance()
    await writer.append("alice", "INBOX", [NewMessage(MESSAGE)])
    delivering = True

    async def deliver() -> None:
        while delivering:
            await writer.deliver("alice", MESSAGE, [DeliveryTarget("INBOX")])

    task = asyncio.ensure_future(deliver())
    try:
        for _ in range(60):
            snapshot = await reader.snapshot("alice", "INBOX")
            status, uids = snapshot.status, [m.uid for m in snapshot.messages]
            assert len(uids) == status.messages
            assert max(uids) < status.uidnext
            assert max(m.modseq for m in snapshot.messages) <= status.highestmodseq
    finally:
        delivering = False
        await task
    assert (await reader.snapshot("alice", "INBOX")).status.messages > 1


async def test_a_snapshot_of_a_missing_mailbox_is_a_store_error(store: MailStore) -> None:
    with pytest.raises(MailboxNotFoundError):
        await store.snapshot("alice", "Nowhere")


async def test_missing_mailbox_is_a_store_error(store: MailStore) -> None:
    with pytest.raises(MailboxNotFoundError):
        await store.append("alice", "Nowhere", [NewMessage(MESSAGE)])


# --- METADATA --------------------------------------------------------------------------


async def test_metadata_entries_set_list_and_remove(store: MailStore) -> None:
    await store.create_mailbox("alice", "Work")
    await store.set_metadata_entries(
        "alice", "Work", {"/private/Comment": "mine", "/shared/comment": "ours"}
    )
    await store.set_metadata("alice", None, "/private/vendor/x", "1")
    assert await store.get_metadata("alice", "Work", "/PRIVATE/comment") == "mine"
    assert await store.list_metadata("alice", "Work") == {
        "/private/comment": "mine", "/shared/comment": "ours"
    }
    await store.set_metadata("alice", "Work", "/private/comment", None)
    assert await store.list_metadata("alice", "Work", "/private") == {}
    assert await store.list_metadata("alice", None) == {"/private/vendor/x": "1"}


# --- the outbox ------------------------------------------------------------------------


async def test_outbox_rows_commit_with_the_change_and_are_claimed_in_order(
    store: MailStore,
) -> None:
    store.set_recorder(_recorder())
    await store.create_mailbox("alice", "Work")
    await store.append("alice", "Work", [NewMessage(MESSAGE)])
    await store.append("bob", "INBOX", [NewMessage(MESSAGE)])

    claims = await store.outbox.claim_due(now=1e12, limit=10)
    assert [(c.user, c.payload) for c in claims] == [
        ("alice", b"MailboxCreated Work"),
        ("alice", b"MessagesSaved Work"),
        ("bob", b"MailboxCreated INBOX"),
        ("bob", b"MessagesSaved INBOX"),
    ]
    assert await store.outbox.claim_due(now=1e12, limit=10) == []
    await store.outbox.complete(claims)
    stats = await store.outbox.stats(now=1e12)
    assert [(s.driver, s.done) for s in stats] == [("webhook", 4)]


async def test_outbox_retries_buries_replays_and_purges(store: MailStore) -> None:
    store.set_recorder(_recorder())
    await store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    outbox = store.outbox
    created, saved = await outbox.claim_due(now=1e12, limit=10)
    await outbox.mark_started([created])
    await outbox.retry(created, next_attempt=2e12, error="HTTP 503")
    await outbox.bury(saved, "HTTP 400")
    assert await outbox.claim_due(now=1e12, limit=10) == []  # the retry is not due yet
    (dead,) = await outbox.dead_letters("webhook")
    assert (dead.outbox_id, dead.attempts, dead.last_error) == (saved.outbox_id, 1, "HTTP 400")

    assert await outbox.replay([saved.outbox_id]) == 1
    (again,) = await outbox.claim_due(now=3e12, limit=1)
    assert again.outbox_id == created.outbox_id  # per-user commit order holds
    await outbox.release([again])
    recovery = await outbox.reset_inflight()
    assert recovery.pending_again == 0

    request = await outbox.add_request("webhook", "alice", b"POST /x", next_attempt=0)
    claims = await outbox.claim_due(now=3e12, limit=10)
    assert {c.outbox_id for c in claims} == {created.outbox_id, saved.outbox_id, request}
    await outbox.complete(claims)
    records = await outbox.records_after(0, user="alice")
    assert [r.outbox_id for r in records] == [created.outbox_id, saved.outbox_id]
    assert await outbox.last_id() == request
    assert await outbox.purge(finished_before=1e13) == 3
    assert await outbox.records_after(0) == []


async def test_a_failing_recorder_rolls_the_change_back(store: MailStore) -> None:
    def broken(changes: Sequence[Change], status: StatusAt) -> list[OutboxEntry]:
        raise StoreError("recorder failed")

    await store.create_mailbox("alice", "INBOX")
    store.set_recorder(broken)
    with pytest.raises(StoreError, match="recorder failed"):
        await store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    store.set_recorder(None)
    assert await store.messages("alice", "INBOX") == []


async def test_changes_are_published_to_the_hub_after_commit(store: MailStore) -> None:
    seen: list[Change] = []
    store.hub.subscribe(lambda change: seen.append(change), user="alice")
    saved = await store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    await asyncio.sleep(0)
    assert saved in seen


async def test_two_dispatchers_never_claim_the_same_delivery(
    open_store_instance: StoreFactory,
) -> None:
    writer = open_store_instance()
    writer.set_recorder(_recorder())
    for n in range(12):
        await writer.append(f"user{n % 3}", "INBOX", [NewMessage(MESSAGE)])
    first, second = open_store_instance(), open_store_instance()
    claims = await asyncio.gather(
        first.outbox.claim_due(now=1e12, limit=100), second.outbox.claim_due(now=1e12, limit=100)
    )
    ids = [c.outbox_id for batch in claims for c in batch]
    assert len(ids) == len(set(ids)) == 15  # 12 saves and 3 INBOX creations


# --- several writers -------------------------------------------------------------------


async def test_concurrent_writers_from_two_instances_allocate_unique_increasing_uids(
    open_store_instance: StoreFactory,
) -> None:
    one, two = open_store_instance(), open_store_instance()
    await one.create_mailbox("alice", "INBOX")

    async def appends(store: MailStore) -> list[MessagesSaved]:
        return list(await asyncio.gather(
            *(store.append("alice", "INBOX", [NewMessage(MESSAGE)]) for _ in range(15))
        ))

    results = await asyncio.gather(appends(one), appends(two))
    saved = [m for batch in results for r in batch for m in r.messages]
    assert sorted(m.uid for m in saved) == list(range(1, 31))
    by_uid = sorted(saved, key=lambda m: m.uid)
    modseqs = [m.modseq for m in by_uid]
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == 30
    assert (await two.status("alice", "INBOX")).uidnext == 31


async def test_concurrent_flag_changes_from_two_instances_lose_no_update(
    open_store_instance: StoreFactory,
) -> None:
    one, two = open_store_instance(), open_store_instance()
    await one.append("alice", "INBOX", [NewMessage(MESSAGE)])
    bits = [F.SEEN, F.FLAGGED, F.ANSWERED, F.DRAFT]
    await asyncio.gather(
        *(
            (one if n % 2 else two).update_flags("alice", "INBOX", [1], "add", bit)
            for n, bit in enumerate(bits)
        )
    )
    (message,) = await one.messages("alice", "INBOX")
    assert message.flags == F.SEEN | F.FLAGGED | F.ANSWERED | F.DRAFT
    expunged = await two.expunge("alice", "INBOX")
    assert isinstance(expunged, MessagesExpunged) and expunged.uids == ()


async def test_unchanged_since_leaves_alone_what_another_instance_changed_after_it(
    open_store_instance: StoreFactory,
) -> None:
    """RFC 7162 UNCHANGEDSINCE is judged inside the write: a change another process
    committed after the client read its modseq is kept, and that UID is `modified`."""
    one, two = open_store_instance(), open_store_instance()
    saved = await one.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    known = saved.messages[-1].modseq  # what the client last heard
    elsewhere = await two.update_flags("alice", "INBOX", [2], "add", F.FLAGGED)
    assert elsewhere.changes[0].modseq > known
    result = await one.update_flags(
        "alice", "INBOX", [1, 2], "add", F.SEEN, unchanged_since=known
    )
    assert [c.uid for c in result.changes] == [1]
    assert result.modified == (2,)
    flags = {m.uid: m.flags for m in await one.messages("alice", "INBOX")}
    assert flags == {1: F.SEEN, 2: F.FLAGGED}


async def test_unchanged_since_at_or_above_every_modseq_changes_all(store: MailStore) -> None:
    saved = await store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    result = await store.update_flags(
        "alice", "INBOX", [1, 2], "add", F.SEEN, unchanged_since=saved.messages[-1].modseq
    )
    assert [c.uid for c in result.changes] == [1, 2] and result.modified == ()


async def test_racing_first_writes_for_a_new_user_create_one_user_and_one_inbox(
    open_store_instance: StoreFactory,
) -> None:
    one, two = open_store_instance(), open_store_instance()
    await asyncio.gather(
        one.append("carol", "INBOX", [NewMessage(MESSAGE)]),
        two.append("carol", "INBOX", [NewMessage(MESSAGE)]),
    )
    assert [m.name for m in await one.list_mailboxes("carol")] == ["INBOX"]
    assert [m.uid for m in await two.messages("carol", "INBOX")] == [1, 2]


async def test_racing_creates_of_one_mailbox_let_exactly_one_succeed(
    open_store_instance: StoreFactory,
) -> None:
    one, two = open_store_instance(), open_store_instance()
    await one.create_mailbox("alice", "INBOX")
    results = await asyncio.gather(
        one.create_mailbox("alice", "Shared"),
        two.create_mailbox("alice", "Shared"),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["MailboxCreated", "MailboxExistsError"]


async def test_changes_since_a_modseq_lists_changed_and_expunged_messages(
    store: MailStore,
) -> None:
    await store.append("alice", "INBOX", [NewMessage(MESSAGE) for _ in range(3)])
    before = (await store.status("alice", "INBOX")).highestmodseq
    await store.update_flags("alice", "INBOX", [2], "add", F.DELETED)
    await store.update_flags("alice", "INBOX", [3], "add", F.SEEN)
    await store.expunge("alice", "INBOX")
    changes = await store.changes_since("alice", "INBOX", before)
    assert [(m.uid, m.flags) for m in changes.messages] == [(3, F.SEEN)]
    assert changes.expunged == (2,)
    assert changes.highestmodseq == (await store.status("alice", "INBOX")).highestmodseq
