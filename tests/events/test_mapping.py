"""transactions_for_change(): store change records become the push transactions Dovecot ran.

Every table row is named after the numbered observation of Dovecot it
reproduces (docs/dovecot-reference.md#numbered-observations maps each number to
its heading); the change records are built by hand, the way the store reports
that command.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from mailpush.events import (
    MessageData,
    PushEvent,
    PushTransaction,
    transactions_for_change,
    transactions_for_operation,
)
from mailpush.mime import summarize
from mailpush.store import flags as F
from mailpush.store.changes import (
    Change,
    FlagChange,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesExpunged,
    MessagesSaved,
    SavedMessage,
    SubscriptionChanged,
    TransactionRolledBack,
)

USER = "alice"
UIDVALIDITY = 1795395289
CREATED = 1_700_000_000.5

RAW_PLAIN = (
    b"From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.net>\r\n"
    b'To: "Alice Example" <alice@example.org>, bob@example.org\r\n'
    b"Subject: =?iso-8859-1?q?Caf=E9?=\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n"
    b"Message-ID: <plain.1@example.net>\r\n"
    b"\r\n"
    b"Hello Alice,\r\nthis is a plain text message.\r\n"
)
RAW_BARE = b"\r\n"


def make_transactions(change: Change) -> list[PushTransaction]:
    ids = (f"t{n}" for n in itertools.count(1))
    return transactions_for_change(change, new_id=lambda: next(ids), now=lambda: CREATED)


def only_transaction(change: Change) -> PushTransaction:
    transactions = make_transactions(change)
    assert len(transactions) == 1
    return transactions[0]


def saved(
    uid: int, flags: int = 0, keywords: tuple[str, ...] = (), raw: bytes = RAW_PLAIN
) -> SavedMessage:
    return SavedMessage(
        uid=uid,
        flags=flags,
        keywords=keywords,
        size=len(raw),
        internal_date=1_700_000_000,
        modseq=7,
        summary=summarize(raw),
    )


def flag_change(
    old: int = 0,
    new: int = 0,
    old_keywords: tuple[str, ...] = (),
    new_keywords: tuple[str, ...] = (),
    *,
    uid: int = 9,
    recent: bool = False,
) -> FlagChange:
    return FlagChange(uid, old, new, old_keywords, new_keywords, modseq=5, recent=recent)


def flags_changed(*changes: FlagChange, mailbox: str = "INBOX") -> FlagsChanged:
    return FlagsChanged(USER, mailbox, UIDVALIDITY, changes)


# --- mailbox operations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            MailboxCreated(USER, "Projects/2024/Q1", 42),
            PushEvent("MailboxCreate", "Projects/2024/Q1"),
            id="item35_create_reports_the_leaf_without_uidvalidity",
        ),
        pytest.param(
            MailboxCreated(USER, "Entwürfe", 42),
            PushEvent("MailboxCreate", "Entwürfe"),
            id="item14_mailbox_is_the_utf8_name",
        ),
        pytest.param(
            MailboxDeleted(USER, "Parent2"),
            PushEvent("MailboxDelete", "Parent2"),
            id="item37_delete",
        ),
        pytest.param(
            MailboxRenamed(USER, old="Work", new="Work Renamed"),
            PushEvent("MailboxRename", "Work Renamed", mailbox_old="Work"),
            id="item11_rename_mailbox_is_the_new_name",
        ),
        pytest.param(
            SubscriptionChanged(USER, "Lists", subscribed=True),
            PushEvent("MailboxSubscribe", "Lists"),
            id="item38_subscribe",
        ),
        pytest.param(
            SubscriptionChanged(USER, "Parent/Child", subscribed=False),
            PushEvent("MailboxUnsubscribe", "Parent/Child"),
            id="item38_unsubscribe_of_a_stale_subscription_fires",
        ),
    ],
)
def test_mailbox_operation_is_one_transaction_with_one_event(
    change: Change, expected: PushEvent
) -> None:
    assert make_transactions(change) == [
        PushTransaction(
            id="t1",
            user=USER,
            mailbox=expected.mailbox,
            service="imap",
            created=CREATED,
            events=(expected,),
        )
    ]


# --- saves: MessageNew / MessageAppend (items 15, 22) ------------------------------------


@dataclass(frozen=True)
class SaveCase:
    delivery: bool
    messages: tuple[SavedMessage, ...]
    name: str
    service: str
    flags: tuple[tuple[str, ...], ...]
    keywords: tuple[tuple[str, ...], ...]
    source_mailbox: str | None = None


SAVE_CASES = {
    "item15_lmtp_delivery_is_message_new": SaveCase(
        delivery=True,
        messages=(saved(1),),
        name="MessageNew",
        service="lmtp",
        flags=((),),
        keywords=((),),
    ),
    "item15_imap_append_is_message_append": SaveCase(
        delivery=False,
        messages=(saved(3, F.ANSWERED),),
        name="MessageAppend",
        service="imap",
        flags=(("\\Answered",),),
        keywords=((),),
    ),
    "item15_copy_into_the_selected_mailbox_is_message_append": SaveCase(
        delivery=False,
        messages=(saved(4),),
        name="MessageAppend",
        service="imap",
        flags=((),),
        keywords=((),),
        source_mailbox="INBOX",
    ),
    "item22_append_flags_in_dovecot_order_never_recent": SaveCase(
        delivery=False,
        messages=(saved(5, F.SEEN | F.FLAGGED | F.RECENT, ("$Label2", "ProjectX")),),
        name="MessageAppend",
        service="imap",
        flags=(("\\Flagged", "\\Seen"),),
        keywords=(("$Label2", "ProjectX"),),
    ),
    "item22_move_carries_the_source_flags_and_keywords": SaveCase(
        delivery=False,
        messages=(saved(6, F.FLAGGED, ("$Label1",)),),
        name="MessageAppend",
        service="imap",
        flags=(("\\Flagged",),),
        keywords=(("$Label1",),),
        source_mailbox="Archive",
    ),
    "item3_multiappend_of_two_is_one_transaction": SaveCase(
        delivery=False,
        messages=(saved(7), saved(8, F.DRAFT)),
        name="MessageAppend",
        service="imap",
        flags=((), ("\\Draft",)),
        keywords=((), ()),
    ),
}


@pytest.mark.parametrize("case", SAVE_CASES.values(), ids=SAVE_CASES.keys())
def test_saved_messages_are_one_transaction_of_new_or_append_events(case: SaveCase) -> None:
    change = MessagesSaved(
        USER, "INBOX", UIDVALIDITY, case.messages, case.delivery, case.source_mailbox
    )
    txn = only_transaction(change)
    assert (txn.id, txn.user, txn.mailbox, txn.service) == ("t1", USER, "INBOX", case.service)
    assert [event.name for event in txn.events] == [case.name] * len(case.messages)
    assert [event.uid for event in txn.events] == [message.uid for message in case.messages]
    assert {event.uid_validity for event in txn.events} == {UIDVALIDITY}
    assert tuple(event.flags for event in txn.events) == case.flags
    assert tuple(event.keywords for event in txn.events) == case.keywords


def test_saved_message_carries_the_summary_fields_and_stored_size() -> None:
    message = saved(1)
    event = only_transaction(
        MessagesSaved(USER, "INBOX", UIDVALIDITY, (message,), delivery=True)
    ).events[0]
    assert event.message == MessageData(
        from_="=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.net>",
        to='"Alice Example" <alice@example.org>, bob@example.org',
        from_address="joerg@example.net",
        from_display_name="Jörg Müller",
        to_address="alice@example.org",
        to_display_name="Alice Example",
        subject="Café",
        subject_raw="=?iso-8859-1?q?Caf=E9?=",
        date=1672646400,
        tz=120,
        message_id="<plain.1@example.net>",
        snippet="Hello Alice, this is a plain text message.",
        size=message.size,
        has_calendar=False,
    )


def test_item24_message_without_headers_has_empty_fields_and_no_subject() -> None:
    event = only_transaction(
        MessagesSaved(USER, "INBOX", UIDVALIDITY, (saved(1, raw=RAW_BARE),), delivery=True)
    ).events[0]
    assert event.message is not None
    assert event.message.subject is None
    assert event.message.message_id is None
    assert (event.message.from_, event.message.to, event.message.date) == ("", "", 0)


def test_events_have_only_the_fields_of_their_type() -> None:
    event = only_transaction(
        MessagesSaved(USER, "INBOX", UIDVALIDITY, (saved(1),), delivery=True)
    ).events[0]
    assert (event.mailbox_old, event.flags_old, event.keywords_old) == (None, (), ())


# --- flag and keyword changes (items 9, 25-30) -------------------------------------------

UID = 9


def clear(
    flags: tuple[str, ...] = (),
    keywords: tuple[str, ...] = (),
    flags_old: tuple[str, ...] = (),
    keywords_old: tuple[str, ...] = (),
    uid: int = UID,
) -> PushEvent:
    return PushEvent(
        "FlagsClear",
        "INBOX",
        uid=uid,
        uid_validity=UIDVALIDITY,
        flags=flags,
        keywords=keywords,
        flags_old=flags_old,
        keywords_old=keywords_old,
    )


def set_(flags: tuple[str, ...] = (), keywords: tuple[str, ...] = (), uid: int = UID) -> PushEvent:
    return PushEvent(
        "FlagsSet", "INBOX", uid=uid, uid_validity=UIDVALIDITY, flags=flags, keywords=keywords
    )


def read(uid: int = UID) -> PushEvent:
    return PushEvent("MessageRead", "INBOX", uid=uid, uid_validity=UIDVALIDITY)


def trash(uid: int = UID) -> PushEvent:
    return PushEvent("MessageTrash", "INBOX", uid=uid, uid_validity=UIDVALIDITY)


ALL_STORED = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")

FLAG_CASES: dict[str, tuple[FlagChange, list[PushEvent]]] = {
    "item25_plus_seen_fires_empty_flags_clear_first": (
        flag_change(0, F.SEEN, recent=True),
        [clear(flags_old=("\\Recent",)), set_(flags=("\\Seen",)), read()],
    ),
    "item26_minus_keyword_fires_empty_flags_set": (
        flag_change(0, 0, ("$Label1",), (), recent=True),
        [clear(keywords=("$Label1",), keywords_old=("$Label1",)), set_()],
    ),
    "item26_minus_deleted_fires_no_flags_set": (
        flag_change(F.DELETED, 0, recent=True),
        [clear(flags=("\\Deleted",), flags_old=("\\Deleted", "\\Recent"))],
    ),
    "item27_minus_seen_is_only_flags_clear": (
        flag_change(F.SEEN, 0),
        [clear(flags=("\\Seen",), flags_old=("\\Seen",))],
    ),
    "item27_plus_deleted_fires_message_trash": (
        flag_change(F.SEEN, F.SEEN | F.DELETED),
        [clear(flags_old=("\\Seen",)), set_(flags=("\\Deleted",)), trash()],
    ),
    "item27_replacing_seen_with_flagged_is_not_a_read": (
        flag_change(F.SEEN, F.FLAGGED),
        [clear(flags=("\\Seen",), flags_old=("\\Seen",)), set_(flags=("\\Flagged",))],
    ),
    "item9_seen_and_deleted_in_fixed_event_order": (
        flag_change(0, F.SEEN | F.DELETED),
        [clear(), set_(flags=("\\Deleted", "\\Seen")), read(), trash()],
    ),
    "item13_flag_names_in_dovecot_order_whatever_the_client_order": (
        flag_change(0, F.STORED_FLAGS),
        [clear(), set_(flags=ALL_STORED), read(), trash()],
    ),
    "item28_flags_old_has_every_old_flag_and_recent": (
        flag_change(F.STORED_FLAGS, F.STORED_FLAGS & ~F.DRAFT, recent=True),
        [clear(flags=("\\Draft",), flags_old=(*ALL_STORED, "\\Recent"))],
    ),
    "item28_flags_old_is_empty_when_only_keywords_changed": (
        flag_change(F.SEEN, F.SEEN, (), ("Important",), recent=True),
        [clear(), set_(keywords=("Important",))],
    ),
    "item29_keywords_old_is_the_complete_list_also_on_add": (
        flag_change(0, 0, ("$Label1",), ("$Label1", "Important")),
        [clear(keywords_old=("$Label1",)), set_(keywords=("Important",))],
    ),
    "item29_minus_keyword_keeps_all_old_keywords": (
        flag_change(0, 0, ("$Label1", "Important"), ("Important",)),
        [clear(keywords=("$Label1",), keywords_old=("$Label1", "Important")), set_()],
    ),
    "item30_replace_flags_and_keywords": (
        flag_change(0, F.ANSWERED, ("Important",), ("$Label3",), recent=True),
        [
            clear(keywords=("Important",), flags_old=("\\Recent",), keywords_old=("Important",)),
            set_(flags=("\\Answered",), keywords=("$Label3",)),
        ],
    ),
    "item30_replace_with_nothing_fires_empty_flags_set": (
        flag_change(F.ANSWERED, 0, ("$Label3",), ()),
        [
            clear(
                flags=("\\Answered",),
                keywords=("$Label3",),
                flags_old=("\\Answered",),
                keywords_old=("$Label3",),
            ),
            set_(),
        ],
    ),
}


@pytest.mark.parametrize(("change", "expected"), FLAG_CASES.values(), ids=FLAG_CASES.keys())
def test_flag_change_fires_dovecots_events(change: FlagChange, expected: list[PushEvent]) -> None:
    txn = only_transaction(flags_changed(change))
    assert (txn.mailbox, txn.service) == ("INBOX", "imap")
    assert list(txn.events) == expected


def test_item28_recent_never_appears_in_flags_set_or_clear() -> None:
    txn = only_transaction(flags_changed(flag_change(F.SEEN, F.FLAGGED | F.RECENT, recent=True)))
    for event in txn.events:
        assert "\\Recent" not in event.flags


def test_item3_store_on_three_messages_is_one_transaction_in_record_order() -> None:
    changes = [flag_change(0, F.FLAGGED, uid=uid) for uid in (6, 7, 8)]
    txn = only_transaction(flags_changed(*changes))
    assert [(event.name, event.uid) for event in txn.events] == [
        ("FlagsClear", 6),
        ("FlagsSet", 6),
        ("FlagsClear", 7),
        ("FlagsSet", 7),
        ("FlagsClear", 8),
        ("FlagsSet", 8),
    ]


def test_keywords_compare_case_insensitively() -> None:
    change = flag_change(0, 0, ("Important", "$label1"), ("important", "$Label1", "New"))
    assert list(only_transaction(flags_changed(change)).events) == [
        clear(keywords_old=("Important", "$label1")),
        set_(keywords=("New",)),
    ]


def test_two_changes_of_one_message_accumulate_into_one_record() -> None:
    # Dovecot keys the record by message, so a second change in the same storage
    # transaction adds to the first: bits OR together, the latest flags_old wins,
    # keywords_old collects every old list, Read/Trash appear once.
    first = flag_change(0, F.SEEN, (), ("A",), recent=True)
    second = flag_change(F.SEEN, F.DELETED, ("A",), ())
    assert list(only_transaction(flags_changed(first, second)).events) == [
        clear(flags=("\\Seen",), keywords=("A",), flags_old=("\\Seen",), keywords_old=("A",)),
        set_(flags=("\\Deleted", "\\Seen"), keywords=("A",)),
        read(),
        trash(),
    ]


def test_item6_flag_change_that_changed_nothing_fires_nothing() -> None:
    assert make_transactions(flags_changed(flag_change(F.SEEN, F.SEEN, ("A",), ("A",)))) == []
    assert make_transactions(flags_changed()) == []


def test_unchanged_message_is_left_out_of_a_transaction_with_real_changes() -> None:
    txn = only_transaction(
        flags_changed(flag_change(F.SEEN, F.SEEN, uid=1), flag_change(0, F.SEEN, uid=2))
    )
    assert {event.uid for event in txn.events} == {2}


# --- expunges (items 32-34) --------------------------------------------------------------


def expunge_events(mailbox: str, *uids: int) -> tuple[PushEvent, ...]:
    return tuple(
        PushEvent("MessageExpunge", mailbox, uid=uid, uid_validity=UIDVALIDITY) for uid in uids
    )


@pytest.mark.parametrize(
    ("uids", "expected_uids"),
    [
        pytest.param((12,), (12,), id="item32_uid_expunge_removes_only_the_named_uid"),
        pytest.param((3, 1, 2), (1, 2, 3), id="item32_one_expunge_per_message_in_uid_order"),
        pytest.param(tuple(range(1, 12)), tuple(range(1, 12)), id="item34_eleven_in_one_txn"),
    ],
)
def test_expunge_is_one_transaction_with_one_event_per_message(
    uids: tuple[int, ...], expected_uids: tuple[int, ...]
) -> None:
    txn = only_transaction(MessagesExpunged(USER, "INBOX", UIDVALIDITY, uids, modseq=3))
    assert (txn.mailbox, txn.service) == ("INBOX", "imap")
    assert txn.events == expunge_events("INBOX", *expected_uids)


def test_item6_expunge_of_nothing_fires_nothing() -> None:
    assert make_transactions(MessagesExpunged(USER, "INBOX", UIDVALIDITY, (), modseq=3)) == []


def test_item6_save_of_nothing_fires_nothing() -> None:
    assert make_transactions(MessagesSaved(USER, "INBOX", UIDVALIDITY, (), delivery=True)) == []


def test_item33_move_is_append_in_destination_then_expunge_in_source() -> None:
    records: list[Change] = [
        MessagesSaved(
            USER, "Archive", UIDVALIDITY, (saved(20), saved(21)), False, source_mailbox="INBOX"
        ),
        MessagesExpunged(USER, "INBOX", UIDVALIDITY, (4, 5), modseq=9),
    ]
    destination, source = (only_transaction(record) for record in records)
    assert destination.mailbox == "Archive"
    assert [(e.name, e.mailbox, e.uid) for e in destination.events] == [
        ("MessageAppend", "Archive", 20),
        ("MessageAppend", "Archive", 21),
    ]
    assert source.mailbox == "INBOX"
    assert source.events == expunge_events("INBOX", 4, 5)


def test_item34_delete_of_a_full_mailbox_is_expunges_then_a_separate_delete() -> None:
    records: list[Change] = [
        MessagesExpunged(USER, "Full", UIDVALIDITY, tuple(range(1, 12)), modseq=2),
        MailboxDeleted(USER, "Full"),
    ]
    expunges, delete = (only_transaction(record) for record in records)
    assert expunges.events == expunge_events("Full", *range(1, 12))
    assert delete.events == (PushEvent("MailboxDelete", "Full"),)


# --- transaction identity ----------------------------------------------------------------


def test_every_transaction_gets_a_fresh_id_user_and_creation_time() -> None:
    ids = iter(["first", "second"])
    clock = iter([10.0, 20.0])
    records: list[Change] = [MailboxCreated("bob", "A", 1), MailboxCreated("bob", "B", 1)]
    transactions = [
        transactions_for_change(record, new_id=lambda: next(ids), now=lambda: next(clock))[0]
        for record in records
    ]
    assert [(t.id, t.user, t.created) for t in transactions] == [
        ("first", "bob", 10.0),
        ("second", "bob", 20.0),
    ]


def test_default_ids_are_unique_hex() -> None:
    first, second = (transactions_for_change(MailboxCreated(USER, "A", 1))[0].id for _ in range(2))
    assert first != second
    assert len(first) == 32 and int(first, 16) >= 0


def test_unknown_change_record_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="unsupported change record 'str'"):
        transactions_for_change("CREATE INBOX")  # type: ignore[arg-type]


# --- one operation, one group (items 4, 5, 34) ---------------------------------------------


def operation(*changes: Change) -> list[PushTransaction]:
    ids = (f"t{n}" for n in itertools.count(1))
    return transactions_for_operation(changes, new_id=lambda: next(ids), now=lambda: CREATED)


def shape(txns: list[PushTransaction]) -> list[tuple[str, str, int, int, bool]]:
    return [(t.events[0].name if t.events else "-", t.group, t.group_size, t.group_index,
             t.deferred) for t in txns]


def test_item4_move_is_one_group_of_two_deferred_transactions_destination_first() -> None:
    txns = operation(
        MessagesSaved(USER, "Work", UIDVALIDITY, (saved(1),), False, source_mailbox="INBOX"),
        MessagesExpunged(USER, "INBOX", UIDVALIDITY, (3,), 4),
    )
    assert shape(txns) == [
        ("MessageAppend", "t3", 2, 0, True),
        ("MessageExpunge", "t3", 2, 1, True),
    ]


def test_item4_sieve_into_two_new_folders_defers_the_saves_not_the_creations() -> None:
    txns = operation(
        MailboxCreated(USER, "Filtered/One", 1, delivery=True),
        MessagesSaved(USER, "Filtered/One", 1, (saved(1),), True),
        MailboxCreated(USER, "Filtered/Two", 2, delivery=True),
        MessagesSaved(USER, "Filtered/Two", 2, (saved(1),), True),
    )
    assert [(t.mailbox, t.group_index, t.deferred) for t in txns] == [
        ("Filtered/One", 0, False),
        ("Filtered/One", 1, True),
        ("Filtered/Two", 2, False),
        ("Filtered/Two", 3, True),
    ]
    assert {t.group for t in txns} == {"t5"} and {t.group_size for t in txns} == {4}


def test_item34_delete_commits_its_expunges_before_the_mailbox_goes() -> None:
    txns = operation(
        MessagesExpunged(USER, "Work", UIDVALIDITY, (1, 2), 3),
        MailboxDeleted(USER, "Work"),
    )
    assert [(t.events[0].name, t.deferred) for t in txns] == [
        ("MessageExpunge", False),
        ("MailboxDelete", False),
    ]


def test_a_lone_transaction_has_no_group() -> None:
    (txn,) = operation(MessagesSaved(USER, "INBOX", UIDVALIDITY, (saved(1),), True))
    assert (txn.group, txn.group_size, txn.group_index) == ("", 1, 0)


def test_item5_rollback_is_a_transaction_without_events_that_rolled_back() -> None:
    (txn,) = operation(TransactionRolledBack(USER, "INBOX"))
    assert (txn.mailbox, txn.service, txn.events, txn.rolled_back) == ("INBOX", "imap", (), True)
