"""The SQL the SQLite store's mailbox and message operations share.

Rows of `mailboxes` (looked up, created, their UID and modseq counters
advanced) and of `messages` (deleted with their bodies' reference counts, moved
when INBOX is renamed), and a mailbox's STATUS as one connection sees it —
also the writer's, inside a write, which is how a push transaction carries the
status its commit left. Every function runs on the writer or a reader thread
with the connection it is given.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from ..errors import MailboxNotFoundError, MailboxNotSelectableError
from .changes import MailboxCreated
from .mailbox_counts import UNSEEN_CONDITION
from .mailbox_names import INBOX
from .models import MailboxStatus
from .sqlite_writer import WriteContext

__all__ = [
    "Read",
    "MailboxRow",
    "allocate_uids",
    "at_mailbox_limit",
    "bump_modseq",
    "child_mailboxes",
    "dedupe_keywords",
    "delete_messages",
    "insert_mailbox",
    "mailbox_row",
    "mailbox_sort_key",
    "mailbox_status",
    "move_all_messages",
    "opened_mailbox",
    "read_mailbox",
    "read_mailbox_id",
    "record_expunged",
    "remember_keywords",
    "selectable_mailbox",
]

T = TypeVar("T")


class Read(Protocol):
    """`SqliteStore._read`: run a query on a reader thread, in one snapshot."""

    def __call__(self, query: Callable[[sqlite3.Connection], T]) -> Awaitable[T]: ...


MailboxRow = tuple[int, int, int, int]  # id, uidvalidity, uidnext, highestmodseq


def mailbox_status(conn: sqlite3.Connection, user: str, mailbox: str) -> MailboxStatus:
    """STATUS of `mailbox` (a normalized name) as `conn` sees it, also inside a write.

    Its counts are the row's (store/mailbox_counts.py), the first unseen UID one
    seek in the unseen index: the cost does not grow with the mailbox."""
    row = conn.execute(_STATUS, (user, mailbox)).fetchone()
    if row is None:
        raise MailboxNotFoundError(mailbox)
    keywords: tuple[str, ...] = ()
    if row[8]:
        keywords = tuple(
            r[0]
            for r in conn.execute(
                "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ? ORDER BY keyword",
                (row[0],),
            )
        )
    return MailboxStatus(
        mailbox, row[4], row[5], row[6], row[2], row[1], row[3], row[7], keywords
    )


#: A mailbox's status in one statement: a delivery's push event reads it inside the
#: write transaction, for every message, so it is one step there and not three;
#: its keywords (most mailboxes have none) only when it has some.
_STATUS = (
    "SELECT m.id, m.uidvalidity, m.uidnext, m.highestmodseq,"
    " m.message_count, m.recent_count, m.unseen_count,"
    f" (SELECT MIN(uid) FROM messages WHERE mailbox_id = m.id AND {UNSEEN_CONDITION}),"
    " EXISTS (SELECT 1 FROM mailbox_keywords WHERE mailbox_id = m.id)"
    " FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE u.name = ? AND m.name = ?"
)


def mailbox_row(conn: sqlite3.Connection, user_id: int, name: str) -> MailboxRow | None:
    row = conn.execute(
        "SELECT id, uidvalidity, uidnext, highestmodseq FROM mailboxes"
        " WHERE user_id = ? AND name = ?",
        (user_id, name),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


def opened_mailbox(ctx: WriteContext, user: str, user_id: int, name: str) -> MailboxRow:
    """A mailbox a message operation writes into; INBOX is created on this first use."""
    if name == INBOX and mailbox_row(ctx.conn, user_id, INBOX) is None:
        insert_mailbox(ctx, user, user_id, INBOX, None)
    return selectable_mailbox(ctx.conn, user_id, name)


def selectable_mailbox(conn: sqlite3.Connection, user_id: int, name: str) -> MailboxRow:
    row = mailbox_row(conn, user_id, name)
    if row is not None:
        return row
    if child_mailboxes(conn, user_id, name):
        raise MailboxNotSelectableError(f"Mailbox isn't selectable: {name}")
    raise MailboxNotFoundError(name)


def read_mailbox(
    conn: sqlite3.Connection, user: str, name: str
) -> tuple[int, int, int, int, str | None]:
    """(id, uidvalidity, uidnext, highestmodseq, special_use) of a user's mailbox."""
    row = conn.execute(
        "SELECT m.id, m.uidvalidity, m.uidnext, m.highestmodseq, m.special_use"
        " FROM mailboxes m JOIN users u ON u.id = m.user_id"
        " WHERE u.name = ? AND m.name = ?",
        (user, name),
    ).fetchone()
    if row is None:
        raise MailboxNotFoundError(name)
    return (row[0], row[1], row[2], row[3], row[4])


