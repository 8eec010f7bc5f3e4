"""The store operations both backends share: every `MailStore` call, forwarded.

`SqliteStore` and `PostgresStore` run the very same operations
(`sqlite_mailboxes`, `sqlite_messages`, `sqlite_metadata`,
`sqlite_pushed_ids`) over their own writer and readers; only the lifecycle
(connections, threads, migrations) differs. So the forwarding lives here once,
and a backend sets the operation objects and says whether pushes are recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import StoreError
from ..mime import MessageSummary, summarize
from .base import FlagMode
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
from .sqlite_mailboxes import SqliteMailboxes
from .sqlite_messages import SqliteMessages
from .sqlite_metadata import SqliteMetadata
from .sqlite_pushed_ids import SqlitePushedMessageIds

__all__ = ["INLINE_PARSE_BYTES", "StoreOperations"]

#: Messages up to this size (together) are summarised on the event loop (~0.1 ms for
#: a few KiB); larger ones on the parser threads.
INLINE_PARSE_BYTES = 32 * 1024


class StoreOperations:
    """The `MailStore` calls, forwarded to the shared operation objects a backend made."""

    _mailboxes: SqliteMailboxes
    _messages: SqliteMessages
    metadata: SqliteMetadata
    pushed_ids: SqlitePushedMessageIds
    #: The store's own parser threads (None while closed), so that nothing else filling
    #: the loop's default executor can hold a delivery up.
    _parsers: ThreadPoolExecutor | None

    def _recording(self) -> bool:
        """Whether an outbox recorder is installed (pushes are recorded)."""
        raise NotImplementedError

    # --- mailboxes and messages (sqlite_mailboxes, sqlite_messages) ------------------

    async def create_mailbox(
        self, user: str, name: str, special_use: str | None = None
    ) -> MailboxCreated:
        return await self._mailboxes.create_mailbox(user, name, special_use)

    async def ensure_mailboxes(
        self, user: str, names: Sequence[tuple[str, str | None]]
    ) -> list[MailboxCreated]:
        """Create whichever of `(name, special_use)` are missing, in one transaction."""
        return await self._mailboxes.ensure_mailboxes(user, names)

    async def delete_mailbox(self, user: str, name: str) -> MailboxDeleted:
        return await self._mailboxes.delete_mailbox(user, name)

    async def rename_mailbox(self, user: str, old: str, new: str) -> MailboxRenamed:
        return await self._mailboxes.rename_mailbox(user, old, new)

    async def subscribe(self, user: str, name: str) -> SubscriptionChanged | None:
        """Subscribe to `name`, which need not exist; None when already subscribed."""
        return await self._mailboxes.subscribe(user, name)

    async def unsubscribe(self, user: str, name: str) -> SubscriptionChanged | None:
        return await self._mailboxes.unsubscribe(user, name)

    async def list_mailboxes(self, user: str) -> list[MailboxInfo]:
        """Every mailbox of `user` plus the `\\Noselect` parents implied by them, sorted."""
        return await self._mailboxes.list_mailboxes(user)

    async def subscriptions(self, user: str) -> list[str]:
        return await self._mailboxes.subscriptions(user)

    async def mailbox(self, user: str, name: str) -> MailboxInfo:
        return await self._mailboxes.mailbox(user, name)

    async def status(self, user: str, mailbox: str) -> MailboxStatus:
        return await self._mailboxes.status(user, mailbox)

    async def append(
        self, user: str, mailbox: str, messages: Sequence[NewMessage]
    ) -> MessagesSaved:
        """IMAP APPEND (one or several messages, one transaction): MessageAppend."""
        return await self._messages.append(user, mailbox, messages)

    async def deliver(
        self, user: str, raw: bytes, targets: Sequence[DeliveryTarget]
    ) -> list[MessagesSaved]:
        """A delivery (LMTP, `mailpush deliver`, Sieve) into one or more mailboxes."""
        return await self._messages.deliver(user, raw, targets)

    async def copy(self, user: str, source: str, uids: Iterable[int], dest: str) -> MessagesSaved:
        """IMAP COPY: MessageAppend in `dest`; flags and keywords travel along."""
        return await self._messages.copy(user, source, uids, dest)

    async def move(
        self, user: str, source: str, uids: Iterable[int], dest: str
    ) -> tuple[MessagesSaved, MessagesExpunged]:
        """IMAP MOVE: one database transaction, two change records (append, then expunge)."""
        return await self._messages.move(user, source, uids, dest)

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
    ) -> FlagsChanged:
        """STORE FLAGS/+FLAGS/-FLAGS; only messages that really changed are reported.

        `unchanged_since` (CONDSTORE's UNCHANGEDSINCE): a message whose modseq is above
        it is left alone and named in the result's `modified`, judged inside the write.
        """
        return await self._messages.update_flags(
            user, mailbox, uids, mode, flags, keywords, recent_uids, unchanged_since
        )

    async def expunge(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> MessagesExpunged:
        """Remove `\\Deleted` messages (only those among `uids` when given: UID EXPUNGE)."""
        return await self._messages.expunge(user, mailbox, uids)

    async def record_rollback(self, user: str, mailbox: str) -> TransactionRolledBack:
        """Record that a mail transaction in `mailbox` began and was rolled back."""
        return await self._messages.record_rollback(user, mailbox)

    async def take_recent(
        self, user: str, mailbox: str, up_to_uid: int | None = None
    ) -> list[int]:
        """Claim `\\Recent` for one session: returns the UIDs it now holds."""
        return await self._messages.take_recent(user, mailbox, up_to_uid)

    async def snapshot(self, user: str, mailbox: str) -> MailboxSnapshot:
        """The status and every message of `mailbox` in one read (SELECT)."""
        return await self._messages.snapshot(user, mailbox)

    async def messages(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> list[MessageInfo]:
        """Metadata of the messages in `mailbox` (all, or those of `uids`), in UID order."""
        return await self._messages.messages(user, mailbox, uids)

    async def changes_since(self, user: str, mailbox: str, modseq: int) -> MailboxChanges:
        return await self._messages.changes_since(user, mailbox, modseq)

    async def raw_message(self, user: str, mailbox: str, uid: int) -> bytes:
        return await self._messages.raw_message(user, mailbox, uid)

    async def raw_messages(
        self, user: str, mailbox: str, uids: Iterable[int]
    ) -> dict[int, bytes]:
        """Raw bytes of several messages in one read (FETCH of many BODY[] items)."""
        return await self._messages.raw_messages(user, mailbox, uids)

    async def claim_pushed_message_id(
        self, driver: str, user: str, message_id: str, owner: str, retention: float
    ) -> bool:
        """Whether `owner` may push `message_id` for `user` (see `sqlite_pushed_ids`)."""
        now = time.time()
        return await self.pushed_ids.claim(
            driver, user, message_id, owner, now=now, forget_before=now - retention
        )

    # --- METADATA (RFC 5464) -------------------------------------------------------

    async def get_metadata(self, user: str, mailbox: str | None, entry: str) -> str | None:
        """One entry's value; `mailbox=None` reads a server entry (Lua `metadata_get`)."""
        return await self.metadata.get(user, mailbox, entry)

    async def set_metadata(
        self, user: str, mailbox: str | None, entry: str, value: str | None
    ) -> None:
        """Set one entry (None unsets it); no change record, so no push event follows."""
        await self.metadata.set_many(user, mailbox, {entry: value})

    async def set_metadata_entries(
        self, user: str, mailbox: str | None, values: Mapping[str, str | None]
    ) -> None:
        """SETMETADATA: several entries at once, all or none (RFC 5464 §4.3)."""
        await self.metadata.set_many(user, mailbox, values)

    async def list_metadata(
        self, user: str, mailbox: str | None, prefix: str = ""
    ) -> dict[str, str]:
        """Entries equal to `prefix` or below it (`""`: all), by canonical name."""
        return await self.metadata.entries(user, mailbox, prefix)

    async def _summaries(self, raws: Sequence[bytes]) -> list[MessageSummary | None]:
        """Each message's push summary, parsed before the write transaction
        (store/message_summaries.py); none while the store records no pushes."""
        if self._parsers is None:
            raise StoreError("the store is closed")
        if not self._recording():
            # No push driver: nothing reads a summary, and a delivery need not pay for
            # one (a tenth of its time); a COPY made once pushes are on makes it then.
            return [None] * len(raws)
        if sum(len(raw) for raw in raws) <= INLINE_PARSE_BYTES:
            # Cheaper than the hand-off to a thread and back (measured: a third of an
            # LMTP delivery's time); bounded, as the parse is linear in these bytes.
            return _summarize_all(raws)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._parsers, _summarize_all, raws)


def _summarize_all(raws: Sequence[bytes]) -> list[MessageSummary | None]:
    return [summarize(raw) for raw in raws]
