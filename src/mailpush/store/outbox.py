"""The push outbox seam: what the writer records and what the dispatcher asks of it.

The outbox is written in the same database transaction as the mail change
it describes (the transactional outbox): a recorder turns one operation's
change records into `OutboxEntry`s inside that transaction, and the store
inserts them there. The dispatcher and the admin commands then work the
rows through `PushOutbox`. `SqliteOutbox` is the first implementation; a
PostgreSQL one must satisfy the same protocol, so nothing here mentions
SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from .changes import Change
from .models import (
    ClaimedDelivery,
    DeadLetter,
    DriverQueueStats,
    InflightRecovery,
    MailboxStatus,
    OutboxRecord,
)

__all__ = [
    "HTTP_REQUEST",
    "TRANSACTION",
    "DeliveryKey",
    "OutboxEntry",
    "OutboxRecorder",
    "PushOutbox",
    "StatusAt",
]

#: Outbox row kinds: a push transaction, or a Lua script's journaled HTTP request.
TRANSACTION: Final = "transaction"
HTTP_REQUEST: Final = "http_request"

#: (driver, user): deliveries with the same key run strictly in commit order.
DeliveryKey = tuple[str, str]

#: `(user, mailbox)` → the mailbox's status as the open transaction sees it.
StatusAt = Callable[[str, str], MailboxStatus]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One push transaction to write next to the change that caused it.

    `payload` is what the dispatcher reads back (`events.transaction_from_json`):
    written by the recorder in the compact form, so the commit does not pay
    for expanding a change into its events.
    """

    user: str
    payload: bytes
    #: Driver instances that must each deliver it.
    drivers: tuple[str, ...] = ()
    txn_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class OutboxRecorder(Protocol):
    """Turns one operation's change records into outbox entries, inside its transaction.

    It must be cheap, bounded computation — apart from `status`, one aggregate
    query it may make for a transaction whose drivers want the mailbox's
    status — as the store's write transaction is open while it runs.
    """

    def __call__(self, changes: Sequence[Change], status: StatusAt) -> Sequence[OutboxEntry]: ...


class PushOutbox(Protocol):
    """The dispatcher's and the admin commands' side of the outbox rows.

    Claims, completions, retries and releases may be written without an fsync
    of their own (losing one in a crash only sends a notification again);
    dead letters, replays, journaled requests and the start-up reset are
    durable. A claim is a lease (`outbox_claimants`): several dispatchers may
    share one outbox (nodes on one database), each renewing its own claims, and
    one whose lease ran out is taken over by the others.
    """

    async def reset_inflight(self) -> InflightRecovery:
        """At a dispatcher's start: what dispatchers known to be gone had claimed is
        pending again (or buried)."""
        ...

    async def take_over_expired(self, now: float) -> InflightRecovery:
        """Claims whose lease ran out before `now` are pending again (or buried)."""
        ...

    async def renew_claims(self, now: float, lease: float = ...) -> int:
        """Extend this dispatcher's leases to `now + lease`; how many it holds."""
        ...

    async def claim_due(
        self,
        now: float,
        limit: int,
        busy: Collection[DeliveryKey] = (),
        *,
        ordered: Collection[str] | None = None,
        independent: Collection[str] = (),
        lease: float = ...,
        completed: Sequence[ClaimedDelivery] = (),
    ) -> list[ClaimedDelivery]:
        """Claim due deliveries in commit order, never overtaking within an ordered key
        (nor another dispatcher's claims of it), held until `now + lease`."""
        ...

    async def mark_started(self, claims: Sequence[ClaimedDelivery]) -> None:
        """Just before a driver runs these claims (one write for all of them)."""
        ...
    async def add_request(
        self, driver: str, user: str, payload: bytes, next_attempt: float
    ) -> int: ...
    async def complete(self, claims: Sequence[ClaimedDelivery]) -> None: ...
    async def retry(self, claim: ClaimedDelivery, next_attempt: float, error: str) -> None: ...
    async def bury(self, claim: ClaimedDelivery, error: str) -> None: ...
    async def release(self, claims: Iterable[ClaimedDelivery]) -> None: ...
    async def replay(
        self, outbox_ids: Iterable[int] | None = None, driver: str | None = None
    ) -> int: ...
    async def purge(self, finished_before: float) -> int: ...
    async def stats(self, now: float) -> list[DriverQueueStats]: ...
    async def dead_letters(self, driver: str | None = None) -> list[DeadLetter]: ...
    async def records_after(
        self, outbox_id: int, user: str | None = None, limit: int = 500
    ) -> list[OutboxRecord]: ...
    async def last_id(self) -> int: ...
