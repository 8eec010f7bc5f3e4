"""The store interface: what the front ends and the push framework may ask of a store.

`SqliteStore` is the first implementation; a PostgreSQL one (several nodes
sharing one database) must satisfy the same protocol, so nothing here may
mention SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

from .change_hub import ChangeHub
from .changes import (
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesExpunged,
    MessagesSaved,
    SubscriptionChanged,
    TransactionRolledBack,
)
from .models import (
    DeliveryTarget,
    MailboxChanges,
    MailboxInfo,
    MailboxSnapshot,
    MailboxStatus,
    MessageInfo,
    NewMessage,
)
from .outbox import OutboxRecorder, PushOutbox

FlagMode = Literal["add", "remove", "replace"]


class MailStore(Protocol):
    """Every mutation is one transaction returning a record of what changed."""

    hub: ChangeHub

    @property
    def outbox(self) -> PushOutbox:
        """The push outbox rows written beside this store's changes."""
        ...

    def open(self) -> None: ...
    def close(self) -> None: ...
    def set_recorder(self, recorder: OutboxRecorder | None) -> None: ...

    async def create_mailbox(
        self, user: str, name: str, special_use: str | None = None
    ) -> MailboxCreated: ...
    async def ensure_mailboxes(
        self, user: str, names: Sequence[tuple[str, str | None]]
    ) -> list[MailboxCreated]: ...
    async def delete_mailbox(self, user: str, name: str) -> MailboxDeleted: ...
    async def rename_mailbox(self, user: str, old: str, new: str) -> MailboxRenamed: ...
    async def subscribe(self, user: str, name: str) -> SubscriptionChanged | None: ...
    async def unsubscribe(self, user: str, name: str) -> SubscriptionChanged | None: ...

    async def append(
        self, user: str, mailbox: str, messages: Sequence[NewMessage]
    ) -> MessagesSaved: ...
    async def deliver(
        self, user: str, raw: bytes, targets: Sequence[DeliveryTarget]
    ) -> list[MessagesSaved]: ...
    async def copy(
        self, user: str, source: str, uids: Iterable[int], dest: str
    ) -> MessagesSaved: ...
    async def move(
        self, user: str, source: str, uids: Iterable[int], dest: str
    ) -> tuple[MessagesSaved, MessagesExpunged]: ...
    async def update_flags(
        self,
        user: str,
        mailbox: str,
        uids: Iterable[int],
        mode: FlagMode,
        flags: int = 0,
        keywords: Sequence[str] = (),
        recent_uids: frozenset[int] = frozenset(),
        unchanged_since: int | None = None,
    ) -> FlagsChanged: ...
    async def expunge(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> MessagesExpunged: ...
    async def take_recent(
        self, user: str, mailbox: str, up_to_uid: int | None = None
    ) -> list[int]:
        """Claim the unclaimed `\\Recent` messages (up to `up_to_uid`) for one session."""
        ...
    async def record_rollback(self, user: str, mailbox: str) -> TransactionRolledBack:
        """A mail transaction that began (a message accepted) was rolled back."""
        ...

    async def list_mailboxes(self, user: str) -> list[MailboxInfo]: ...
    async def subscriptions(self, user: str) -> list[str]: ...
    async def mailbox(self, user: str, name: str) -> MailboxInfo: ...
    async def status(self, user: str, mailbox: str) -> MailboxStatus: ...
    async def snapshot(self, user: str, mailbox: str) -> MailboxSnapshot:
        """The status and every message of `mailbox` in one read (SELECT)."""
        ...
    async def messages(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> list[MessageInfo]: ...
    async def changes_since(self, user: str, mailbox: str, modseq: int) -> MailboxChanges:
        """Messages and expunged UIDs whose modseq is above `modseq`, with the mailbox's
        counters, as one consistent read (CONDSTORE/QRESYNC, another process's commit)."""
        ...
    async def raw_message(self, user: str, mailbox: str, uid: int) -> bytes: ...
    async def raw_messages(
        self, user: str, mailbox: str, uids: Iterable[int]
    ) -> dict[int, bytes]: ...

    # RFC 5464 METADATA: `mailbox=None` means server entries. Entry names are full
    # (`/private/...`, `/shared/...`) and case-insensitive; writes record no change.
    async def get_metadata(self, user: str, mailbox: str | None, entry: str) -> str | None: ...
    async def set_metadata(
        self, user: str, mailbox: str | None, entry: str, value: str | None
    ) -> None: ...
    async def set_metadata_entries(
        self, user: str, mailbox: str | None, values: Mapping[str, str | None]
    ) -> None: ...
    async def list_metadata(
        self, user: str, mailbox: str | None, prefix: str = ""
    ) -> dict[str, str]: ...
