"""Push events and transactions: what drivers receive, with Dovecot's names and fields.

A `PushTransaction` is what Dovecot calls a push txn: the events of one
storage transaction in one mailbox (or of one mailbox operation). It is
built inside the database transaction of the change (the outbox) and stored
as JSON, so everything a driver may need is captured at that moment —
including, for drivers that ask for it, the mailbox's status as of the
commit (`status`), which a script reads with `mailbox:status()`.

The transactions one store operation produced form an *operation group*
(`group`, `group_size`, `group_index`). Dovecot opens a message transaction
at its first change and commits it at the end of the operation, so with
several open at once their calls interleave
(docs/dovecot-reference.md#call-order-of-interleaved-transactions): the
dispatcher runs a group's `deferred` transactions' begin at their place, and
their events and end after the whole group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from mailpush.store.changes import Change
from mailpush.store.models import MailboxStatus

EventName = Literal[
    "FlagsClear",
    "FlagsSet",
    "MailboxCreate",
    "MailboxDelete",
    "MailboxRename",
    "MailboxSubscribe",
    "MailboxUnsubscribe",
    "MessageAppend",
    "MessageExpunge",
    "MessageNew",
    "MessageRead",
    "MessageTrash",
]

#: Dovecot's registration order (push-notification-events-rfc5423.c), which is also
#: the order of `EventName` above; it decides the order of events within one message.
EVENT_NAMES: Final[tuple[EventName, ...]] = get_args(EventName)

MAILBOX_EVENTS: Final[frozenset[str]] = frozenset(
    {"MailboxCreate", "MailboxDelete", "MailboxRename", "MailboxSubscribe", "MailboxUnsubscribe"}
)


@dataclass(frozen=True, slots=True)
class MessageData:
    """Header and body fields of a saved message (MessageNew / MessageAppend).

    `from_`/`to` are raw header values ("" if absent); `subject` is decoded
    (None if there is no Subject header); `subject_raw` keeps the encoded
    words for the OX driver.
    """

    from_: str
    to: str
    from_address: str
    from_display_name: str
    to_address: str
    to_display_name: str
    subject: str | None
    subject_raw: str | None
    date: int
    tz: int
    message_id: str | None
    snippet: str
    size: int
    has_calendar: bool


@dataclass(frozen=True, slots=True)
class PushEvent:
    """One event. Fields that do not apply to an event's type stay at their defaults.

    Flag lists hold names (`\\Seen`) in Dovecot's order: Answered, Flagged,
    Deleted, Seen, Draft, Recent.
    """

    name: EventName
    mailbox: str
    #: MailboxRename: the old name (`mailbox` is the new one).
    mailbox_old: str | None = None
    #: Message events only.
    uid: int | None = None
    uid_validity: int | None = None
    #: MessageNew/Append: flags at save time; FlagsSet: newly set; FlagsClear: cleared.
    flags: tuple[str, ...] = ()
    #: MessageNew/Append: keywords at save time; FlagsSet: added; FlagsClear: removed.
    keywords: tuple[str, ...] = ()
    #: FlagsClear: every flag before the change (with `\\Recent` if the session held it).
    flags_old: tuple[str, ...] = ()
    #: FlagsClear: every keyword before the change.
    keywords_old: tuple[str, ...] = ()
    #: MessageNew/Append only.
    message: MessageData | None = None

    @property
    def is_mailbox_event(self) -> bool:
        return self.name in MAILBOX_EVENTS


@dataclass(frozen=True, slots=True)
class PushTransaction:
    """The events of one change, in order; `id` is stable across retries and restarts."""

    id: str
    user: str
    mailbox: str
    #: Which front end caused it: "lmtp" for deliveries, "imap" otherwise (Lua `user.service`).
    service: str
    created: float
    events: tuple[PushEvent, ...] = field(default_factory=tuple)
    #: The operation group: id shared by the transactions of one store operation
    #: ("" for a transaction that is alone), their number, and this one's place.
    group: str = ""
    group_size: int = 1
    group_index: int = 0
    #: Committed at the end of its group (message transactions): its begin_txn runs
    #: at its place in the group, its events and end_txn after the group's walk.
    deferred: bool = False
    #: Rolled back (a MULTIAPPEND that failed part-way): no events, end_txn(false).
    rolled_back: bool = False
    #: `mailbox`'s status as the transaction committed it, for drivers that want it.
    status: MailboxStatus | None = None

    @property
    def last_in_group(self) -> bool:
        return self.group_index + 1 >= self.group_size


@dataclass(frozen=True, slots=True)
class CompactTransaction:
    """A push transaction before its events are made: what the outbox stores.

    `envelope` is the transaction with everything but its events (id, group,
    service, status); `change` is the store's record the events are made from
    (`events.mapping.expand`). A STORE on 10,000 messages is one FlagsChanged
    here, not 20,000 events.
    """

    envelope: PushTransaction
    change: Change
