"""How one store change becomes push transactions, with Dovecot 2.3.19's semantics.

The store hands every change record to the outbox recorder inside its own
database transaction; this module is the pure function in the middle. It
reproduces what Dovecot's push-notification plugin does (the triggers of
dovecot-push.md §1.5) and, where real Dovecot was seen to differ from its
source, what it did (dovecot-observed.md items 15, 22, 25-34):

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

Being pure (ids and clock injected) keeps it deterministic under test and
lets the caller run it while holding the store's write lock.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from mailpush.events.model import EventName, MessageData, PushEvent, PushTransaction
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

__all__ = ["transactions_for_change", "transactions_for_operation"]

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
    mapped: list[PushTransaction] = []
    for position, change in enumerate(changes):
        deferred = _is_message_change(change) and not _mailbox_goes_later(
            change.mailbox, changes[position + 1 :]
        )
        mapped.extend(
            dataclasses.replace(txn, deferred=deferred)
            for txn in transactions_for_change(change, new_id=new_id, now=now)
        )
    if len(mapped) < 2:
        return mapped
    group = new_id()
    return [
        dataclasses.replace(txn, group=group, group_size=len(mapped), group_index=index)
        for index, txn in enumerate(mapped)
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
    storage transaction had no mail event (observed item 6).

    Raises TypeError for a record type this function does not know: that is
    a programming error in the store, and silently dropping notifications
    would hide it.
    """
    if isinstance(change, MailboxCreated):
        events = [PushEvent("MailboxCreate", change.mailbox)]
        service = _SERVICE_LMTP if change.delivery else _SERVICE_IMAP
        return [_transaction(change.user, change.mailbox, service, events, new_id, now)]
    if isinstance(change, MailboxDeleted):
        events = [PushEvent("MailboxDelete", change.mailbox)]
        return [_transaction(change.user, change.mailbox, _SERVICE_IMAP, events, new_id, now)]
    if isinstance(change, MailboxRenamed):
        # Dovecot runs the txn on the destination and reports the new name as `mailbox`.
        events = [PushEvent("MailboxRename", change.new, mailbox_old=change.old)]
        return [_transaction(change.user, change.new, _SERVICE_IMAP, events, new_id, now)]
    if isinstance(change, SubscriptionChanged):
        name: EventName = "MailboxSubscribe" if change.subscribed else "MailboxUnsubscribe"
        events = [PushEvent(name, change.mailbox)]
        return [_transaction(change.user, change.mailbox, _SERVICE_IMAP, events, new_id, now)]
    if isinstance(change, MessagesSaved):
        return _saved_transactions(change, new_id, now)
    if isinstance(change, FlagsChanged):
        return _flag_transactions(change, new_id, now)
    if isinstance(change, MessagesExpunged):
        return _expunge_transactions(change, new_id, now)
    if isinstance(change, TransactionRolledBack):
        txn = _transaction(change.user, change.mailbox, _SERVICE_IMAP, [], new_id, now)
        return [dataclasses.replace(txn, rolled_back=True)]
    raise TypeError(
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
    events: list[PushEvent],
    new_id: Callable[[], str],
    now: Callable[[], float],
) -> PushTransaction:
    return PushTransaction(
        id=new_id(),
        user=user,
        mailbox=mailbox,
        service=service,
        created=now(),
        events=tuple(events),
    )


def _saved_transactions(
    change: MessagesSaved, new_id: Callable[[], str], now: Callable[[], float]
) -> list[PushTransaction]:
    if not change.messages:
        return []
    # POST_SESSION decides it: deliveries (LMTP, Sieve filing) are MessageNew; APPEND,
    # COPY and MOVE - even COPY into the selected mailbox - are MessageAppend (item 15).
    name: EventName = "MessageNew" if change.delivery else "MessageAppend"
    events = [_saved_event(name, change, saved) for saved in change.messages]
    service = _SERVICE_LMTP if change.delivery else _SERVICE_IMAP
    return [_transaction(change.user, change.mailbox, service, events, new_id, now)]


def _saved_event(name: EventName, change: MessagesSaved, saved: SavedMessage) -> PushEvent:
    summary = summarize(saved.raw)
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


def _expunge_transactions(
    change: MessagesExpunged, new_id: Callable[[], str], now: Callable[[], float]
) -> list[PushTransaction]:
    # Dovecot records an expunge once per message, and the observed order was UID order.
    uids = sorted(set(change.uids))
    if not uids:
        return []
    events = [
        PushEvent("MessageExpunge", change.mailbox, uid=uid, uid_validity=change.uidvalidity)
        for uid in uids
    ]
    return [_transaction(change.user, change.mailbox, _SERVICE_IMAP, events, new_id, now)]


def _flag_transactions(
    change: FlagsChanged, new_id: Callable[[], str], now: Callable[[], float]
) -> list[PushTransaction]:
    # Dovecot keeps one record per message for the whole storage transaction, so two
    # changes of the same message in one record accumulate instead of repeating events.
    records: dict[int, _FlagRecord] = {}
    for flag_change in change.changes:
        record = records.get(flag_change.uid, _FlagRecord(flag_change.uid))
        if record.apply(flag_change):
            records.setdefault(flag_change.uid, record)
    if not records:
        return []
    events: list[PushEvent] = []
    for record in records.values():
        events.extend(record.events(change.mailbox, change.uidvalidity))
    return [_transaction(change.user, change.mailbox, _SERVICE_IMAP, events, new_id, now)]


@dataclass(slots=True)
class _FlagRecord:
    """What Dovecot's FlagsClear/FlagsSet/MessageRead/MessageTrash triggers collect
    for one message over one storage transaction (dovecot-push.md §1.5, Lua configs:
    FlagsSet shows Seen and Deleted, FlagsClear stores old values).
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
