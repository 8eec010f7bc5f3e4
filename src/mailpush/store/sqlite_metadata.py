"""RFC 5464 METADATA in SQLite: server entries per user, mailbox entries per mailbox.

Writes go through the store's group-commit writer like every mutation but
record no change: Dovecot sets metadata in NO_NOTIFY transactions, so no push
event and no IMAP untagged update ever follows from one. Mailbox entries hang
on the mailbox row (`mailbox_metadata.mailbox_id`), so they follow a rename of
the mailbox or of a parent for free and go with the mailbox when it is deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..errors import (
    MailboxNotFoundError,
    MetadataValueTooLargeError,
    StoreError,
    TooManyMetadataEntriesError,
)
from .changes import Change
from .mailbox_names import normalize_mailbox_name
from .metadata_entries import is_within, normalize_entry, normalize_prefix
from .sqlite_users import user_row_id
from .sqlite_writer import WriteContext

T = TypeVar("T")

Submit = Callable[[Callable[[WriteContext], T]], Awaitable[tuple[T, list[Change]]]]
Read = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]

#: Largest value (UTF-8 bytes) one entry may hold; IMAP reports it as `[METADATA MAXSIZE n]`.
MAX_VALUE_SIZE = 64 * 1024
#: Most entries (server and mailbox ones together) one user may hold: `[METADATA TOOMANY]`.
MAX_ENTRIES_PER_USER = 1000


class SqliteMetadata:
    """The METADATA side of `SqliteStore`; it shares the store's writer and readers."""

    def __init__(
        self,
        submit: Submit[Any],
        read: Read[Any],
        *,
        max_value_size: int = MAX_VALUE_SIZE,
        max_entries: int = MAX_ENTRIES_PER_USER,
    ) -> None:
        self._submit = submit
        self._read = read
        self.max_value_size = max_value_size
        self.max_entries = max_entries

    async def get(self, user: str, mailbox: str | None, entry: str) -> str | None:
        name = normalize_entry(entry)
        box = _box_name(mailbox)

        def read(conn: sqlite3.Connection) -> str | None:
            row = _owner(conn, user, box)
            if row is None:
                return None
            table, column, owner = row
            found = conn.execute(
                f"SELECT value FROM {table} WHERE {column} = ? AND entry = ?", (owner, name)
            ).fetchone()
            return None if found is None else str(found[0])

        result: str | None = await self._read(read)
        return result

    async def entries(self, user: str, mailbox: str | None, prefix: str = "") -> dict[str, str]:
        wanted = normalize_prefix(prefix) if prefix else ""
        box = _box_name(mailbox)

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            row = _owner(conn, user, box)
            if row is None:
                return {}
            table, column, owner = row
            return {
                str(name): str(value)
                for name, value in conn.execute(
                    f"SELECT entry, value FROM {table} WHERE {column} = ? ORDER BY entry",
                    (owner,),
                )
                if is_within(name, wanted)
            }

        result: dict[str, str] = await self._read(read)
        return result

    async def set_many(
        self, user: str, mailbox: str | None, values: Mapping[str, str | None]
    ) -> None:
        """Set (None: unset) every entry of `values` in one transaction, or none of them."""
        changes: dict[str, str | None] = {}
        for entry, value in values.items():
            name = normalize_entry(entry)
            if value is not None:
                try:
                    size = len(value.encode("utf-8"))
                except UnicodeEncodeError:
                    raise StoreError(
                        f"metadata value of {name} is not valid Unicode text"
                    ) from None
                if size > self.max_value_size:
                    raise MetadataValueTooLargeError(name, size, self.max_value_size)
            changes[name] = value
        box = _box_name(mailbox)
        limit = self.max_entries

        def op(ctx: WriteContext) -> None:
            conn = ctx.conn
            user_id = user_row_id(conn, user)
            if box is None:
                table, column, owner = "server_metadata", "user_id", user_id
            else:
                found = conn.execute(
                    "SELECT id FROM mailboxes WHERE user_id = ? AND name = ?", (user_id, box)
                ).fetchone()
                if found is None:
                    raise MailboxNotFoundError(box)
                table, column, owner = "mailbox_metadata", "mailbox_id", int(found[0])
            before = _entry_count(conn, user_id)
            for name, value in changes.items():
                if value is None:
                    conn.execute(
                        f"DELETE FROM {table} WHERE {column} = ? AND entry = ?", (owner, name)
                    )
                else:
                    conn.execute(
                        f"INSERT INTO {table} ({column}, entry, value) VALUES (?, ?, ?)"
                        f" ON CONFLICT ({column}, entry) DO UPDATE SET value = excluded.value",
                        (owner, name, value),
                    )
            after = _entry_count(conn, user_id)
            if after > limit and after > before:
                raise TooManyMetadataEntriesError(user, limit)

        await self._submit(op)


def _box_name(mailbox: str | None) -> str | None:
    return None if mailbox is None else normalize_mailbox_name(mailbox)


def _owner(
    conn: sqlite3.Connection, user: str, box: str | None
) -> tuple[str, str, int] | None:
    """(table, key column, key) holding the entries; None when the user has none yet."""
    found = conn.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()
    if box is None:
        return None if found is None else ("server_metadata", "user_id", int(found[0]))
    row = None
    if found is not None:
        row = conn.execute(
            "SELECT id FROM mailboxes WHERE user_id = ? AND name = ?", (found[0], box)
        ).fetchone()
    if row is None:
        raise MailboxNotFoundError(box)
    return "mailbox_metadata", "mailbox_id", int(row[0])


def _entry_count(conn: sqlite3.Connection, user_id: int) -> int:
    row = conn.execute(
        "SELECT (SELECT COUNT(*) FROM server_metadata WHERE user_id = ?)"
        " + (SELECT COUNT(*) FROM mailbox_metadata md JOIN mailboxes m ON m.id = md.mailbox_id"
        " WHERE m.user_id = ?)",
        (user_id, user_id),
    ).fetchone()
    return int(row[0])
