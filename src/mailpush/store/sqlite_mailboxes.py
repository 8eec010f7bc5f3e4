"""Mailboxes in the SQLite store: create, delete, rename, subscribe, list and STATUS.

One job of `SqliteStore`, which hands it the store's group-commit writer and
reader threads, as it does `SqliteMetadata` and `SqliteOutbox`. Every mutation
is one write operation that records its change (see `sqlite_writer`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from ..errors import (
    InvalidMailboxNameError,
    MailboxExistsError,
    MailboxNotFoundError,
    StoreError,
    TooManyMailboxesError,
)
from .changes import (
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesExpunged,
    SubscriptionChanged,
)
from .mailbox_names import (
    INBOX,
    check_new_mailbox_name,
    is_inside,
    normalize_mailbox_name,
    parent_names,
)
from .models import MailboxInfo, MailboxStatus
from .sqlite_mailbox_rows import (
    Read,
    at_mailbox_limit,
    child_mailboxes,
    delete_messages,
    insert_mailbox,
    mailbox_row,
    mailbox_sort_key,
    mailbox_status,
    move_all_messages,
    read_mailbox,
)
from .sqlite_users import user_row_id
from .sqlite_writer import Submit, WriteContext


class SqliteMailboxes:
    """The mailbox side of `SqliteStore`; it shares the store's writer and readers."""

    def __init__(self, submit: Submit, read: Read, limit: Callable[[], int]) -> None:
        self._submit = submit
        self._read = read
        #: `quota_mailbox_count` (0: no limit), read at each CREATE.
        self._limit = limit

    async def create_mailbox(
        self, user: str, name: str, special_use: str | None = None
    ) -> MailboxCreated:
        name = normalize_mailbox_name(name)
        check_new_mailbox_name(name)
        limit = self._limit()

        def op(ctx: WriteContext) -> MailboxCreated:
            user_id = user_row_id(ctx.conn, user)
            if mailbox_row(ctx.conn, user_id, name) is not None:
                raise MailboxExistsError(name)
            if at_mailbox_limit(ctx.conn, user_id, limit):
                raise TooManyMailboxesError(user, limit)
            return insert_mailbox(ctx, user, user_id, name, special_use)

        return (await self._submit(op))[0]

    async def ensure_mailboxes(
        self, user: str, names: Sequence[tuple[str, str | None]]
    ) -> list[MailboxCreated]:
        """Create whichever of `(name, special_use)` are missing, in one transaction.

        Only INBOX's creation is a push event: Dovecot reports an INBOX it
        creates on first use (MailboxCreate), but not the folders it creates
        from `mailbox NAME { auto = create }` (seen with 2.3.19).
        """
        wanted = [(normalize_mailbox_name(n), use) for n, use in names]

        def op(ctx: WriteContext) -> list[MailboxCreated]:
            user_id = user_row_id(ctx.conn, user)
            return [
                insert_mailbox(ctx, user, user_id, name, use, record=name == INBOX)
                for name, use in wanted
                if mailbox_row(ctx.conn, user_id, name) is None
            ]

        return (await self._submit(op))[0]

    async def delete_mailbox(self, user: str, name: str) -> MailboxDeleted:
        """Delete a mailbox and its messages; its children stay (Dovecot does the same).

        The messages are reported first as one expunge, then the deletion, as
        two change records: Dovecot emits them as two push transactions.
        """
        name = normalize_mailbox_name(name)
        if name == INBOX:
            raise StoreError("INBOX can't be deleted")

        def op(ctx: WriteContext) -> MailboxDeleted:
            user_id = user_row_id(ctx.conn, user)
            row = mailbox_row(ctx.conn, user_id, name)
            if row is None:
                raise MailboxNotFoundError(name)
            box_id, uidvalidity, _, highest = row[0], row[1], row[2], row[3]
            uids = [
                r[0]
                for r in ctx.conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (box_id,)
                )
            ]
            if uids:
                delete_messages(ctx.conn, box_id, uids)
                ctx.record(MessagesExpunged(user, name, uidvalidity, tuple(uids), highest + 1))
            ctx.conn.execute("DELETE FROM mailbox_keywords WHERE mailbox_id = ?", (box_id,))
            ctx.conn.execute("DELETE FROM expunged_messages WHERE mailbox_id = ?", (box_id,))
            ctx.conn.execute("DELETE FROM mailbox_metadata WHERE mailbox_id = ?", (box_id,))
            ctx.conn.execute("DELETE FROM mailboxes WHERE id = ?", (box_id,))
            change = MailboxDeleted(user, name)
            ctx.record(change)
            return change

        return (await self._submit(op))[0]

    async def rename_mailbox(self, user: str, old: str, new: str) -> MailboxRenamed:
        """Rename a mailbox and everything below it.

        Renaming INBOX moves its messages into a new mailbox and leaves INBOX
        empty (RFC 3501 §6.3.5). Subscriptions are not renamed, as in Dovecot.
        """
        old = normalize_mailbox_name(old)
        new = normalize_mailbox_name(new)
        check_new_mailbox_name(new)
        if new == old:
            raise MailboxExistsError(new)
        if is_inside(new, old):
            raise InvalidMailboxNameError(f"can't rename {old!r} into its own child {new!r}")

        def op(ctx: WriteContext) -> MailboxRenamed:
            conn = ctx.conn
            user_id = user_row_id(conn, user)
            row = mailbox_row(conn, user_id, old)
            children = child_mailboxes(conn, user_id, old)
            if row is None and not children:
                raise MailboxNotFoundError(old)
            if mailbox_row(conn, user_id, new) is not None or child_mailboxes(conn, user_id, new):
                raise MailboxExistsError(new)
            if old == INBOX:
                assert row is not None
                insert_mailbox(ctx, user, user_id, new, None, record=False)
                target = mailbox_row(conn, user_id, new)
                assert target is not None
                move_all_messages(conn, row[0], target[0])
            else:
                if row is not None:
                    conn.execute("UPDATE mailboxes SET name = ? WHERE id = ?", (new, row[0]))
                for child_id, child_name in children:
                    conn.execute(
                        "UPDATE mailboxes SET name = ? WHERE id = ?",
                        (new + child_name[len(old) :], child_id),
                    )
            change = MailboxRenamed(user, old, new)
            ctx.record(change)
            return change

        return (await self._submit(op))[0]

    async def subscribe(self, user: str, name: str) -> SubscriptionChanged | None:
        """Subscribe to `name`, which need not exist; None when already subscribed."""
        return await self._set_subscription(user, normalize_mailbox_name(name), True)

    async def unsubscribe(self, user: str, name: str) -> SubscriptionChanged | None:
        return await self._set_subscription(user, normalize_mailbox_name(name), False)

    async def _set_subscription(
        self, user: str, name: str, subscribed: bool
    ) -> SubscriptionChanged | None:
        def op(ctx: WriteContext) -> SubscriptionChanged | None:
            user_id = user_row_id(ctx.conn, user)
            if subscribed:
                cur = ctx.conn.execute(
                    "INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)",
                    (user_id, name),
                )
            else:
                cur = ctx.conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = ? AND name = ?", (user_id, name)
                )
            if cur.rowcount == 0:
                return None
            change = SubscriptionChanged(user, name, subscribed)
            ctx.record(change)
            return change

        return (await self._submit(op))[0]

    async def list_mailboxes(self, user: str) -> list[MailboxInfo]:
        """Every mailbox of `user` plus the `\\Noselect` parents implied by them, sorted."""

        def read(conn: sqlite3.Connection) -> list[MailboxInfo]:
            rows = conn.execute(
                "SELECT m.name, m.uidvalidity, m.uidnext, m.highestmodseq, m.special_use"
                " FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE u.name = ?",
                (user,),
            ).fetchall()
            found = {r[0]: MailboxInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows}
            for name in list(found):
                for parent in parent_names(name):
                    if parent not in found:
                        found[parent] = MailboxInfo(parent, 0, 0, 0, None, selectable=False)
            return [found[name] for name in sorted(found, key=mailbox_sort_key)]

        return await self._read(read)

    async def subscriptions(self, user: str) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT s.name FROM subscriptions s JOIN users u ON u.id = s.user_id"
                    " WHERE u.name = ? ORDER BY s.name",
                    (user,),
                )
            ]

        return await self._read(read)

    async def mailbox(self, user: str, name: str) -> MailboxInfo:
        name = normalize_mailbox_name(name)

        def read(conn: sqlite3.Connection) -> MailboxInfo:
            row = read_mailbox(conn, user, name)
            return MailboxInfo(name, row[1], row[2], row[3], row[4])

        return await self._read(read)

    async def status(self, user: str, mailbox: str) -> MailboxStatus:
        mailbox = normalize_mailbox_name(mailbox)

        def read(conn: sqlite3.Connection) -> MailboxStatus:
            return mailbox_status(conn, user, mailbox)

        return await self._read(read)