def read_mailbox_id(conn: sqlite3.Connection, user: str, name: str) -> int:
    return read_mailbox(conn, user, name)[0]


def child_mailboxes(conn: sqlite3.Connection, user_id: int, name: str) -> list[tuple[int, str]]:
    prefix = name + "/"
    # substr comparison rather than LIKE: names may contain % and _.
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT id, name FROM mailboxes WHERE user_id = ? AND substr(name, 1, ?) = ?",
            (user_id, len(prefix), prefix),
        )
    ]


def at_mailbox_limit(conn: sqlite3.Connection, user_id: int, limit: int) -> bool:
    """Whether the user has `limit` mailboxes already (never, for a limit of 0)."""
    if limit <= 0:
        return False
    row = conn.execute("SELECT COUNT(*) FROM mailboxes WHERE user_id = ?", (user_id,)).fetchone()
    return int(row[0]) >= limit


def insert_mailbox(
    ctx: WriteContext,
    user: str,
    user_id: int,
    name: str,
    special_use: str | None,
    *,
    record: bool = True,
    delivery: bool = False,
) -> MailboxCreated:
    conn = ctx.conn
    last = conn.execute("SELECT uidvalidity_last FROM users WHERE id = ?", (user_id,)).fetchone()[0]
    uidvalidity = max(int(time.time()), last + 1)
    conn.execute("UPDATE users SET uidvalidity_last = ? WHERE id = ?", (uidvalidity, user_id))
    conn.execute(
        "INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?)",
        (user_id, name, uidvalidity, special_use),
    )
    change = MailboxCreated(user, name, uidvalidity, delivery=delivery)
    if record:
        ctx.record(change)
    return change


def bump_modseq(conn: sqlite3.Connection, box_id: int) -> int:
    row = conn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"
        " RETURNING highestmodseq",
        (box_id,),
    ).fetchone()
    return int(row[0])


def allocate_uids(conn: sqlite3.Connection, box_id: int, count: int) -> tuple[int, int]:
    """Reserve `count` UIDs; returns (first uid, new modseq). Never reuses a UID."""
    row = conn.execute(
        "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1"
        " WHERE id = ? RETURNING uidnext, highestmodseq",
        (count, box_id),
    ).fetchone()
    return int(row[0]) - count, int(row[1])


def delete_messages(conn: sqlite3.Connection, box_id: int, uids: Sequence[int]) -> None:
    for uid in uids:
        row = conn.execute(
            "DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING body_id",
            (box_id, uid),
        ).fetchone()
        if row is None:
            continue
        conn.execute("UPDATE bodies SET refs = refs - 1 WHERE id = ?", (row[0],))
        conn.execute("DELETE FROM bodies WHERE id = ? AND refs <= 0", (row[0],))


def record_expunged(
    conn: sqlite3.Connection, box_id: int, uids: Sequence[int], modseq: int
) -> None:
    """Remember expunged UIDs with their modseq (QRESYNC's VANISHED, `changes_since`)."""
    conn.executemany(
        "INSERT OR REPLACE INTO expunged_messages (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
        [(box_id, uid, modseq) for uid in uids],
    )


def move_all_messages(conn: sqlite3.Connection, from_id: int, to_id: int) -> None:
    """Renaming INBOX: its messages move to the new mailbox with fresh UIDs there."""
    uids = [
        r[0]
        for r in conn.execute(
            "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (from_id,)
        )
    ]
    if not uids:
        return
    first_uid, modseq = allocate_uids(conn, to_id, len(uids))
    for offset, uid in enumerate(uids):
        conn.execute(
            "UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ?"
            " WHERE mailbox_id = ? AND uid = ?",
            (to_id, first_uid + offset, modseq, from_id, uid),
        )
    record_expunged(conn, from_id, uids, bump_modseq(conn, from_id))


def remember_keywords(conn: sqlite3.Connection, box_id: int, keywords: Iterable[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO mailbox_keywords (mailbox_id, keyword_key, keyword)"
        " VALUES (?, ?, ?)",
        [(box_id, kw.lower(), kw) for kw in keywords],
    )


def dedupe_keywords(keywords: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[str] = set()
    for kw in keywords:
        key = kw.lower()
        if kw and key not in seen:
            seen.add(key)
            out.append(kw)
    return tuple(out)


def mailbox_sort_key(name: str) -> tuple[int, str]:
    return (0 if name == INBOX or name.startswith(INBOX + "/") else 1, name)
