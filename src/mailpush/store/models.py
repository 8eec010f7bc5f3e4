"""What store reads return: plain frozen records, free of any database detail."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: str | None
    #: False for a parent that exists only because it has children (`\Noselect`).
    selectable: bool = True


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    mailbox: str
    messages: int
    recent: int
    unseen: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int
    #: Lowest UID without `\Seen`, or None if every message is seen.
    first_unseen_uid: int | None
    keywords: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MessageInfo:
    uid: int
    flags: int
    keywords: tuple[str, ...]
    size: int
    internal_date: int
    internal_tz: int
    modseq: int
    recent: bool


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append: the raw bytes are stored exactly as given."""

    raw: bytes
    flags: int = 0
    keywords: tuple[str, ...] = ()
    #: Epoch seconds; None means now.
    internal_date: int | None = None
    internal_tz: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """One mailbox a delivery files into (INBOX, a +detail mailbox, a Sieve fileinto)."""

    mailbox: str
    flags: int = 0
    keywords: tuple[str, ...] = ()
    #: Create the mailbox if missing (INBOX is always created).
    create: bool = False


# --- the push outbox ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One push transaction claimed for one driver instance."""

    outbox_id: int
    driver: str
    user: str
    txn_id: str
    payload: bytes
    #: Attempts made before this one.
    attempts: int
    #: When the first attempt was made (None: this is the first), for the maximum age.
    first_attempt: float | None
    created: float
    #: `transaction` (payload: a push transaction) or `http_request` (a journaled request).
    kind: str = "transaction"


@dataclass(frozen=True, slots=True)
class DriverQueueStats:
    driver: str
    pending: int
    inflight: int
    retrying: int
    dead: int
    done: int
    #: Seconds since the oldest not yet delivered transaction was committed.
    oldest_age: float | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    outbox_id: int
    driver: str
    user: str
    txn_id: str
    attempts: int
    created: float
    finished: float | None
    last_error: str | None
    kind: str = "transaction"


@dataclass(frozen=True, slots=True)
class InflightRecovery:
    """What start-up did with deliveries a dead process had claimed."""

    #: Claimed ones made pending again.
    pending_again: int
    #: Ones that were running when the process died too often: now dead letters.
    buried: tuple[DeadLetter, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A committed push transaction as stored (for `mailpush events tail`)."""

    outbox_id: int
    user: str
    txn_id: str
    created: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """What SELECT reads: a mailbox's status and every message's metadata (UID order),
    as of one moment. Read in two steps, a delivery in between made the messages
    outnumber EXISTS's count and list a UID at or above UIDNEXT."""

    status: MailboxStatus
    messages: tuple[MessageInfo, ...]


@dataclass(frozen=True, slots=True)
class MailboxChanges:
    """What changed in a mailbox after a modseq: CONDSTORE/QRESYNC resync and the reaction
    of a session to another process's commit (it has no change records, only the store)."""

    uidvalidity: int
    highestmodseq: int
    uidnext: int
    #: Messages whose modseq is above the one asked about (new or flags changed), by UID.
    messages: tuple[MessageInfo, ...]
    #: UIDs expunged after that modseq, ascending.
    expunged: tuple[int, ...]
