"""Typed records of exactly what one store operation changed.

Every mutating store call returns these, and the same records are handed,
inside the still-open database transaction, to the outbox recorder (which
turns them into push events) and, after commit, to the change hub (which
wakes IMAP sessions). A record therefore carries everything a consumer needs
without reading the database again: uids, old and new flags, uidvalidity, and
for saved messages the summary their event fields come from (computed once,
before the write transaction, and kept with the body: store/message_summaries.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mime.summary import MessageSummary


@dataclass(frozen=True, slots=True)
class MailboxCreated:
    user: str
    mailbox: str
    uidvalidity: int
    #: Created by a delivery (INBOX or a Sieve `fileinto :create` target), not by IMAP.
    delivery: bool = False


@dataclass(frozen=True, slots=True)
class MailboxDeleted:
    user: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class MailboxRenamed:
    user: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class SubscriptionChanged:
    user: str
    mailbox: str
    subscribed: bool


@dataclass(frozen=True, slots=True)
class SavedMessage:
    uid: int
    flags: int
    keywords: tuple[str, ...]
    size: int
    internal_date: int
    modseq: int
    #: Header and body facts for push events (`mime.summarize` of the stored body);
    #: None when the store records no pushes (no recorder installed), as nothing reads it.
    summary: MessageSummary | None
    #: For COPY/MOVE, the UID of the source message.
    source_uid: int | None = None


@dataclass(frozen=True, slots=True)
class MessagesSaved:
    """Messages added to one mailbox by one operation.

    `delivery` is true for LMTP, `mailpush deliver` and Sieve filing: Dovecot's
    POST_SESSION distinction between MessageNew and MessageAppend.
    """

    user: str
    mailbox: str
    uidvalidity: int
    messages: tuple[SavedMessage, ...]
    delivery: bool
    #: Set for COPY/MOVE: the mailbox the messages came from.
    source_mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class FlagChange:
    uid: int
    old_flags: int
    new_flags: int
    old_keywords: tuple[str, ...]
    new_keywords: tuple[str, ...]
    modseq: int
    #: Whether the acting session holds `\Recent` for this message (events report it).
    recent: bool = False


@dataclass(frozen=True, slots=True)
class FlagsChanged:
    """Flag and keyword changes of one command in one mailbox; only real changes."""

    user: str
    mailbox: str
    uidvalidity: int
    changes: tuple[FlagChange, ...]
    #: With `unchanged_since`: the UIDs left alone because their modseq was above it
    #: when the write ran (CONDSTORE's `[MODIFIED]`); not part of the push events.
    modified: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class MessagesExpunged:
    user: str
    mailbox: str
    uidvalidity: int
    uids: tuple[int, ...]
    modseq: int


@dataclass(frozen=True, slots=True)
class TransactionRolledBack:
    """A mail transaction that had begun and was rolled back, in `mailbox`.

    An IMAP MULTIAPPEND that fails after it accepted a message: Dovecot had
    begun the push transaction at the first save and ends it with
    `end_txn(ctx, false)`, without events
    (docs/dovecot-reference.md#rolled-back-transactions). The store changed
    nothing; the record exists so that call is made too.
    """

    user: str
    mailbox: str


@dataclass(frozen=True, slots=True)
class ChangedElsewhere:
    """Another process committed changes to this user's mail (the change feed heard it).

    It carries no records: a datagram or a NOTIFY may be lost or coalesced, so a
    session that hears it reads what changed since the modseq it knows from the
    store, and the dispatcher looks at the outbox. `mailbox` is None when the
    announcer did not say which (any of the user's mailboxes may have changed).
    Never handed to the outbox recorder: the process that made the change did that.
    """

    user: str
    mailbox: str | None


Change = (
    MailboxCreated
    | MailboxDeleted
    | MailboxRenamed
    | SubscriptionChanged
    | MessagesSaved
    | FlagsChanged
    | MessagesExpunged
    | TransactionRolledBack
    | ChangedElsewhere
)
