"""A user's row in the SQLite store, created by the first write that needs it.

Users are not provisioned in the store: whoever writes first for a name
(a delivery, an IMAP APPEND, a METADATA entry) creates its `users` row, and
every writer asks here so that they agree on how. Only writers may call it
(inside the group-commit writer's transaction): readers treat a missing row
as a user with nothing stored yet.
"""

from __future__ import annotations

import sqlite3

__all__ = ["user_row_id"]


def user_row_id(conn: sqlite3.Connection, user: str) -> int:
    """The `users.id` of `user`, inserting the row if this is the user's first write."""
    row = conn.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()
    if row is not None:
        return int(row[0])
    cur = conn.execute("INSERT INTO users (name) VALUES (?)", (user,))
    assert cur.lastrowid is not None
    return cur.lastrowid
