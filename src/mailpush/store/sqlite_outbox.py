"""The push outbox in SQLite: claiming, completing, retrying and burying deliveries.

Rows are written by the store's writer in the same transaction as the mail
change (see `sqlite_writer`); this module is the dispatcher's and the admin
commands' side. State changes go through the same group-commit writer, reads
through the store's reader threads.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from .changes import Change
from .models import ClaimedDelivery, DeadLetter, DriverQueueStats, OutboxRecord
from .sqlite_writer import WriteContext

T = TypeVar("T")

class Submit(Protocol):
    """`GroupCommitWriter.submit`."""

    def __call__(
        self, operation: Callable[[WriteContext], T], *, durable: bool = True
    ) -> Awaitable[tuple[T, list[Change]]]: ...
Read = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]

#: (driver, user): deliveries with the same key run strictly in commit order.
DeliveryKey = tuple[str, str]


class SqliteOutbox:
    """The push outbox rows: claiming, finishing, retrying and burying deliveries.

    Claims, completions, retries and releases are written `durable=False`:
    losing one in a crash only means a delivery is sent again (at-least-once),
    so they do not pay an fsync that LMTP deliveries would queue behind. Dead
    letters, replays and the start-up reset are durable.
    """

    def __init__(self, submit: Submit, read: Read[Any]) -> None:
        self._submit = submit
        self._read = read

    async def reset_inflight(self) -> int:
        """At start-up: whatever a crashed process had claimed becomes pending again."""

        def op(ctx: WriteContext) -> int:
            cur = ctx.conn.execute(
                "UPDATE push_deliveries SET state = 'pending' WHERE state = 'inflight'"
            )
            return cur.rowcount

        return int((await self._submit(op))[0])

    async def claim_due(
        self, now: float, limit: int, busy: Collection[DeliveryKey] = ()
    ) -> list[ClaimedDelivery]:
        """Claim due deliveries, in commit order, never overtaking within a key.

        For each (driver, user) the run of due rows is taken from its oldest
        pending row up to the first one that is not yet due (a transaction
        waiting for its retry holds back the later ones of that user). Keys in
        `busy` are being worked on already and are skipped.
        """
        busy_keys = set(busy)

        def op(ctx: WriteContext) -> list[ClaimedDelivery]:
            rows = ctx.conn.execute(
                "SELECT d.outbox_id, d.driver, d.user_name, o.txn_id, o.payload, d.attempts,"
                " d.first_attempt, o.created, d.next_attempt"
                " FROM push_deliveries d JOIN push_outbox o ON o.id = d.outbox_id"
                " WHERE d.state = 'pending' ORDER BY d.outbox_id LIMIT ?",
                (limit,),
            ).fetchall()
            blocked: set[DeliveryKey] = set(busy_keys)
            claimed: list[ClaimedDelivery] = []
            for row in rows:
                key = (row[1], row[2])
                if key in blocked:
                    continue
                if row[8] > now:
                    blocked.add(key)
                    continue
                claimed.append(
                    ClaimedDelivery(row[0], row[1], row[2], row[3], bytes(row[4]), row[5],
                                    row[6], row[7])
                )
            ctx.conn.executemany(
                "UPDATE push_deliveries SET state = 'inflight' WHERE outbox_id = ? AND driver = ?",
                [(c.outbox_id, c.driver) for c in claimed],
            )
            return claimed

        return list((await self._submit(op, durable=False))[0])

    async def complete(self, claims: Sequence[ClaimedDelivery]) -> None:
        """Mark deliveries done, all in one write (the dispatcher batches them)."""
        if not claims:
            return

        def op(ctx: WriteContext) -> None:
            now = time.time()
            ctx.conn.executemany(
                "UPDATE push_deliveries SET state = 'done', attempts = attempts + 1,"
                " first_attempt = COALESCE(first_attempt, ?), finished = ?, last_error = NULL"
                " WHERE outbox_id = ? AND driver = ?",
                [(now, now, claim.outbox_id, claim.driver) for claim in claims],
            )

        await self._submit(op, durable=False)

    async def retry(self, claim: ClaimedDelivery, next_attempt: float, error: str) -> None:
        def op(ctx: WriteContext) -> None:
            ctx.conn.execute(
                "UPDATE push_deliveries SET state = 'pending', attempts = attempts + 1,"
                " first_attempt = COALESCE(first_attempt, ?), next_attempt = ?, last_error = ?"
                " WHERE outbox_id = ? AND driver = ?",
                (time.time(), next_attempt, error, claim.outbox_id, claim.driver),
            )

        await self._submit(op, durable=False)

    async def bury(self, claim: ClaimedDelivery, error: str) -> None:
        def op(ctx: WriteContext) -> None:
            now = time.time()
            ctx.conn.execute(
                "UPDATE push_deliveries SET state = 'dead', attempts = attempts + 1,"
                " first_attempt = COALESCE(first_attempt, ?), finished = ?, last_error = ?"
                " WHERE outbox_id = ? AND driver = ?",
                (now, now, error, claim.outbox_id, claim.driver),
            )

        await self._submit(op)

    async def release(self, claims: Iterable[ClaimedDelivery]) -> None:
        """Give claims back untouched (shutdown, or an earlier one of the key failed)."""
        pairs = [(c.outbox_id, c.driver) for c in claims]
        if not pairs:
            return

        def op(ctx: WriteContext) -> None:
            ctx.conn.executemany(
                "UPDATE push_deliveries SET state = 'pending'"
                " WHERE outbox_id = ? AND driver = ? AND state = 'inflight'",
                pairs,
            )

        await self._submit(op, durable=False)

    async def replay(
        self, outbox_ids: Iterable[int] | None = None, driver: str | None = None
    ) -> int:
        """Dead letters (all, or those given) become pending again, as if new."""
        ids = None if outbox_ids is None else list(outbox_ids)

        def op(ctx: WriteContext) -> int:
            sql = (
                "UPDATE push_deliveries SET state = 'pending', attempts = 0,"
                " first_attempt = NULL, next_attempt = ?, finished = NULL"
                " WHERE state = 'dead'"
            )
            params: list[Any] = [time.time()]
            if driver is not None:
                sql += " AND driver = ?"
                params.append(driver)
            if ids is None:
                return ctx.conn.execute(sql, params).rowcount
            total = 0
            for outbox_id in ids:
                total += ctx.conn.execute(sql + " AND outbox_id = ?", [*params, outbox_id]).rowcount
            return total

        return int((await self._submit(op))[0])

    async def purge(self, finished_before: float) -> int:
        """Forget delivered transactions older than the retention; dead letters stay."""

        def op(ctx: WriteContext) -> int:
            conn = ctx.conn
            cur = conn.execute(
                "DELETE FROM push_deliveries WHERE state = 'done' AND finished < ?",
                (finished_before,),
            )
            conn.execute(
                "DELETE FROM push_outbox WHERE created < ? AND NOT EXISTS"
                " (SELECT 1 FROM push_deliveries d WHERE d.outbox_id = push_outbox.id)",
                (finished_before,),
            )
            return cur.rowcount

        return int((await self._submit(op))[0])

    async def stats(self, now: float) -> list[DriverQueueStats]:
        def read(conn: sqlite3.Connection) -> list[DriverQueueStats]:
            rows = conn.execute(
                "SELECT d.driver,"
                " SUM(d.state = 'pending' AND d.attempts = 0),"
                " SUM(d.state = 'inflight'),"
                " SUM(d.state = 'pending' AND d.attempts > 0),"
                " SUM(d.state = 'dead'),"
                " SUM(d.state = 'done'),"
                " MIN(CASE WHEN d.state IN ('pending', 'inflight') THEN o.created END)"
                " FROM push_deliveries d JOIN push_outbox o ON o.id = d.outbox_id"
                " GROUP BY d.driver ORDER BY d.driver"
            ).fetchall()
            return [
                DriverQueueStats(r[0], r[1] or 0, r[2] or 0, r[3] or 0, r[4] or 0, r[5] or 0,
                                 None if r[6] is None else max(0.0, now - r[6]))
                for r in rows
            ]

        return list(await self._read(read))

    async def dead_letters(self, driver: str | None = None) -> list[DeadLetter]:
        def read(conn: sqlite3.Connection) -> list[DeadLetter]:
            sql = (
                "SELECT d.outbox_id, d.driver, d.user_name, o.txn_id, d.attempts, o.created,"
                " d.finished, d.last_error FROM push_deliveries d"
                " JOIN push_outbox o ON o.id = d.outbox_id WHERE d.state = 'dead'"
            )
            params: tuple[Any, ...] = ()
            if driver is not None:
                sql += " AND d.driver = ?"
                params = (driver,)
            return [DeadLetter(*row) for row in conn.execute(sql + " ORDER BY d.outbox_id", params)]

        return list(await self._read(read))

    async def records_after(
        self, outbox_id: int, user: str | None = None, limit: int = 500
    ) -> list[OutboxRecord]:
        def read(conn: sqlite3.Connection) -> list[OutboxRecord]:
            sql = "SELECT id, user_name, txn_id, created, payload FROM push_outbox WHERE id > ?"
            params: list[Any] = [outbox_id]
            if user is not None:
                sql += " AND user_name = ?"
                params.append(user)
            rows = conn.execute(sql + " ORDER BY id LIMIT ?", [*params, limit]).fetchall()
            return [OutboxRecord(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

        return list(await self._read(read))

    async def last_id(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM push_outbox").fetchone()[0])

        return int(await self._read(read))
