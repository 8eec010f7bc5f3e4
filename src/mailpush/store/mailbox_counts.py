"""Each mailbox's message, \\Recent and unseen counts, kept on its row by triggers.

A saved message whose push drivers read `mailbox:status()` (the Lua driver)
carries the status its commit left (dispatch/outbox_recorder.py), read inside
the write transaction; in SQLite that is under the writers' lock every
worker's deliveries wait for (store/writer_lock.py). Counting the mailbox's
rows there cost time in proportion to its size, 15 ms a delivery at 50,000
messages, and every delivery of the server waited behind it. IMAP STATUS
paid the same. Dovecot reads these numbers from its index header.

So the mailbox row keeps `message_count`, `recent_count` and `unseen_count`.
Triggers on `messages` keep them through an insert, a delete, a change of
`\\Recent` or a message moved to another mailbox (RENAME of INBOX): no path
that adds, removes or moves messages can forget them. A flag change is
counted by the one statement that changes flags (`update_flags` in
sqlite_messages.py), once per STORE with `add_unseen`: a trigger per row cost
`STORE 1:* +FLAGS (\\Seen)` a quarter of its speed. The lowest unseen UID
comes from a partial index of the unseen messages (`messages_unseen`): one
seek. Both backends keep them alike (schema 7 for SQLite, 4 for PostgreSQL),
and an upgrade counts each mailbox once.
"""

from __future__ import annotations

import sqlite3

from .flags import SEEN

__all__ = [
    "BACKFILL",
    "COUNT_COLUMNS",
    "PG_TRIGGERS",
    "SQLITE_TRIGGERS",
    "add_unseen",
    "UNSEEN_CONDITION",
    "UNSEEN_INDEX",
]

#: The columns an upgrade adds to `mailboxes` (name, declaration).
COUNT_COLUMNS = (
    ("message_count", "INTEGER NOT NULL DEFAULT 0"),
    ("recent_count", "INTEGER NOT NULL DEFAULT 0"),
    ("unseen_count", "INTEGER NOT NULL DEFAULT 0"),
)

#: 1 for a message without \Seen, else 0 (`row` is NEW or OLD).
_UNSEEN = f"(CASE WHEN ({{row}}.flags & {SEEN}) = 0 THEN 1 ELSE 0 END)"

#: What a message adds to (`+`) or takes from (`-`) its mailbox's counts.
_COUNT = (
    "UPDATE mailboxes SET message_count = message_count {sign} 1,"
    " recent_count = recent_count {sign} {row}.recent,"
    " unseen_count = unseen_count {sign} " + _UNSEEN + " WHERE id = {row}.mailbox_id"
)


def _count(sign: str, row: str) -> str:
    return _COUNT.format(sign=sign, row=row)


#: Whether an update changes what the triggers count (flags: `add_unseen`).
_COUNTED_CHANGE = "OLD.recent <> NEW.recent OR OLD.mailbox_id <> NEW.mailbox_id"

SQLITE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS messages_counted_insert AFTER INSERT ON messages"
    f" BEGIN {_count('+', 'NEW')}; END",
    "CREATE TRIGGER IF NOT EXISTS messages_counted_delete AFTER DELETE ON messages"
    f" BEGIN {_count('-', 'OLD')}; END",
    "CREATE TRIGGER IF NOT EXISTS messages_counted_update"
    f" AFTER UPDATE OF recent, mailbox_id ON messages WHEN {_COUNTED_CHANGE}"
    f" BEGIN {_count('-', 'OLD')}; {_count('+', 'NEW')}; END",
)

PG_TRIGGERS = (
    "CREATE FUNCTION mailpush_count_messages() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    f" IF TG_OP <> 'INSERT' THEN {_count('-', 'OLD')}; END IF;"
    f" IF TG_OP <> 'DELETE' THEN {_count('+', 'NEW')}; END IF;"
    " RETURN NULL; END $$",
    "CREATE TRIGGER messages_counted AFTER INSERT OR DELETE ON messages"
    " FOR EACH ROW EXECUTE FUNCTION mailpush_count_messages()",
    "CREATE TRIGGER messages_counted_update AFTER UPDATE OF recent, mailbox_id"
    f" ON messages FOR EACH ROW WHEN ({_COUNTED_CHANGE})"
    " EXECUTE FUNCTION mailpush_count_messages()",
)

#: The unseen messages by mailbox and UID: the first unseen UID in one seek. A query
#: must repeat the WHERE exactly for either planner to use it.
UNSEEN_INDEX = (
    "CREATE INDEX IF NOT EXISTS messages_unseen ON messages (mailbox_id, uid)"
    f" WHERE (flags & {SEEN}) = 0"
)
#: The condition `UNSEEN_INDEX` covers, as a query writes it.
UNSEEN_CONDITION = f"(flags & {SEEN}) = 0"

#: Every mailbox counted from its messages: what an upgrade starts the triggers from.
BACKFILL = (
    "UPDATE mailboxes SET"
    " message_count = (SELECT COUNT(*) FROM messages m WHERE m.mailbox_id = mailboxes.id),"
    " recent_count = (SELECT COALESCE(SUM(m.recent), 0) FROM messages m"
    "  WHERE m.mailbox_id = mailboxes.id),"
    " unseen_count = (SELECT COUNT(*) FROM messages m WHERE m.mailbox_id = mailboxes.id"
    f"  AND (m.flags & {SEEN}) = 0)"
)


def add_unseen(conn: sqlite3.Connection, mailbox_id: int, change: int) -> None:
    """Count `change` more (or fewer) unseen messages in a mailbox: what a flag change did
    to `\\Seen`, once per STORE (module docstring); on either backend's connection."""
    if change:
        conn.execute(
            "UPDATE mailboxes SET unseen_count = unseen_count + ? WHERE id = ?",
            (change, mailbox_id),
        )
