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
