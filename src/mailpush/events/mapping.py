"""How one store change becomes push transactions, with Dovecot 2.3.19's semantics.

The store hands every change record to the outbox recorder inside its own
database transaction; this module is the pure function in the middle. It
reproduces what Dovecot's push-notification plugin does and, where real
Dovecot was seen to differ from its source, what it did
(docs/dovecot-reference.md#which-operations-produce-which-events,
docs/dovecot-reference.md#flag-and-keyword-changes,
docs/dovecot-reference.md#expunge-move-and-delete):

* a mailbox operation is one transaction with one event;
* a save, flag change or expunge is one transaction for the whole record
  (Dovecot: one per storage transaction, i.e. per command per mailbox);
* per message, flag events come in the plugin's fixed order FlagsClear,
  FlagsSet, MessageRead, MessageTrash, and FlagsClear is there for every
  flag or keyword change, even when nothing was cleared;
* a rolled-back mail transaction (`TransactionRolledBack`) is a transaction
  without events that ends unsuccessfully (item 5).

`transactions_for_operation` maps the changes of one store operation as one
*operation group*, in the order Dovecot opens their transactions (item 4): a
mailbox operation completes where it happens; a message transaction opens
there and commits with the operation, so it is `deferred` — unless a later
change of the operation deletes or renames its mailbox, which Dovecot can only
do once the transaction committed (item 34: a DELETE's expunges come first,
complete). MOVE thus opens the destination's transaction, then the source's,
and commits them in that order; a Sieve delivery into two new folders gives
create One, open One, create Two, open Two, commit One, commit Two.

Being pure (ids and clock injected) keeps it deterministic under test. It
works in two steps so that the write transaction pays only for the first:
`compact_transactions_for_operation` decides the transactions (ids, group,
order, service) with the change each reports, which the outbox stores as it
is; `expand` makes the events from that, when the dispatcher reads the row.
An expanded transaction is the same whenever it is made.

"Item N" is observation N of docs/dovecot-reference.md#numbered-observations,
which names the heading that describes it.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from mailpush.events.model import (
    CompactTransaction,
    EventName,
    MessageData,
    PushEvent,
    PushTransaction,
)
from mailpush.mime import MessageSummary
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

__all__ = [
    "compact_transactions_for_operation",
    "event_counts",
    "events_for_change",
    "expand",
    "transactions_for_change",
    "transactions_for_operation",
]

#: Front ends as Lua's `user.service` names them.
_SERVICE_LMTP = "lmtp"
_SERVICE_IMAP = "imap"


def _random_id() -> str:
    return uuid.uuid4().hex


def transactions_for_operation(
    changes: Sequence[Change],
    *,
    new_id: Callable[[], str] = _random_id,
    now: Callable[[], float] = time.time,
) -> list[PushTransaction]:
    """The push transactions of one store operation's `changes`, as one group.

    Each transaction is what `transactions_for_change` makes, marked
    `deferred` as the module docstring says; when there are several, they
    share a new group id and carry their size and places.
    """
    return [
        expand(compact)
        for compact in compact_transactions_for_operation(changes, new_id=new_id, now=now)
    ]


def compact_transactions_for_operation(
    changes: Sequence[Change],
    *,
    new_id: Callable[[], str] = _random_id,
    now: Callable[[], float] = time.time,
) -> list[CompactTransaction]:
    """`transactions_for_operation` before the events are made: each transaction's
    envelope with the change it reports, `expand`ed later.

    This is what the outbox recorder needs inside the write transaction: ids,
    group and order are decided there, while the events (thousands for a STORE
    on 1:*) are made by whoever reads the outbox row, outside it.
    """
    mapped: list[CompactTransaction] = []
    for position, change in enumerate(changes):
        envelope = _envelope(change, new_id, now)
        if envelope is None:
            continue
        deferred = _is_message_change(change) and not _mailbox_goes_later(
            change.mailbox, changes[position + 1 :]
        )
        mapped.append(CompactTransaction(dataclasses.replace(envelope, deferred=deferred), change))
    if len(mapped) < 2:
        return mapped
    group = new_id()
    return [
        dataclasses.replace(
            compact,
            envelope=dataclasses.replace(
                compact.envelope, group=group, group_size=len(mapped), group_index=index
            ),
        )
        for index, compact in enumerate(mapped)
    ]


def transactions_for_change(
    change: Change,
    *,
    new_id: Callable[[], str] = _random_id,
    now: Callable[[], float] = time.time,
) -> list[PushTransaction]:
    """The push transactions Dovecot would run for `change`, in order.

    Returns a list because a record that changed nothing (no messages, no
    uids) yields no transaction at all: Dovecot calls no driver when a
    storage transaction had no mail event
    (docs/dovecot-reference.md#no-change-no-transaction).

    Raises TypeError for a record type this function does not know: that is
    a programming error in the store, and silently dropping notifications
    would hide it.
    """
    envelope = _envelope(change, new_id, now)
    if envelope is None:
        return []
    return [expand(CompactTransaction(envelope, change))]


def expand(compact: CompactTransaction) -> PushTransaction:
    """The transaction with its events: the same for the same change, however late."""
    return dataclasses.replace(compact.envelope, events=events_for_change(compact.change))


def events_for_change(change: Change) -> tuple[PushEvent, ...]:
    """The events of the transaction `change` makes (none for a rolled-back one)."""
    if isinstance(change, MailboxCreated):
        return (PushEvent("MailboxCreate", change.mailbox),)
    if isinstance(change, MailboxDeleted):
        return (PushEvent("MailboxDelete", change.mailbox),)
    if isinstance(change, MailboxRenamed):
        # Dovecot runs the txn on the destination and reports the new name as `mailbox`.
        return (PushEvent("MailboxRename", change.new, mailbox_old=change.old),)
    if isinstance(change, SubscriptionChanged):
        name: EventName = "MailboxSubscribe" if change.subscribed else "MailboxUnsubscribe"
        return (PushEvent(name, change.mailbox),)
    if isinstance(change, MessagesSaved):
        return _saved_events(change)
    if isinstance(change, FlagsChanged):
        return _flag_events(change)
    if isinstance(change, MessagesExpunged):
        return _expunge_events(change)
    if isinstance(change, TransactionRolledBack):
        return ()
    raise _unsupported(change)


def event_counts(change: Change) -> dict[EventName, int]:
    """How many events of each name `events_for_change` makes, without making them.

    Cheap enough for the write transaction: the outbox recorder counts events
    (metrics) and skips drivers that subscribe to none of them.
    """
    if isinstance(change, MessagesSaved):
        return {_saved_name(change): len(change.messages)} if change.messages else {}
    if isinstance(change, MessagesExpunged):
        count = len(set(change.uids))
        return {"MessageExpunge": count} if count else {}
    if isinstance(change, FlagsChanged):
        counts: dict[EventName, int] = {}
        for record in _flag_records(change).values():
            for name in record.event_names():
                counts[name] = counts.get(name, 0) + 1
        return counts
    return {event.name: 1 for event in events_for_change(change)}


def _envelope(
    change: Change, new_id: Callable[[], str], now: Callable[[], float]
) -> PushTransaction | None:
    """The transaction `change` makes, without its events; None if it makes none."""
    if isinstance(change, MailboxCreated):
        service = _SERVICE_LMTP if change.delivery else _SERVICE_IMAP
        return _transaction(change.user, change.mailbox, service, new_id, now)
    if isinstance(change, MailboxDeleted | SubscriptionChanged):
        return _transaction(change.user, change.mailbox, _SERVICE_IMAP, new_id, now)
    if isinstance(change, MailboxRenamed):
        return _transaction(change.user, change.new, _SERVICE_IMAP, new_id, now)
    if isinstance(change, MessagesSaved):
        if not change.messages:
            return None
        service = _SERVICE_LMTP if change.delivery else _SERVICE_IMAP
        return _transaction(change.user, change.mailbox, service, new_id, now)
    if isinstance(change, FlagsChanged):
        if not any(_changes_something(flag_change) for flag_change in change.changes):
            return None
        return _transaction(change.user, change.mailbox, _SERVICE_IMAP, new_id, now)
    if isinstance(change, MessagesExpunged):
        if not change.uids:
            return None
        return _transaction(change.user, change.mailbox, _SERVICE_IMAP, new_id, now)
    if isinstance(change, TransactionRolledBack):
        txn = _transaction(change.user, change.mailbox, _SERVICE_IMAP, new_id, now)
        return dataclasses.replace(txn, rolled_back=True)
    raise _unsupported(change)


def _unsupported(change: object) -> TypeError:
    return TypeError(
        f"transactions_for_change: unsupported change record {type(change).__name__!r}"
        " (expected one of the types in mailpush.store.changes)"
    )


def _is_message_change(
    change: Change,
) -> TypeGuard[MessagesSaved | FlagsChanged | MessagesExpunged]:
    return isinstance(change, MessagesSaved | FlagsChanged | MessagesExpunged)


def _mailbox_goes_later(mailbox: str, later: Sequence[Change]) -> bool:
    """Whether one of `later` deletes or renames `mailbox` (its transaction commits first)."""
    return any(
        (isinstance(change, MailboxDeleted) and change.mailbox == mailbox)
        or (isinstance(change, MailboxRenamed) and change.old == mailbox)
        for change in later
    )


def _transaction(
    user: str,
    mailbox: str,
    service: str,
    new_id: Callable[[], str],
    now: Callable[[], float],
) -> PushTransaction:
    return PushTransaction(id=new_id(), user=user, mailbox=mailbox, service=service, created=now())


def _saved_name(change: MessagesSaved) -> EventName:
    # POST_SESSION decides it: deliveries (LMTP, Sieve filing) are MessageNew; APPEND,
    # COPY and MOVE - even COPY into the selected mailbox - are MessageAppend (item 15).
    return "MessageNew" if change.delivery else "MessageAppend"


def _saved_events(change: MessagesSaved) -> tuple[PushEvent, ...]:
    name = _saved_name(change)
    return tuple(_saved_event(name, change, saved) for saved in change.messages)


def _saved_event(name: EventName, change: MessagesSaved, saved: SavedMessage) -> PushEvent:
    summary = saved_summary(change, saved)
    message = MessageData(
        from_=summary.from_,
        to=summary.to,
        from_address=summary.from_address,
        from_display_name=summary.from_display_name,
        to_address=summary.to_address,
        to_display_name=summary.to_display_name,
        subject=summary.subject,
        subject_raw=summary.subject_raw,
        date=summary.date,
        tz=summary.tz,
        message_id=summary.message_id,
        snippet=summary.snippet,
        size=saved.size,
        has_calendar=summary.has_calendar,
    )
    return PushEvent(
        name,
        change.mailbox,
        uid=saved.uid,
        uid_validity=change.uidvalidity,
        # The source reads flags with mail_get_flags() (which may include \Recent), but
        # Dovecot was never seen to report \Recent here, not even for an APPEND to the
        # selected INBOX (items 22, 28).
        flags=tuple(F.flag_names(saved.flags & F.STORED_FLAGS)),
        keywords=saved.keywords,
        message=message,
    )


def saved_summary(change: MessagesSaved, saved: SavedMessage) -> MessageSummary:
    """The summary a saved message's event is made from.

    The store leaves it out only while it records no pushes (store/changes.py), so
    a record without one reaching a push transaction is a store bug: reported,
    not turned into an event with empty fields.
    """
    if saved.summary is None:
        raise ValueError(
            f"{change.user}: message {saved.uid} saved in {change.mailbox!r} has no summary;"
            " the store must make one whenever an outbox recorder is installed"
        )
    return saved.summary


def _expunge_events(change: MessagesExpunged) -> tuple[PushEvent, ...]:
    # Dovecot records an expunge once per message, and the observed order was UID order.
    return tuple(
        PushEvent("MessageExpunge", change.mailbox, uid=uid, uid_validity=change.uidvalidity)
        for uid in sorted(set(change.uids))
    )


def _flag_events(change: FlagsChanged) -> tuple[PushEvent, ...]:
    events: list[PushEvent] = []
    for record in _flag_records(change).values():
        events.extend(record.events(change.mailbox, change.uidvalidity))
    return tuple(events)


def _flag_records(change: FlagsChanged) -> dict[int, _FlagRecord]:
    # Dovecot keeps one record per message for the whole storage transaction, so two
    # changes of the same message in one record accumulate instead of repeating events.
    records: dict[int, _FlagRecord] = {}
    for flag_change in change.changes:
        record = records.get(flag_change.uid, _FlagRecord(flag_change.uid))
        if record.apply(flag_change):
            records.setdefault(flag_change.uid, record)
    return records


def _changes_something(change: FlagChange) -> bool:
    """Whether a flag change triggers anything (`_FlagRecord.apply` is true for it)."""
    return (change.old_flags ^ change.new_flags) & F.STORED_FLAGS != 0 or _fold(
        change.old_keywords
    ) != _fold(change.new_keywords)


@dataclass(slots=True)
class _FlagRecord:
    """What Dovecot's FlagsClear/FlagsSet/MessageRead/MessageTrash triggers collect
    for one message over one storage transaction
    (docs/dovecot-reference.md#flag-and-keyword-changes: for a Lua driver FlagsSet
    reports Seen and Deleted too, and FlagsClear keeps the old values).
    """

    uid: int
    cleared: int = 0
    newly_set: int = 0
    #: FlagsClear exists for every trigger; FlagsSet only for a newly set flag or any
    #: keyword change; so the record, once triggered, always holds FlagsClear.
    flags_set_created: bool = False
    #: Bitmask incl. \Recent; overwritten by each system-flag change, untouched by
    #: keyword-only ones (hence [] when only keywords changed, item 28).
    flags_old: int = 0
    removed_keywords: list[str] = field(default_factory=list)
    added_keywords: list[str] = field(default_factory=list)
    #: Every old keyword list appended, once per keyword change (item 29).
    keywords_old: list[str] = field(default_factory=list)
    read: bool = False
    trash: bool = False

    def apply(self, change: FlagChange) -> bool:
        """Run the flag and keyword triggers for one change; False if it changed nothing."""
        old = change.old_flags & F.STORED_FLAGS
        new = change.new_flags & F.STORED_FLAGS
        flags_changed = old != new
        keywords_changed = _fold(change.old_keywords) != _fold(change.new_keywords)
        if flags_changed:
            self._flag_trigger(old, new, change.recent)
        if keywords_changed:
            self._keyword_trigger(change.old_keywords, change.new_keywords)
        return flags_changed or keywords_changed

    def _flag_trigger(self, old: int, new: int, recent: bool) -> None:
        self.cleared |= old & ~new
        self.flags_old = old | (F.RECENT if recent else 0)
        added = new & ~old
        if added:
            self.newly_set |= added
            self.flags_set_created = True
        if added & F.SEEN:
            self.read = True
        if added & F.DELETED:
            self.trash = True

    def _keyword_trigger(self, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        old_folded = set(_fold(old))
        new_folded = set(_fold(new))
        self.removed_keywords.extend(k for k in old if k.lower() not in new_folded)
        self.added_keywords.extend(k for k in new if k.lower() not in old_folded)
        self.keywords_old.extend(old)
        # Unconditional on a keyword change, even if nothing was added (item 26).
        self.flags_set_created = True

    def event_names(self) -> list[EventName]:
        """The names of `events`, in their order."""
        names: list[EventName] = ["FlagsClear"]
        if self.flags_set_created:
            names.append("FlagsSet")
        if self.read:
            names.append("MessageRead")
        if self.trash:
            names.append("MessageTrash")
        return names

    def events(self, mailbox: str, uid_validity: int) -> list[PushEvent]:
        events = [
            PushEvent(
                "FlagsClear",
                mailbox,
                uid=self.uid,
                uid_validity=uid_validity,
                flags=tuple(F.flag_names(self.cleared)),
                keywords=tuple(self.removed_keywords),
                flags_old=tuple(F.flag_names(self.flags_old)),
                keywords_old=tuple(self.keywords_old),
            )
        ]
        if self.flags_set_created:
            events.append(
                PushEvent(
                    "FlagsSet",
                    mailbox,
                    uid=self.uid,
                    uid_validity=uid_validity,
                    flags=tuple(F.flag_names(self.newly_set)),
                    keywords=tuple(self.added_keywords),
                )
            )
        if self.read:
            events.append(
                PushEvent("MessageRead", mailbox, uid=self.uid, uid_validity=uid_validity)
            )
        if self.trash:
            events.append(
                PushEvent("MessageTrash", mailbox, uid=self.uid, uid_validity=uid_validity)
            )
        return events


def _fold(keywords: tuple[str, ...]) -> list[str]:
    """Keywords as IMAP compares them: case-insensitively (ASCII atoms)."""
    return [keyword.lower() for keyword in keywords]
