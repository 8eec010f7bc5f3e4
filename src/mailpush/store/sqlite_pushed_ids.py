"""Which Message-IDs a push driver has already pushed for a user, durably.

The Chronos driver pushes one notification per Message-ID per user even when
Sieve files copies of a message into several folders. Dovecot keeps that
record in memory for one LMTP session; here it is a table, so neither a
restart nor a retry after a crash can push the same invitation twice.

A claim names its owner (the push transaction and UID that pushes the
message): asking again with the same owner succeeds, so a transaction that
is retried after a failed request still sends; any other owner is refused.
Claims older than the caller's retention are forgotten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .changes import Change
from .sqlite_writer import WriteContext

T = TypeVar("T")

Submit = Callable[[Callable[[WriteContext], T]], Awaitable[tuple[T, list[Change]]]]


class SqlitePushedMessageIds:
    def __init__(self, submit: Submit[Any]) -> None:
        self._submit = submit

    async def claim(
        self,
        driver: str,
        user: str,
        message_id: str,
        owner: str,
        *,
        now: float,
        forget_before: float,
    ) -> bool:
        """True if `owner` is the first (or the same) to push `message_id` for this user.

        Runs on the writer, so the answer is committed before the caller sends
        anything: two processes can never both be first.
        """

        def op(ctx: WriteContext) -> bool:
            conn = ctx.conn
            conn.execute("DELETE FROM push_message_ids WHERE claimed < ?", (forget_before,))
            conn.execute(
                "INSERT INTO push_message_ids (driver, user_name, message_id, owner, claimed)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (driver, user_name, message_id) DO NOTHING",
                (driver, user, message_id, owner, now),
            )
            row = conn.execute(
                "SELECT owner FROM push_message_ids"
                " WHERE driver = ? AND user_name = ? AND message_id = ?",
                (driver, user, message_id),
            ).fetchone()
            return bool(row is not None and row[0] == owner)

        return bool((await self._submit(op))[0])
