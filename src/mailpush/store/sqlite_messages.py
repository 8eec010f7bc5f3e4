"""Messages in the SQLite store: save, deliver, copy, move, flag, expunge and read.

One job of `SqliteStore`, which hands it the store's group-commit writer and
reader threads. A save's push summary is parsed before its write operation is
submitted (`summaries`, off the event loop) and stored with the body, so the
write transaction parses nothing, and a COPY or MOVE reads no body
(store/message_summaries.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from ..errors import MailboxNotFoundError, MessageNotFoundError, StoreError
from ..mime import MessageSummary, summarize
from . import flags as F
from .base import FlagMode
from .changes import (
    FlagChange,
    FlagsChanged,
    MessagesExpunged,
    MessagesSaved,
    SavedMessage,
    TransactionRolledBack,
)
from .mailbox_counts import add_unseen
from .mailbox_names import INBOX, new_mailbox_name_problem, normalize_mailbox_name
from .message_summaries import summary_from_text, summary_to_text
from .models import (
    DeliveryTarget,
    MailboxChanges,
    MailboxSnapshot,
    MessageInfo,
    NewMessage,
)
from .sqlite_mailbox_rows import (
    MailboxRow,
    Read,
    allocate_uids,
    at_mailbox_limit,
    bump_modseq,
    dedupe_keywords,
    delete_messages,
    insert_mailbox,
    mailbox_row,
    mailbox_status,
    opened_mailbox,
    read_mailbox,
    read_mailbox_id,
    record_expunged,
    remember_keywords,
    selectable_mailbox,
)
from .sqlite_users import user_row_id
from .sqlite_writer import Submit, WriteContext

#: Largest message whose save is a light operation (`Submit`): copying a larger
#: body into the database's pages would hold up the event loop it runs on.
LIGHT_MESSAGE_BYTES = 256 * 1024

#: Parses messages' summaries before their write (`SqliteStore._summaries`); None each
#: while the store records no pushes.
Summaries = Callable[[Sequence[bytes]], Awaitable[list[MessageSummary | None]]]


class SqliteMessages:
    """The message side of `SqliteStore`; it shares the store's writer and readers."""

    def __init__(
        self, submit: Submit, read: Read, summaries: Summaries, limit: Callable[[], int]
    ) -> None:
        self._submit = submit
        self._read = read
        self._summaries = summaries
        #: `quota_mailbox_count` (0: no limit): whether a delivery may create a mailbox.
        self._limit = limit

    async def append(
        self, user: str, mailbox: str, messages: Sequence[NewMessage]
    ) -> MessagesSaved:
        """IMAP APPEND (one or several messages, one transaction): MessageAppend.

        A missing INBOX is created first (MailboxCreate), as Dovecot creates it
        on first use.
        """
        mailbox = normalize_mailbox_name(mailbox)
        if not messages:
            raise StoreError("nothing to append")
        summaries = await self._summaries([message.raw for message in messages])

        def op(ctx: WriteContext) -> MessagesSaved:
            user_id = user_row_id(ctx.conn, user)
            box = opened_mailbox(ctx, user, user_id, mailbox)
            return _save(ctx, user, box, mailbox, messages, summaries, delivery=False)

        light = len(messages) == 1 and len(messages[0].raw) <= LIGHT_MESSAGE_BYTES
        return (await self._submit(op, light=light))[0]

    async def deliver(
        self, user: str, raw: bytes, targets: Sequence[DeliveryTarget]
    ) -> list[MessagesSaved]:
        """A delivery (LMTP, `mailpush deliver`, Sieve) into one or more mailboxes.

        All targets are saved in one database transaction sharing one copy of
        the body; each target is its own change record (one MessageNew per
        folder, as Dovecot). A missing INBOX is created; another missing
        mailbox is created only when its target says so, and while the user
        has fewer than `mailbox_count_limit` mailboxes and CREATE would accept
        the name: else the message goes to INBOX instead, as Dovecot's LDA does
        when it may not create the mailbox.
        """
        wanted = [
            DeliveryTarget(normalize_mailbox_name(t.mailbox), t.flags, t.keywords, t.create)
            for t in targets
        ]
        if not wanted:
            raise StoreError("a delivery needs at least one target mailbox")

        limit = self._limit()
        inbox_wanted = any(t.mailbox == INBOX for t in wanted)
        summaries = await self._summaries([raw])

        def op(ctx: WriteContext) -> list[MessagesSaved]:
            user_id = user_row_id(ctx.conn, user)
            body_id: int | None = None
            results = []
            into_inbox = inbox_wanted
            for number, target in enumerate(wanted, 1):
                row = mailbox_row(ctx.conn, user_id, target.mailbox)
                if row is None and target.mailbox != INBOX and target.create:
                    name_refused = new_mailbox_name_problem(target.mailbox) is not None
                    if name_refused or at_mailbox_limit(ctx.conn, user_id, limit):
                        if into_inbox:
                            continue  # INBOX gets its copy from its own target
                        into_inbox = True
                        target = DeliveryTarget(INBOX, target.flags, target.keywords, False)
                        row = mailbox_row(ctx.conn, user_id, INBOX)
                if row is None:
                    if not (target.create or target.mailbox == INBOX):
                        raise MailboxNotFoundError(target.mailbox)
                    insert_mailbox(ctx, user, user_id, target.mailbox, None, delivery=True)
                    row = mailbox_row(ctx.conn, user_id, target.mailbox)
                    assert row is not None
                message = NewMessage(raw, target.flags, target.keywords)
                saved = _save(
                    ctx, user, row, target.mailbox, [message], summaries, delivery=True,
                    body_id=body_id,
                )
                if number < len(wanted):  # the next target shares this copy of the body
                    body_id = _body_of(ctx.conn, row[0], saved.messages[0].uid)
                results.append(saved)
            return results

        return (await self._submit(op, light=len(raw) <= LIGHT_MESSAGE_BYTES))[0]

    async def copy(self, user: str, source: str, uids: Iterable[int], dest: str) -> MessagesSaved:
        """IMAP COPY: MessageAppend in `dest`; flags and keywords travel along."""
        return (await self._copy(user, source, uids, dest, move=False))[0]

    async def move(
        self, user: str, source: str, uids: Iterable[int], dest: str
    ) -> tuple[MessagesSaved, MessagesExpunged]:
        """IMAP MOVE: one database transaction, two change records (append, then expunge)."""
        saved, expunged = await self._copy(user, source, uids, dest, move=True)
        assert expunged is not None
        return saved, expunged

    async def _copy(
        self, user: str, source: str, uids: Iterable[int], dest: str, *, move: bool
    ) -> tuple[MessagesSaved, MessagesExpunged | None]:
        source = normalize_mailbox_name(source)
        dest = normalize_mailbox_name(dest)
        wanted = sorted(set(uids))

        def op(ctx: WriteContext) -> tuple[MessagesSaved, MessagesExpunged | None]:
            conn = ctx.conn
            user_id = user_row_id(conn, user)
            src = selectable_mailbox(conn, user_id, source)
            dst = opened_mailbox(ctx, user, user_id, dest)
            if not wanted:
                raise StoreError("no messages to copy")
            rows = _message_rows(conn, src[0], wanted)
            if len(rows) < len(wanted):
                # Expunged since the caller named them: all or nothing, as Dovecot copies.
                found = {row[0] for row in rows}
                raise MessageNotFoundError(source, next(u for u in wanted if u not in found))
            saved = _copy_rows(ctx, user, src, source, dst, dest, rows)
            expunged = None
            if move:
                moved = [r[0] for r in rows]
                modseq = bump_modseq(conn, src[0])
                delete_messages(conn, src[0], moved)
                record_expunged(conn, src[0], moved, modseq)
                expunged = MessagesExpunged(user, source, src[1], tuple(moved), modseq)
                ctx.record(expunged)
            return saved, expunged

        return (await self._submit(op))[0]

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

        `recent_uids` are the messages the acting session holds `\\Recent` for;
        events report that flag as Dovecot does. `unchanged_since`: RFC 7162's
        UNCHANGEDSINCE, judged here, inside the write transaction, so that a change
        another session or process committed a moment earlier is never overwritten;
        the messages left alone are the result's `modified`.
        """
        mailbox = normalize_mailbox_name(mailbox)
        flags &= F.STORED_FLAGS
        wanted = sorted(set(uids))
        kw = dedupe_keywords(keywords)

        def op(ctx: WriteContext) -> FlagsChanged:
            conn = ctx.conn
            user_id = user_row_id(conn, user)
            box = selectable_mailbox(conn, user_id, mailbox)
            changes: list[FlagChange] = []
            modified: list[int] = []
            modseq: int | None = None
            unseen = 0
            for uid, old_flags, old_kw_text, old_modseq in _flag_rows(conn, box[0], wanted):
                if unchanged_since is not None and old_modseq > unchanged_since:
                    modified.append(uid)
                    continue
                old_kw = tuple(old_kw_text.split()) if old_kw_text else ()
                new_flags, new_kw = F.apply_flag_change(mode, old_flags, old_kw, flags, kw)
                if new_flags == old_flags and new_kw == old_kw:
                    continue
                if modseq is None:
                    modseq = bump_modseq(conn, box[0])
                conn.execute(
                    "UPDATE messages SET flags = ?, keywords = ?, modseq = ?"
                    " WHERE mailbox_id = ? AND uid = ?",
                    (new_flags, " ".join(new_kw), modseq, box[0], uid),
                )
                unseen += bool(old_flags & F.SEEN) - bool(new_flags & F.SEEN)
                recent = uid in recent_uids
                changes.append(
                    FlagChange(uid, old_flags, new_flags, old_kw, new_kw, modseq, recent)
                )
            add_unseen(conn, box[0], unseen)
            if kw and mode != "remove":
                remember_keywords(conn, box[0], kw)
            result = FlagsChanged(user, mailbox, box[1], tuple(changes), tuple(modified))
            if changes:
                ctx.record(result)
            return result

        return (await self._submit(op))[0]

    async def expunge(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> MessagesExpunged:
        """Remove `\\Deleted` messages (only those among `uids` when given: UID EXPUNGE)."""
        mailbox = normalize_mailbox_name(mailbox)
        wanted = None if uids is None else sorted(set(uids))

        def op(ctx: WriteContext) -> MessagesExpunged:
            conn = ctx.conn
            user_id = user_row_id(conn, user)
            box = selectable_mailbox(conn, user_id, mailbox)
            deleted = [
                r[0]
                for r in conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ? AND flags & ? ORDER BY uid",
                    (box[0], F.DELETED),
                )
            ]
            if wanted is not None:
                allowed = set(wanted)
                deleted = [u for u in deleted if u in allowed]
            if not deleted:
                return MessagesExpunged(user, mailbox, box[1], (), box[3])
            modseq = bump_modseq(conn, box[0])
            delete_messages(conn, box[0], deleted)
            record_expunged(conn, box[0], deleted, modseq)
            result = MessagesExpunged(user, mailbox, box[1], tuple(deleted), modseq)
            ctx.record(result)
            return result

        return (await self._submit(op))[0]

    async def record_rollback(self, user: str, mailbox: str) -> TransactionRolledBack:
        """Record that a mail transaction in `mailbox` began and was rolled back.

        IMAP APPEND calls it when a MULTIAPPEND fails after accepting a message:
        nothing was stored, but Dovecot's push transaction had begun, and ends
        with `end_txn(ctx, false)` (docs/dovecot-reference.md#rolled-back-transactions).
        """
        mailbox = normalize_mailbox_name(mailbox)

        def op(ctx: WriteContext) -> TransactionRolledBack:
            opened_mailbox(ctx, user, user_row_id(ctx.conn, user), mailbox)
            change = TransactionRolledBack(user, mailbox)
            ctx.record(change)
            return change

        return (await self._submit(op))[0]

    async def take_recent(
        self, user: str, mailbox: str, up_to_uid: int | None = None
    ) -> list[int]:
        """Claim `\\Recent` for one session: returns the UIDs it now holds.

        `up_to_uid` is the highest UID the session numbers: a message saved
        since stays unclaimed until the session announces it, so `* n RECENT`
        never counts more messages than the session's EXISTS.
        """
        mailbox = normalize_mailbox_name(mailbox)
        limit = -1 if up_to_uid is None else up_to_uid

        def op(ctx: WriteContext) -> list[int]:
            user_id = user_row_id(ctx.conn, user)
            box = selectable_mailbox(ctx.conn, user_id, mailbox)
            where = "mailbox_id = ? AND recent = 1 AND (? < 0 OR uid <= ?)"
            uids = [
                r[0]
                for r in ctx.conn.execute(
                    f"SELECT uid FROM messages WHERE {where} ORDER BY uid",
                    (box[0], limit, limit),
                )
            ]
            if uids:
                ctx.conn.execute(
                    f"UPDATE messages SET recent = 0 WHERE {where}", (box[0], limit, limit)
                )
            return uids

        return (await self._submit(op))[0]

    async def messages(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> list[MessageInfo]:
        """Metadata of the messages in `mailbox` (all, or those of `uids`), in UID order."""
        mailbox = normalize_mailbox_name(mailbox)
        wanted = None if uids is None else sorted(set(uids))

        def read(conn: sqlite3.Connection) -> list[MessageInfo]:
            box_id = read_mailbox_id(conn, user, mailbox)
            if wanted is None:
                return _all_messages(conn, box_id)
            if not wanted:
                return []
            # Only the range asked for: SORT and SEARCH ask chunk by chunk, and reading the
            # whole mailbox for each chunk made a 10,000-message SORT read 200,000 rows.
            allowed = set(wanted)
            rows = conn.execute(
                _MESSAGES + " AND uid BETWEEN ? AND ? ORDER BY uid",
                (box_id, wanted[0], wanted[-1]),
            ).fetchall()
            return [_message_info(r) for r in rows if r[0] in allowed]

        return await self._read(read)

    async def snapshot(self, user: str, mailbox: str) -> MailboxSnapshot:
        """The status and every message of `mailbox` in one read transaction (SELECT)."""
        mailbox = normalize_mailbox_name(mailbox)

        def read(conn: sqlite3.Connection) -> MailboxSnapshot:
            status = mailbox_status(conn, user, mailbox)
            box_id = read_mailbox_id(conn, user, mailbox)
            return MailboxSnapshot(status, tuple(_all_messages(conn, box_id)))

        return await self._read(read)

    async def changes_since(self, user: str, mailbox: str, modseq: int) -> MailboxChanges:
        """Messages and expunged UIDs with a modseq above `modseq`, in one snapshot.

        Expunged UIDs are found by a (mailbox_id, modseq) index. Messages are not: an
        index on their modseq would cost every STORE 1:* a fifth more, while reading a
        mailbox's rows by primary key and testing modseq in SQLite takes under a
        millisecond per 10,000 messages, on a reader thread.
        """
        mailbox = normalize_mailbox_name(mailbox)

        def read(conn: sqlite3.Connection) -> MailboxChanges:
            box_id, uidvalidity, uidnext, highest, _ = read_mailbox(conn, user, mailbox)
            rows = conn.execute(
                "SELECT uid, flags, keywords, size, internal_date, internal_tz, modseq, recent"
                " FROM messages WHERE mailbox_id = ? AND modseq > ?",
                (box_id, modseq),
            ).fetchall()
            rows.sort()
            expunged = sorted(
                r[0]
                for r in conn.execute(
                    "SELECT uid FROM expunged_messages WHERE mailbox_id = ? AND modseq > ?",
                    (box_id, modseq),
                )
            )
            return MailboxChanges(
                uidvalidity, highest, uidnext,
                tuple(_message_info(r) for r in rows), tuple(expunged),
            )  # fmt: skip

        return await self._read(read)

    async def raw_message(self, user: str, mailbox: str, uid: int) -> bytes:
        mailbox = normalize_mailbox_name(mailbox)

        def read(conn: sqlite3.Connection) -> bytes:
            box_id = read_mailbox_id(conn, user, mailbox)
            row = conn.execute(
                "SELECT b.raw FROM messages m JOIN bodies b ON b.id = m.body_id"
                " WHERE m.mailbox_id = ? AND m.uid = ?",
                (box_id, uid),
            ).fetchone()
            if row is None:
                raise MessageNotFoundError(mailbox, uid)
            return bytes(row[0])

        return await self._read(read)

    async def raw_messages(
        self, user: str, mailbox: str, uids: Iterable[int]
    ) -> dict[int, bytes]:
        """Raw bytes of several messages in one read (FETCH of many BODY[] items)."""
        mailbox = normalize_mailbox_name(mailbox)
        wanted = sorted(set(uids))

        def read(conn: sqlite3.Connection) -> dict[int, bytes]:
            box_id = read_mailbox_id(conn, user, mailbox)
            out: dict[int, bytes] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for uid, raw in conn.execute(
                    "SELECT m.uid, b.raw FROM messages m JOIN bodies b ON b.id = m.body_id"
                    f" WHERE m.mailbox_id = ? AND m.uid IN ({marks})",
                    (box_id, *chunk),
                ):
                    out[uid] = bytes(raw)
            return out

        return await self._read(read)


def _save(
    ctx: WriteContext,
    user: str,
    box: MailboxRow,
    mailbox: str,
    messages: Sequence[NewMessage],
    summaries: Sequence[MessageSummary | None],
    *,
    delivery: bool,
    body_id: int | None = None,
) -> MessagesSaved:
    conn = ctx.conn
    first_uid, modseq = allocate_uids(conn, box[0], len(messages))
    now = int(time.time())
    saved: list[SavedMessage] = []
    for offset, (message, summary) in enumerate(zip(messages, summaries, strict=True)):
        if summary is None and ctx.recording:
            # Push drivers came (a reload) after the summary was skipped: make it now.
            summary = summarize(message.raw)
        uid = first_uid + offset
        keywords = dedupe_keywords(message.keywords)
        flags = message.flags & F.STORED_FLAGS
        if body_id is None or offset > 0:
            cur = conn.execute(
                "INSERT INTO bodies (refs, raw, summary) VALUES (1, ?, ?)",
                (message.raw, "" if summary is None else summary_to_text(summary)),
            )
            assert cur.lastrowid is not None
            this_body = cur.lastrowid
        else:
            conn.execute("UPDATE bodies SET refs = refs + 1 WHERE id = ?", (body_id,))
            this_body = body_id
        internal_date = now if message.internal_date is None else message.internal_date
        conn.execute(
            "INSERT INTO messages (mailbox_id, uid, body_id, size, internal_date, internal_tz,"
            " flags, keywords, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (box[0], uid, this_body, len(message.raw), internal_date, message.internal_tz,
             flags, " ".join(keywords), modseq),
        )
        if keywords:
            remember_keywords(conn, box[0], keywords)
        saved.append(
            SavedMessage(uid, flags, keywords, len(message.raw), internal_date, modseq, summary)
        )
    result = MessagesSaved(user, mailbox, box[1], tuple(saved), delivery)
    ctx.record(result)
    return result


def _copy_rows(
    ctx: WriteContext,
    user: str,
    src: MailboxRow,
    source: str,
    dst: MailboxRow,
    dest: str,
    rows: list[MessageRow],
) -> MessagesSaved:
    """Copy `rows` of `src` into `dst`, sharing bodies; flags, keywords and the stored
    summary travel along: no body is read or parsed."""
    conn = ctx.conn
    first_uid, modseq = allocate_uids(conn, dst[0], len(rows))
    saved: list[SavedMessage] = []
    for offset, (uid, body_id, size, internal_date, flags, kw_text, stored) in enumerate(rows):
        new_uid = first_uid + offset
        conn.execute("UPDATE bodies SET refs = refs + 1 WHERE id = ?", (body_id,))
        conn.execute(
            "INSERT INTO messages (mailbox_id, uid, body_id, size, internal_date, internal_tz,"
            " flags, keywords, modseq)"
            " SELECT ?, ?, body_id, size, internal_date, internal_tz, flags, keywords, ?"
            " FROM messages WHERE mailbox_id = ? AND uid = ?",
            (dst[0], new_uid, modseq, src[0], uid),
        )
        keywords = tuple(kw_text.split()) if kw_text else ()
        if keywords:
            remember_keywords(conn, dst[0], keywords)
        saved.append(
            SavedMessage(new_uid, flags, keywords, size, internal_date, modseq,
                         _stored_summary(ctx, body_id, stored), uid)
        )
    result = MessagesSaved(user, dest, dst[1], tuple(saved), False, source_mailbox=source)
    ctx.record(result)
    return result


def _stored_summary(ctx: WriteContext, body_id: int, stored: str) -> MessageSummary | None:
    """A copied message's summary as stored; made (and stored) here only for a body saved
    while the store recorded no pushes, once pushes are recorded."""
    if stored:
        return summary_from_text(stored)
    if not ctx.recording:
        return None
    raw = ctx.conn.execute("SELECT raw FROM bodies WHERE id = ?", (body_id,)).fetchone()[0]
    summary = summarize(bytes(raw))
    ctx.conn.execute(
        "UPDATE bodies SET summary = ? WHERE id = ?", (summary_to_text(summary), body_id)
    )
    return summary


#: uid, body id, size, internal date, flags, keywords (text), stored summary (text).
MessageRow = tuple[int, int, int, int, int, str, str]


#: A mailbox's messages as `_message_info` reads them; `?` is the mailbox id.
_MESSAGES = (
    "SELECT uid, flags, keywords, size, internal_date, internal_tz, modseq, recent"
    " FROM messages WHERE mailbox_id = ?"
)


def _all_messages(conn: sqlite3.Connection, box_id: int) -> list[MessageInfo]:
    rows = conn.execute(_MESSAGES + " ORDER BY uid", (box_id,)).fetchall()
    return [_message_info(r) for r in rows]


def _message_info(r: tuple[int, int, str, int, int, int, int, int]) -> MessageInfo:
    """A `messages` row (uid, flags, keywords, size, date, tz, modseq, recent) as read."""
    return MessageInfo(
        r[0], r[1], tuple(r[2].split()) if r[2] else (), r[3], r[4], r[5], r[6], bool(r[7])
    )


def _message_rows(conn: sqlite3.Connection, box_id: int, uids: list[int]) -> list[MessageRow]:
    """The rows of `uids` (sorted) in `box_id`, with their bodies' summaries, in UID order."""
    if not uids:
        return []
    select = (
        "SELECT m.uid, m.body_id, m.size, m.internal_date, m.flags, m.keywords, b.summary"
        " FROM messages m JOIN bodies b ON b.id = m.body_id WHERE m.mailbox_id = ?"
    )
    allowed = set(uids)
    return [
        (r[0], r[1], r[2], r[3], r[4], r[5], r[6])
        for r in conn.execute(
            select + " AND m.uid BETWEEN ? AND ? ORDER BY m.uid", (box_id, uids[0], uids[-1])
        )
        if r[0] in allowed
    ]


def _flag_rows(
    conn: sqlite3.Connection, box_id: int, uids: list[int]
) -> list[tuple[int, int, str, int]]:
    if not uids:
        return []
    if len(uids) <= 500:
        marks = ",".join("?" * len(uids))
        return [
            (r[0], r[1], r[2], r[3])
            for r in conn.execute(
                f"SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?"
                f" AND uid IN ({marks}) ORDER BY uid",
                (box_id, *uids),
            )
        ]
    allowed = set(uids)
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ?"
            " AND uid BETWEEN ? AND ? ORDER BY uid",
            (box_id, uids[0], uids[-1]),
        )
        if r[0] in allowed
    ]


def _body_of(conn: sqlite3.Connection, box_id: int, uid: int) -> int:
    row = conn.execute(
        "SELECT body_id FROM messages WHERE mailbox_id = ? AND uid = ?", (box_id, uid)
    ).fetchone()
    return int(row[0])
