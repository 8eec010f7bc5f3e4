"""The outbox's compact form: a change record stored as it is, its events made on reading.

The outbox recorder runs inside the store's write transaction, so it stores
each push transaction as its envelope plus the change record
(`compact_transaction_to_json`, version 2) and the dispatcher makes the
events when it reads the row (`transaction_from_json`). What a driver gets
must be exactly what mapping the change at once gives.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter

import pytest

from mailpush.events import (
    CompactTransaction,
    EventFormatError,
    compact_transaction_to_json,
    compact_transactions_for_operation,
    event_counts,
    events_for_change,
    expand,
    transaction_from_json,
    transaction_to_json,
    transactions_for_operation,
)
from mailpush.mime import summarize
from mailpush.store import MailboxStatus
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

RAW = (
    b"From: =?UTF-8?Q?J=C3=B6rg?= <j@example.net>\r\nTo: alice@example.org\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@example.net>\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n\r\nHello there\r\n"
)
NO_SUBJECT = b"From: a@example.org\r\n\r\n\xff broken utf-8 body\r\n"


def saved(uid: int, raw: bytes = RAW, flags: int = 0, keywords: tuple[str, ...] = (),
          source_uid: int | None = None) -> SavedMessage:
    return SavedMessage(uid, flags, keywords, len(raw), 1_700_000_000, 9, summarize(raw),
                        source_uid)


def flag(uid: int, old: int, new: int, old_kw: tuple[str, ...] = (),
         new_kw: tuple[str, ...] = (), recent: bool = False) -> FlagChange:
    return FlagChange(uid, old, new, old_kw, new_kw, 12, recent)


OPERATIONS: dict[str, list[Change]] = {
    "delivery": [
        MailboxCreated("alice", "INBOX", 7, delivery=True),
        MessagesSaved("alice", "INBOX", 7, (saved(1), saved(2, NO_SUBJECT)), delivery=True),
    ],
    "move": [
        MessagesSaved("alice", "Work", 8, (saved(1, flags=F.SEEN, keywords=("$Label1",),
                                                 source_uid=4),),
                      delivery=False, source_mailbox="INBOX"),
        MessagesExpunged("alice", "INBOX", 7, (4,), 13),
    ],
    "store_with_repeats_and_a_case_only_keyword_change": [
        FlagsChanged("alice", "INBOX", 7, (
            flag(1, 0, F.SEEN | F.DELETED, recent=True),
            flag(2, F.SEEN, 0, ("$Work",), ("$Work", "Late")),
            flag(2, 0, F.FLAGGED),
            flag(3, 0, 0, ("$work",), ("$WORK",)),
        )),
    ],
    "delete_with_its_messages": [
        MessagesExpunged("alice", "Old", 9, (3, 1, 3), 20),
        MailboxDeleted("alice", "Old"),
    ],
    "mailbox_operations": [
        MailboxRenamed("alice", "A", "B"),
        SubscriptionChanged("alice", "B", True),
        SubscriptionChanged("alice", "B", False),
    ],
    "rolled_back_multiappend": [TransactionRolledBack("alice", "INBOX")],
}


def compact_of(changes: list[Change]) -> list[CompactTransaction]:
    ids = (f"t{n}" for n in itertools.count(1))
    return compact_transactions_for_operation(
        changes, new_id=lambda: next(ids), now=lambda: 1_700_000_000.5
    )


@pytest.mark.parametrize("name", OPERATIONS)
def test_a_stored_compact_transaction_reads_back_as_mapping_it_at_once(name: str) -> None:
    changes = OPERATIONS[name]
    ids = (f"t{n}" for n in itertools.count(1))
    at_once = transactions_for_operation(
        changes, new_id=lambda: next(ids), now=lambda: 1_700_000_000.5
    )
    compact = compact_of(changes)
    read_back = [transaction_from_json(compact_transaction_to_json(c)) for c in compact]
    assert read_back == at_once
    # Byte for byte what the version-1 form of the same transaction holds.
    assert [transaction_to_json(t) for t in read_back] == [transaction_to_json(t)
                                                           for t in at_once]


def test_a_change_that_changes_nothing_is_no_transaction_in_either_form() -> None:
    only_case = FlagsChanged("alice", "INBOX", 7, (flag(3, 0, 0, ("$work",), ("$WORK",)),))
    assert compact_of([only_case]) == []
    assert transactions_for_operation([only_case]) == []


@pytest.mark.parametrize("name", OPERATIONS)
def test_event_counts_match_the_events_made(name: str) -> None:
    for change in OPERATIONS[name]:
        made = Counter(event.name for event in events_for_change(change))
        assert Counter(event_counts(change)) == made


def test_the_status_travels_with_the_envelope() -> None:
    (compact,) = compact_of([MessagesSaved("alice", "INBOX", 7, (saved(1),), delivery=True)])
    status = MailboxStatus("INBOX", 1, 1, 1, 2, 7, 3, 1, ("$Label1",))
    with_status = dataclasses.replace(
        compact, envelope=dataclasses.replace(compact.envelope, status=status)
    )
    assert transaction_from_json(compact_transaction_to_json(with_status)).status == status


def test_a_store_on_many_messages_is_stored_as_its_changes_not_its_events() -> None:
    changes = tuple(flag(uid, 0, F.SEEN) for uid in range(1, 10_001))
    (compact,) = compact_of([FlagsChanged("alice", "INBOX", 7, changes)])
    stored = compact_transaction_to_json(compact)
    document = json.loads(stored)
    assert "events" not in document and len(document["change"]["changes"]) == 10_000
    # Three events per message (FlagsClear, FlagsSet, MessageRead) when expanded.
    assert len(transaction_to_json(expand(compact))) > 4 * len(stored)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "nothing"}, "unknown change type 'nothing'"),
        ({"type": "flags", "mailbox": "INBOX", "uidvalidity": 7, "changes": [[1, 0]]},
         "expected a list of 7 values"),
        ({"type": "saved", "mailbox": "INBOX", "uidvalidity": 7,
          "messages": [[1, 0, [], 10, 0, 1, ["too", "short"], None]]}, "message summary"),
        ({"type": "expunged", "mailbox": "INBOX", "uidvalidity": 7, "uids": ["1"],
          "modseq": 2}, "expected integers"),
    ],
)
def test_a_malformed_change_is_refused_with_where(change: dict[str, object], message: str) -> None:
    row = {"v": 2, "id": "x", "user": "alice", "mailbox": "INBOX", "service": "imap",
           "created": 1.0, "change": change}
    with pytest.raises(EventFormatError, match="push transaction 'x', change") as refused:
        transaction_from_json(json.dumps(row).encode())
    assert message in str(refused.value)
