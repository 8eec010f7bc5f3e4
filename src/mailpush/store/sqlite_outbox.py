"""The push outbox in SQLite: claiming, completing, retrying and burying deliveries.

Rows are written by the store's writer in the same transaction as the mail
change (see `sqlite_writer`); this module is the dispatcher's and the admin
commands' side. State changes go through the same group-commit writer, reads
through the store's reader threads.

Besides push transactions the outbox keeps journaled HTTP requests (kind
`http_request`: a Lua script's request that failed, with the lua option
`http_resend`), delivered, retried, buried and replayed the same way.

A claim is a lease (`outbox_claimants`): the row records which dispatcher
holds it (`claimed_by`) and until when (`claimed_until`), the dispatcher
renews it while it works (`renew_claims`), and a lease that ran out is taken
over by any dispatcher (`take_over_expired`), so several dispatchers — nodes
on one PostgreSQL database — share the outbox and a dead one's claims are
sent by the others. Per-user order holds across them: an ordered driver's
user is not claimed while another dispatcher holds one of its transactions.

A delivery is marked `started` just before a driver runs it. A dispatcher
that dies leaves it so; whoever takes its claims over counts that in
`orphaned`, and a delivery orphaned `ORPHAN_LIMIT` times becomes a dead letter
instead of running again: a notification whose answer crashes the server must
not crash every restart.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

from .models import (
    ClaimedDelivery,
    DeadLetter,
    DriverQueueStats,
    InflightRecovery,
    OutboxRecord,
)
from .outbox import HTTP_REQUEST, TRANSACTION, DeliveryKey
from .outbox_claimants import CLAIM_LEASE, gone_at_start, this_process
from .sqlite_writer import Submit, WriteContext

T = TypeVar("T")

#: A delivery running when the process died this many times is a dead letter at start-up.
ORPHAN_LIMIT = 2

#: Most claims a bookkeeping write may mark and still be a light operation
#: (`Submit`), run on the dispatcher's event loop. A claiming round is never
#: light: it may walk up to `limit` rows per driver (a backlog draining).
LIGHT_CLAIMS = 64
#: Columns schema version 3 added, added to an older file when it is opened.
_ADDED_COLUMNS = (
    ("push_outbox", "kind", "TEXT NOT NULL DEFAULT 'transaction'"),
    ("push_deliveries", "kind", "TEXT NOT NULL DEFAULT 'transaction'"),
    ("push_deliveries", "started", "INTEGER NOT NULL DEFAULT 0"),
    ("push_deliveries", "orphaned", "INTEGER NOT NULL DEFAULT 0"),
)
#: Columns schema version 6 added: the claim's holder and the end of its lease.
_LEASE_COLUMNS = (
    ("push_deliveries", "claimed_by", "TEXT"),
    ("push_deliveries", "claimed_until", "REAL NOT NULL DEFAULT 0"),
)


def add_outbox_columns(conn: sqlite3.Connection) -> None:
    """Upgrade an outbox written before schema 3 (inside the caller's transaction).

    Runs before schema.sql, whose indexes use these columns; a table that does
    not exist yet (a new file) is left to schema.sql.
    """
    _add_columns(conn, _ADDED_COLUMNS)


def add_lease_columns(conn: sqlite3.Connection) -> None:
    """Schema 6: claims become leases (inside the caller's transaction). Rows claimed
    before have no holder and are taken over by the next dispatcher to start."""
    _add_columns(conn, _LEASE_COLUMNS)


def _add_columns(conn: sqlite3.Connection, columns: Iterable[tuple[str, str, str]]) -> None:
    for table, column, declaration in columns:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


Read = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]

_CLAIM_SELECT = (
    "SELECT d.outbox_id, d.driver, d.user_name, o.txn_id, o.payload, d.attempts,"
    " d.first_attempt, o.created, d.kind, d.next_attempt"
    " FROM push_deliveries d JOIN push_outbox o ON o.id = d.outbox_id"
)


#: An ordered driver's users with pending transactions, from a given one on (one
#: index seek each), with the next attempt of each one's oldest pending row.
_USERS_WALK = """
WITH RECURSIVE users(name, n) AS (
  SELECT (SELECT user_name FROM push_deliveries WHERE state = 'pending'
          AND kind = 'transaction' AND driver = :driver AND user_name > :after {upto}
          ORDER BY user_name LIMIT 1), 1
  UNION ALL
  SELECT (SELECT user_name FROM push_deliveries WHERE state = 'pending'
          AND kind = 'transaction' AND driver = :driver AND user_name > users.name {upto}
          ORDER BY user_name LIMIT 1), n + 1
  FROM users WHERE users.name IS NOT NULL AND n < :count
)
SELECT name, (SELECT next_attempt FROM push_deliveries WHERE state = 'pending'
              AND kind = 'transaction' AND driver = :driver AND user_name = users.name
              ORDER BY outbox_id LIMIT 1)
FROM users WHERE name IS NOT NULL ORDER BY n
"""
_USERS_AFTER = _USERS_WALK.format(upto="")
_USERS_BETWEEN = _USERS_WALK.format(upto="AND user_name <= :upto")

#: A claimed delivery's last attempt: (state 'done' or 'dead', now, now, last error or
#: None, outbox_id, driver, claimant). Only while the claimant still holds it: one whose
#: lease ran out and was taken over (it hung) must not finish what the new holder runs.
_FINISH = (
    "UPDATE push_deliveries SET state = ?, started = 0, attempts = attempts + 1,"
    " first_attempt = COALESCE(first_attempt, ?), finished = ?, last_error = ?"
    " WHERE outbox_id = ? AND driver = ? AND state = 'inflight' AND claimed_by = ?"
)


#: Whether another dispatcher holds one of an ordered driver's transactions of a user (one
#: seek in push_deliveries_user): that user waits, or its later ones would overtake.
_HELD_ELSEWHERE = (
    "SELECT 1 FROM push_deliveries WHERE state = 'inflight' AND kind = 'transaction'"
    " AND driver = ? AND user_name = ? AND (claimed_by IS NULL OR claimed_by <> ?) LIMIT 1"
)


def _claim_ordered(
    conn: sqlite3.Connection,
    driver: str,
    now: float,
    limit: int,
    busy: Collection[DeliveryKey],
    after: str | None,
    claimed: list[ClaimedDelivery],
    claimant: str,
) -> str | None:
    """Claim an ordered driver's due runs, user by user from after `after` round to it
    (`SqliteOutbox.claim_due`); the user to go on after next round (None: from the start).

    A user some other dispatcher holds a transaction of is skipped like a busy
    one; this dispatcher's own (`busy` keeps their order) do not hold it back."""
    walks = [(_USERS_AFTER, {"after": after or ""})]
    if after is not None:
        walks.append((_USERS_BETWEEN, {"after": "", "upto": after}))
    visited = taken = 0
    for sql, bounds in walks:
        heads = conn.execute(
            sql, {"driver": driver, "count": limit - visited, **bounds}
        ).fetchall()
        for user, next_attempt in heads:
            visited += 1
            if (driver, user) in busy or next_attempt > now:
                continue
            if conn.execute(_HELD_ELSEWHERE, (driver, user, claimant)).fetchone() is not None:
                continue
            rows = conn.execute(
                _CLAIM_SELECT + " WHERE d.state = 'pending' AND d.kind = 'transaction'"
                " AND d.driver = ? AND d.user_name = ? ORDER BY d.outbox_id LIMIT ?",
                (driver, user, limit - taken),
            ).fetchall()
            for row in rows:
                if row[9] > now:
                    break
                claimed.append(_claimed(row))
                taken += 1
            if taken >= limit:
                return str(user)
        if visited >= limit:
            return str(heads[-1][0])
    return None


def _mark_done(
    conn: sqlite3.Connection, claims: Sequence[ClaimedDelivery], claimant: str, now: float
) -> None:
    """`claims` delivered (`complete`, or before a claiming round): those still held."""
    conn.executemany(
        _FINISH, [("done", now, now, None, c.outbox_id, c.driver, claimant) for c in claims]
    )


def _claimed(row: Sequence[Any]) -> ClaimedDelivery:
    return ClaimedDelivery(
        row[0], row[1], row[2], row[3], bytes(row[4]), row[5], row[6], row[7], row[8]
    )


def _take_over(
    conn: sqlite3.Connection, now: float, condition: str, params: Sequence[Any]
) -> InflightRecovery:
    """Make the in-flight claims `condition` selects pending again, burying those that
    were running when their dispatcher was lost for the `ORPHAN_LIMIT`th time."""
    inflight = f"state = 'inflight' AND ({condition})"
    # A delivery running when its dispatcher was lost was an attempt (its request may
    # have arrived).
    conn.execute(
        "UPDATE push_deliveries SET orphaned = orphaned + 1, attempts = attempts + 1,"
        f" first_attempt = COALESCE(first_attempt, ?) WHERE {inflight} AND started = 1",
        (now, *params),
    )
    rows = conn.execute(
        "SELECT d.outbox_id, d.driver, d.user_name, o.txn_id, d.attempts, o.created,"
        " d.orphaned, o.kind FROM push_deliveries d JOIN push_outbox o"
        f" ON o.id = d.outbox_id WHERE {inflight} AND d.orphaned >= ? ORDER BY d.outbox_id",
        (*params, ORPHAN_LIMIT),
    ).fetchall()
    buried = []
    for outbox_id, driver, user, txn_id, attempts, created, orphaned, kind in rows:
        error = (
            f"in flight when the process died {orphaned} times; possibly crashes the"
            " server, so it is not run again (mailpush queue replay sends it again)"
        )
        conn.execute(
            "UPDATE push_deliveries SET state = 'dead', started = 0, finished = ?,"
            " last_error = ? WHERE outbox_id = ? AND driver = ?",
            (now, error, outbox_id, driver),
        )
        buried.append(
            DeadLetter(outbox_id, driver, user, txn_id, attempts, created, now, error, kind)
        )
    cur = conn.execute(
        "UPDATE push_deliveries SET state = 'pending', started = 0, claimed_by = NULL,"
        f" claimed_until = 0 WHERE {inflight}",
        params,
    )
    return InflightRecovery(cur.rowcount, tuple(buried))


class SqliteOutbox:
    """The push outbox rows: claiming, finishing, retrying and burying deliveries.

    Claims, completions, retries and releases are written `durable=False`:
    losing one in a crash only means a delivery is sent again (at-least-once),
    so they do not pay an fsync that LMTP deliveries would queue behind. Dead
    letters, replays, journaled requests and the start-up reset are durable.
    """

    def __init__(self, submit: Submit, read: Read[Any]) -> None:
        self._submit = submit
        self._read = read
        #: Whose claims this outbox makes (`outbox_claimants`); tests name other nodes.
        self.claimant = this_process()
        #: Per ordered driver: the user the last claiming round stopped at.
        self._resume: dict[str, str] = {}

    async def reset_inflight(self) -> InflightRecovery:
        """At a dispatcher's start: claims of dispatchers known to be gone are pending again
        (those of this host's dead processes, of an earlier dispatcher of this process,
        from before leases, and any whose lease ran out), except deliveries that were
        running each time their dispatcher died, `ORPHAN_LIMIT` times: dead letters.
        Claims of live dispatchers, and of other hosts' until their lease runs out, stay."""

        def op(ctx: WriteContext) -> InflightRecovery:
            conn, now = ctx.conn, time.time()
            holders = [row[0] for row in conn.execute(
                "SELECT DISTINCT claimed_by FROM push_deliveries WHERE state = 'inflight'"
            )]  # fmt: skip
            gone = [name for name in holders if name is not None and gone_at_start(name)]
            condition = "claimed_by IS NULL OR claimed_until < ?"
            if gone:
                condition += f" OR claimed_by IN ({', '.join('?' * len(gone))})"
            return _take_over(conn, now, condition, (now, *gone))

        result: InflightRecovery = (await self._submit(op))[0]
        return result

    async def take_over_expired(self, now: float) -> InflightRecovery:
        """Claims whose lease ran out before `now` are pending again (or dead letters, as
        at start): their dispatcher died, hung or lost the database (`ORPHAN_LIMIT`)."""

        def op(ctx: WriteContext) -> InflightRecovery:
            return _take_over(ctx.conn, time.time(), "claimed_until < ?", (now,))

        result: InflightRecovery = (await self._submit(op))[0]
        return result

    async def renew_claims(self, now: float, lease: float = CLAIM_LEASE) -> int:
        """Extend every lease this outbox's claimant holds to `now + lease`; how many."""
        until, claimant = now + lease, self.claimant

        def op(ctx: WriteContext) -> int:
            cur = ctx.conn.execute(
                "UPDATE push_deliveries SET claimed_until = ?"
                " WHERE state = 'inflight' AND claimed_by = ?",
                (until, claimant),
            )
            return cur.rowcount

        return int((await self._submit(op, durable=False))[0])

    async def claim_due(
        self,
        now: float,
        limit: int,
        busy: Collection[DeliveryKey] = (),
        *,
        ordered: Collection[str] | None = None,
        independent: Collection[str] = (),
        lease: float = CLAIM_LEASE,
        completed: Sequence[ClaimedDelivery] = (),
    ) -> list[ClaimedDelivery]:
        """Claim due deliveries, in commit order, never overtaking within an ordered key.

        `completed`: deliveries of this claimant that were delivered, marked done
        first in the same write (as `complete` would): a dispatcher's round then
        costs the store's writer one job, not two.

        An `ordered` driver is claimed per (driver, user): for each user whose
        oldest pending row is due, the run of due rows from there up to the
        first one that is not yet due (a transaction waiting for its retry
        holds back the later ones of that user, and only those). Keys in
        `busy` are being worked on already and are skipped. The users are
        walked through the (state, kind, driver, user_name, outbox_id) index,
        one seek per user, at most `limit` users and `limit` rows per driver
        and round; the next round goes on after the last user this one
        reached, so a user with a long queue, blocked or busy, costs the others
        one seek and no more, and every user is reached in turn however many
        there are. Deliveries of the `independent` drivers, and journaled
        requests of either, are claimed whenever they are due: nothing waits
        for them and they wait for nothing. `ordered=None` (tools, tests):
        every driver with pending rows is ordered. The claims are this outbox's
        claimant's until `now + lease` (`renew_claims` extends them), and an ordered
        driver's user another claimant holds a transaction of is skipped.
        """
        busy_keys = set(busy)
        resume: dict[str, str | None] = dict(self._resume)
        claimant, until = self.claimant, now + lease

        def op(ctx: WriteContext) -> list[ClaimedDelivery]:
            conn = ctx.conn
            if completed:
                _mark_done(conn, completed, claimant, time.time())
            ordered_drivers = (
                [row[0] for row in conn.execute(
                    "SELECT DISTINCT driver FROM push_deliveries WHERE state = 'pending'"
                )]
                if ordered is None else list(ordered)
            )
            claimed: list[ClaimedDelivery] = []
            for driver in ordered_drivers:
                resume[driver] = _claim_ordered(
                    conn, driver, now, limit, busy_keys, resume.get(driver), claimed, claimant
                )
            free = sorted(set(independent))
            everyone = sorted({*free, *ordered_drivers})
            for kind, drivers in ((TRANSACTION, free), (HTTP_REQUEST, everyone)):
                if not drivers:
                    continue
                marks = ", ".join("?" * len(drivers))
                rows = conn.execute(
                    _CLAIM_SELECT + " WHERE d.state = 'pending' AND d.kind = ?"
                    f" AND d.driver IN ({marks}) AND d.next_attempt <= ?"
                    " ORDER BY d.next_attempt LIMIT ?",
                    (kind, *drivers, now, limit),
                ).fetchall()
                claimed.extend(_claimed(row) for row in rows)
            conn.executemany(
                "UPDATE push_deliveries SET state = 'inflight', claimed_by = ?,"
                " claimed_until = ? WHERE outbox_id = ? AND driver = ?",
                [(claimant, until, c.outbox_id, c.driver) for c in claimed],
            )
            return claimed

        claims = list((await self._submit(op, durable=False))[0])
        self._resume = {driver: user for driver, user in resume.items() if user is not None}
        return claims

    async def mark_started(self, claims: Sequence[ClaimedDelivery]) -> None:
        """Just before a driver runs `claims`: if the process dies now, whoever takes them
        over knows (unless they were taken over already). One write for all: the
        dispatcher gathers the claims of every group starting at the same moment."""
        claimant = self.claimant
        rows = [(claim.outbox_id, claim.driver, claimant) for claim in claims]
        if not rows:
            return

        def op(ctx: WriteContext) -> None:
            ctx.conn.executemany(
                "UPDATE push_deliveries SET started = 1 WHERE outbox_id = ? AND driver = ?"
                " AND claimed_by = ?",
                rows,
            )

        # Not fsynced: a process crash loses no commit all the same (WAL), and an
        # operating-system crash is not what this counts.
        await self._submit(op, durable=False, light=len(rows) <= LIGHT_CLAIMS)

    async def add_request(
        self, driver: str, user: str, payload: bytes, next_attempt: float
    ) -> int:
        """Journal a request that failed once (its first attempt) to be sent again; durable."""

        def op(ctx: WriteContext) -> int:
            now = time.time()
            cur = ctx.conn.execute(
                "INSERT INTO push_outbox (txn_id, user_name, created, payload, kind)"
                " VALUES (?, ?, ?, ?, ?)",
                (uuid.uuid4().hex, user, now, payload, HTTP_REQUEST),
            )
            outbox_id = int(cur.lastrowid or 0)
            ctx.conn.execute(
                "INSERT INTO push_deliveries (outbox_id, driver, user_name, state, attempts,"
                " first_attempt, next_attempt, kind) VALUES (?, ?, ?, 'pending', 1, ?, ?, ?)",
                (outbox_id, driver, user, now, next_attempt, HTTP_REQUEST),
            )
            return outbox_id

        return int((await self._submit(op))[0])

    async def complete(self, claims: Sequence[ClaimedDelivery]) -> None:
        """Mark deliveries done, all in one write (the dispatcher batches them); not those
        another dispatcher took over meanwhile: it is running them, its attempt decides."""
        if not claims:
            return
        claimant = self.claimant

        def op(ctx: WriteContext) -> None:
            _mark_done(ctx.conn, claims, claimant, time.time())

        await self._submit(op, durable=False, light=len(claims) <= LIGHT_CLAIMS)

    async def retry(self, claim: ClaimedDelivery, next_attempt: float, error: str) -> None:
        """Pending again at `next_attempt`; not if another dispatcher took the claim over
        meanwhile (this one's lease ran out): that one's attempt decides."""
        claimant = self.claimant

        def op(ctx: WriteContext) -> None:
            ctx.conn.execute(
                "UPDATE push_deliveries SET state = 'pending', started = 0,"
                " attempts = attempts + 1, first_attempt = COALESCE(first_attempt, ?),"
                " next_attempt = ?, last_error = ?, claimed_by = NULL, claimed_until = 0"
                " WHERE outbox_id = ? AND driver = ? AND state = 'inflight' AND claimed_by = ?",
                (time.time(), next_attempt, error, claim.outbox_id, claim.driver, claimant),
            )

        await self._submit(op, durable=False)

    async def bury(self, claim: ClaimedDelivery, error: str) -> None:
        """A dead letter (durable); not if another dispatcher took the claim over meanwhile."""
        claimant = self.claimant

        def op(ctx: WriteContext) -> None:
            now = time.time()
            ctx.conn.execute(
                _FINISH, ("dead", now, now, error, claim.outbox_id, claim.driver, claimant)
            )

        await self._submit(op)

    async def release(self, claims: Iterable[ClaimedDelivery]) -> None:
        """Give claims back untouched (shutdown, or an earlier one of the key failed);
        not those another dispatcher took over meanwhile."""
        claimant = self.claimant
        rows = [(c.outbox_id, c.driver, claimant) for c in claims]
        if not rows:
            return

        def op(ctx: WriteContext) -> None:
            ctx.conn.executemany(
                "UPDATE push_deliveries SET state = 'pending', started = 0, claimed_by = NULL,"
                " claimed_until = 0 WHERE outbox_id = ? AND driver = ? AND state = 'inflight'"
                " AND claimed_by = ?",
                rows,
            )

        await self._submit(op, durable=False)

    async def replay(
        self, outbox_ids: Iterable[int] | None = None, driver: str | None = None
    ) -> int:
        """Dead letters (all, or those given) become pending again, as if new."""
        ids = None if outbox_ids is None else list(outbox_ids)

        def op(ctx: WriteContext) -> int:
            sql = (
                "UPDATE push_deliveries SET state = 'pending', attempts = 0, orphaned = 0,"
                " started = 0, first_attempt = NULL, next_attempt = ?, finished = NULL"
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
                " d.finished, d.last_error, o.kind FROM push_deliveries d"
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
            sql = (
                "SELECT id, user_name, txn_id, created, payload FROM push_outbox"
                " WHERE id > ? AND kind = 'transaction'"
            )
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
