"""The SQLite mail store: every mutation one transaction, committed in groups.

Writes go through `GroupCommitWriter` (one thread, one connection, batched
fsync); reads run on a small pool of reader threads with their own
connections, so the event loop never waits on SQLite. WAL mode lets readers
proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

from ..errors import (
    InvalidMailboxNameError,
    MailboxExistsError,
    MailboxNotFoundError,
    MailboxNotSelectableError,
    MessageNotFoundError,
    StoreError,
    TooManyMailboxesError,
)
from . import flags as F
from .base import FlagMode
from .change_hub import ChangeHub
from .changes import (
    FlagChange,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesExpunged,
    MessagesSaved,
    SavedMessage,
    SubscriptionChanged,
    TransactionRolledBack,
)
from .mailbox_names import (
    INBOX,
    check_new_mailbox_name,
    is_inside,
    new_mailbox_name_problem,
    normalize_mailbox_name,
    parent_names,
)
from .models import (
    DeliveryTarget,
    MailboxInfo,
    MailboxStatus,
    MessageInfo,
    NewMessage,
)
from .sqlite_metadata import SqliteMetadata
from .sqlite_outbox import SqliteOutbox, add_outbox_columns
from .sqlite_pushed_ids import SqlitePushedMessageIds
from .sqlite_writer import GroupCommitWriter, OutboxRecorder, WriteContext

T = TypeVar("T")

FsyncPolicy = Literal["optimized", "always", "never"]

#: 2 added tables only (METADATA, push_message_ids); `open` creates them in a version-1 file.
#: 3 added outbox columns (sqlite_outbox.add_outbox_columns).
SCHEMA_VERSION = 3
READER_THREADS = 2


class SqliteStore:
    """Mail, mailboxes and the push outbox of every user, in one SQLite file."""

    def __init__(
        self,
        path: Path,
        *,
        fsync: FsyncPolicy = "optimized",
        recorder: OutboxRecorder | None = None,
        hub: ChangeHub | None = None,
        mailbox_count_limit: int = 0,
    ) -> None:
        self.path = path
        self.fsync = fsync
        #: `quota_mailbox_count`: most mailboxes a user may create (0: no limit).
        self.mailbox_count_limit = mailbox_count_limit
        self.hub = hub or ChangeHub()
        self._writer = GroupCommitWriter(
            self._connect, recorder, self.hub.publish, status_reader=mailbox_status
        )
        self._local = threading.local()
        self._readers: ThreadPoolExecutor | None = None
        self.outbox = SqliteOutbox(self._writer.submit, self._read)
        self.pushed_ids = SqlitePushedMessageIds(self._writer.submit)
        self.metadata = SqliteMetadata(self._writer.submit, self._read)

    # --- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Create or upgrade the database file and start the worker threads."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            schema = resources.files("mailpush.store").joinpath("schema.sql").read_text()
            # Several processes may open a new file at once (`mailpush deliver`):
            # one creates the schema, the others wait for it.
            conn.execute("BEGIN IMMEDIATE")
            # Columns first: the schema's indexes use them.
            add_outbox_columns(conn)
            for statement in schema.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer mailpush (schema {row[0]});"
                    " upgrade mailpush to open it"
                )
            elif row[0] < SCHEMA_VERSION:
                # Every upgrade so far only added tables and columns, added above.
                conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
        os.chmod(self.path, 0o600)
        self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="store-reader")
        self._writer.start()

    def close(self) -> None:
        """Finish queued writes and stop the threads; safe to call twice."""
        self._writer.stop()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None

    def set_recorder(self, recorder: OutboxRecorder | None) -> None:
        self._writer.set_recorder(recorder)

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(batches committed, operations committed): how well group commit groups."""
        return self._writer.batches, self._writer.operations

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL fsyncs the WAL at every commit: an acknowledged mail survives power loss.
        sync = "NORMAL" if self.fsync == "never" else "FULL"
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    # --- mailboxes ------------------------------------------------------------------

    async def create_mailbox(
        self, user: str, name: str, special_use: str | None = None
    ) -> MailboxCreated:
        name = normalize_mailbox_name(name)
        check_new_mailbox_name(name)
        limit = self.mailbox_count_limit

        def op(ctx: WriteContext) -> MailboxCreated:
            user_id = _user_id(ctx.conn, user)
            if _mailbox_row(ctx.conn, user_id, name) is not None:
                raise MailboxExistsError(name)
            if _at_mailbox_limit(ctx.conn, user_id, limit):
                raise TooManyMailboxesError(user, limit)
            return _create_mailbox(ctx, user, user_id, name, special_use)

        return (await self._writer.submit(op))[0]

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
            user_id = _user_id(ctx.conn, user)
            return [
                _create_mailbox(ctx, user, user_id, name, use, record=name == INBOX)
                for name, use in wanted
                if _mailbox_row(ctx.conn, user_id, name) is None
            ]

        return (await self._writer.submit(op))[0]

    async def delete_mailbox(self, user: str, name: str) -> MailboxDeleted:
        """Delete a mailbox and its messages; its children stay (Dovecot does the same).

        The messages are reported first as one expunge, then the deletion, as
        two change records: Dovecot emits them as two push transactions.
        """
        name = normalize_mailbox_name(name)
        if name == INBOX:
            raise StoreError("INBOX can't be deleted")

        def op(ctx: WriteContext) -> MailboxDeleted:
            user_id = _user_id(ctx.conn, user)
            row = _mailbox_row(ctx.conn, user_id, name)
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
                _delete_messages(ctx.conn, box_id, uids)
                ctx.record(MessagesExpunged(user, name, uidvalidity, tuple(uids), highest + 1))
            ctx.conn.execute("DELETE FROM mailbox_keywords WHERE mailbox_id = ?", (box_id,))
            ctx.conn.execute("DELETE FROM mailbox_metadata WHERE mailbox_id = ?", (box_id,))
            ctx.conn.execute("DELETE FROM mailboxes WHERE id = ?", (box_id,))
            change = MailboxDeleted(user, name)
            ctx.record(change)
            return change

        return (await self._writer.submit(op))[0]

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
            user_id = _user_id(conn, user)
            row = _mailbox_row(conn, user_id, old)
            children = _children(conn, user_id, old)
            if row is None and not children:
                raise MailboxNotFoundError(old)
            if _mailbox_row(conn, user_id, new) is not None or _children(conn, user_id, new):
                raise MailboxExistsError(new)
            if old == INBOX:
                assert row is not None
                _create_mailbox(ctx, user, user_id, new, None, record=False)
                target = _mailbox_row(conn, user_id, new)
                assert target is not None
                _move_all_messages(conn, row[0], target[0])
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

        return (await self._writer.submit(op))[0]

    async def subscribe(self, user: str, name: str) -> SubscriptionChanged | None:
        """Subscribe to `name`, which need not exist; None when already subscribed."""
        return await self._set_subscription(user, normalize_mailbox_name(name), True)

    async def unsubscribe(self, user: str, name: str) -> SubscriptionChanged | None:
        return await self._set_subscription(user, normalize_mailbox_name(name), False)

    async def _set_subscription(
        self, user: str, name: str, subscribed: bool
    ) -> SubscriptionChanged | None:
        def op(ctx: WriteContext) -> SubscriptionChanged | None:
            user_id = _user_id(ctx.conn, user)
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

        return (await self._writer.submit(op))[0]

    # --- messages --------------------------------------------------------------------

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

        def op(ctx: WriteContext) -> MessagesSaved:
            user_id = _user_id(ctx.conn, user)
            box = _opened_mailbox(ctx, user, user_id, mailbox)
            return _save(ctx, user, box, mailbox, messages, delivery=False)

        return (await self._writer.submit(op))[0]

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

        limit = self.mailbox_count_limit
        inbox_wanted = any(t.mailbox == INBOX for t in wanted)

        def op(ctx: WriteContext) -> list[MessagesSaved]:
            user_id = _user_id(ctx.conn, user)
            body_id: int | None = None
            results = []
            into_inbox = inbox_wanted
            for target in wanted:
                row = _mailbox_row(ctx.conn, user_id, target.mailbox)
                if row is None and target.mailbox != INBOX and target.create:
                    name_refused = new_mailbox_name_problem(target.mailbox) is not None
                    if name_refused or _at_mailbox_limit(ctx.conn, user_id, limit):
                        if into_inbox:
                            continue  # INBOX gets its copy from its own target
                        into_inbox = True
                        target = DeliveryTarget(INBOX, target.flags, target.keywords, False)
                        row = _mailbox_row(ctx.conn, user_id, INBOX)
                if row is None:
                    if not (target.create or target.mailbox == INBOX):
                        raise MailboxNotFoundError(target.mailbox)
                    _create_mailbox(ctx, user, user_id, target.mailbox, None, delivery=True)
                    row = _mailbox_row(ctx.conn, user_id, target.mailbox)
                    assert row is not None
                message = NewMessage(raw, target.flags, target.keywords)
                saved = _save(
                    ctx, user, row, target.mailbox, [message], delivery=True, body_id=body_id
                )
                body_id = _body_of(ctx.conn, row[0], saved.messages[0].uid)
                results.append(saved)
            return results

        return (await self._writer.submit(op))[0]

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
            user_id = _user_id(conn, user)
            src = _selectable_mailbox(conn, user_id, source)
            dst = _opened_mailbox(ctx, user, user_id, dest)
            rows = _message_rows(conn, src[0], wanted)
            if not rows:
                raise StoreError("no messages to copy")
            saved = _copy_rows(ctx, user, src, source, dst, dest, rows)
            expunged = None
            if move:
                moved = [r[0] for r in rows]
                modseq = _bump_modseq(conn, src[0])
                _delete_messages(conn, src[0], moved)
                expunged = MessagesExpunged(user, source, src[1], tuple(moved), modseq)
                ctx.record(expunged)
            return saved, expunged

        return (await self._writer.submit(op))[0]

    async def update_flags(
        self,
        user: str,
        mailbox: str,
        uids: Iterable[int],
        mode: FlagMode,
        flags: int = 0,
        keywords: Sequence[str] = (),
        recent_uids: frozenset[int] = frozenset(),
    ) -> FlagsChanged:
        """STORE FLAGS/+FLAGS/-FLAGS; only messages that really changed are reported.

        `recent_uids` are the messages the acting session holds `\\Recent` for;
        events report that flag as Dovecot does.
        """
        mailbox = normalize_mailbox_name(mailbox)
        flags &= F.STORED_FLAGS
        wanted = sorted(set(uids))
        kw = _dedupe_keywords(keywords)

        def op(ctx: WriteContext) -> FlagsChanged:
            conn = ctx.conn
            user_id = _user_id(conn, user)
            box = _selectable_mailbox(conn, user_id, mailbox)
            changes: list[FlagChange] = []
            modseq: int | None = None
            for uid, old_flags, old_kw_text in _flag_rows(conn, box[0], wanted):
                old_kw = tuple(old_kw_text.split()) if old_kw_text else ()
                new_flags, new_kw = _apply_flags(mode, old_flags, old_kw, flags, kw)
                if new_flags == old_flags and new_kw == old_kw:
                    continue
                if modseq is None:
                    modseq = _bump_modseq(conn, box[0])
                conn.execute(
                    "UPDATE messages SET flags = ?, keywords = ?, modseq = ?"
                    " WHERE mailbox_id = ? AND uid = ?",
                    (new_flags, " ".join(new_kw), modseq, box[0], uid),
                )
                recent = uid in recent_uids
                changes.append(
                    FlagChange(uid, old_flags, new_flags, old_kw, new_kw, modseq, recent)
                )
            if kw and mode != "remove":
                _remember_keywords(conn, box[0], kw)
            result = FlagsChanged(user, mailbox, box[1], tuple(changes))
            if changes:
                ctx.record(result)
            return result

        return (await self._writer.submit(op))[0]

    async def expunge(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> MessagesExpunged:
        """Remove `\\Deleted` messages (only those among `uids` when given: UID EXPUNGE)."""
        mailbox = normalize_mailbox_name(mailbox)
        wanted = None if uids is None else sorted(set(uids))

        def op(ctx: WriteContext) -> MessagesExpunged:
            conn = ctx.conn
            user_id = _user_id(conn, user)
            box = _selectable_mailbox(conn, user_id, mailbox)
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
            modseq = _bump_modseq(conn, box[0])
            _delete_messages(conn, box[0], deleted)
            result = MessagesExpunged(user, mailbox, box[1], tuple(deleted), modseq)
            ctx.record(result)
            return result

        return (await self._writer.submit(op))[0]

    async def record_rollback(self, user: str, mailbox: str) -> TransactionRolledBack:
        """Record that a mail transaction in `mailbox` began and was rolled back.

        IMAP APPEND calls it when a MULTIAPPEND fails after accepting a message:
        nothing was stored, but Dovecot's push transaction had begun, and ends
        with `end_txn(ctx, false)` (dovecot-observed.md item 5).
        """
        mailbox = normalize_mailbox_name(mailbox)

        def op(ctx: WriteContext) -> TransactionRolledBack:
            _opened_mailbox(ctx, user, _user_id(ctx.conn, user), mailbox)
            change = TransactionRolledBack(user, mailbox)
            ctx.record(change)
            return change

        return (await self._writer.submit(op))[0]

    async def take_recent(self, user: str, mailbox: str) -> list[int]:
        """Claim `\\Recent` for a session that SELECTs: returns the UIDs it now holds."""
        mailbox = normalize_mailbox_name(mailbox)

        def op(ctx: WriteContext) -> list[int]:
            user_id = _user_id(ctx.conn, user)
            box = _selectable_mailbox(ctx.conn, user_id, mailbox)
            uids = [
                r[0]
                for r in ctx.conn.execute(
                    "SELECT uid FROM messages WHERE mailbox_id = ? AND recent = 1 ORDER BY uid",
                    (box[0],),
                )
            ]
            if uids:
                ctx.conn.execute(
                    "UPDATE messages SET recent = 0 WHERE mailbox_id = ? AND recent = 1",
                    (box[0],),
                )
            return uids

        return (await self._writer.submit(op))[0]

    # --- reads -------------------------------------------------------------------------

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
            return [found[name] for name in sorted(found, key=_mailbox_sort_key)]

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
            row = _read_mailbox(conn, user, name)
            return MailboxInfo(name, row[1], row[2], row[3], row[4])

        return await self._read(read)

    async def status(self, user: str, mailbox: str) -> MailboxStatus:
        mailbox = normalize_mailbox_name(mailbox)

        def read(conn: sqlite3.Connection) -> MailboxStatus:
            return mailbox_status(conn, user, mailbox)

        return await self._read(read)

    async def messages(
        self, user: str, mailbox: str, uids: Iterable[int] | None = None
    ) -> list[MessageInfo]:
        """Metadata of the messages in `mailbox` (all, or those of `uids`), in UID order."""
        mailbox = normalize_mailbox_name(mailbox)
        wanted = None if uids is None else sorted(set(uids))

        def read(conn: sqlite3.Connection) -> list[MessageInfo]:
            box_id = _read_mailbox_id(conn, user, mailbox)
            sql = (
                "SELECT uid, flags, keywords, size, internal_date, internal_tz, modseq, recent"
                " FROM messages WHERE mailbox_id = ?"
            )
            rows = conn.execute(sql + " ORDER BY uid", (box_id,)).fetchall()
            if wanted is not None:
                allowed = set(wanted)
                rows = [r for r in rows if r[0] in allowed]
            return [
                MessageInfo(r[0], r[1], tuple(r[2].split()) if r[2] else (), r[3], r[4], r[5],
                            r[6], bool(r[7]))
                for r in rows
            ]

        return await self._read(read)

    async def claim_pushed_message_id(
        self, driver: str, user: str, message_id: str, owner: str, retention: float
    ) -> bool:
        """Whether `owner` may push `message_id` for `user` (see `sqlite_pushed_ids`)."""
        now = time.time()
        return await self.pushed_ids.claim(
            driver, user, message_id, owner, now=now, forget_before=now - retention
        )

    async def raw_message(self, user: str, mailbox: str, uid: int) -> bytes:
        mailbox = normalize_mailbox_name(mailbox)

        def read(conn: sqlite3.Connection) -> bytes:
            box_id = _read_mailbox_id(conn, user, mailbox)
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
            box_id = _read_mailbox_id(conn, user, mailbox)
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

    # --- METADATA (RFC 5464) -------------------------------------------------------

    async def get_metadata(self, user: str, mailbox: str | None, entry: str) -> str | None:
        """One entry's value; `mailbox=None` reads a server entry (Lua `metadata_get`)."""
        return await self.metadata.get(user, mailbox, entry)

    async def set_metadata(
        self, user: str, mailbox: str | None, entry: str, value: str | None
    ) -> None:
        """Set one entry (None unsets it); no change record, so no push event follows."""
        await self.metadata.set_many(user, mailbox, {entry: value})

    async def set_metadata_entries(
        self, user: str, mailbox: str | None, values: Mapping[str, str | None]
    ) -> None:
        """SETMETADATA: several entries at once, all or none (RFC 5464 §4.3)."""
        await self.metadata.set_many(user, mailbox, values)

    async def list_metadata(
        self, user: str, mailbox: str | None, prefix: str = ""
    ) -> dict[str, str]:
        """Entries equal to `prefix` or below it (`""`: all), by canonical name."""
        return await self.metadata.entries(user, mailbox, prefix)

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._in_reader, query)

    def _in_reader(self, query: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
        conn.execute("BEGIN")  # one snapshot for all statements of the query
        try:
            return query(conn)
        finally:
            conn.execute("COMMIT")


# --- SQL helpers (run on the writer or reader threads) ------------------------------

MailboxRow = tuple[int, int, int, int]  # id, uidvalidity, uidnext, highestmodseq


def mailbox_status(conn: sqlite3.Connection, user: str, mailbox: str) -> MailboxStatus:
    """STATUS of `mailbox` (a normalized name) as `conn` sees it, also inside a write."""
    box = _read_mailbox(conn, user, mailbox)
    counts = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(recent), 0),"
        " COALESCE(SUM(CASE WHEN flags & ? THEN 0 ELSE 1 END), 0),"
        " MIN(CASE WHEN flags & ? THEN NULL ELSE uid END)"
        " FROM messages WHERE mailbox_id = ?",
        (F.SEEN, F.SEEN, box[0]),
    ).fetchone()
    keywords = tuple(
        r[0]
        for r in conn.execute(
            "SELECT keyword FROM mailbox_keywords WHERE mailbox_id = ? ORDER BY keyword",
            (box[0],),
        )
    )
    return MailboxStatus(
        mailbox, counts[0], counts[1], counts[2], box[2], box[1], box[3], counts[3], keywords,
    )


def _user_id(conn: sqlite3.Connection, user: str) -> int:
    row = conn.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()
    if row is not None:
        return int(row[0])
    cur = conn.execute("INSERT INTO users (name) VALUES (?)", (user,))
    assert cur.lastrowid is not None
    return cur.lastrowid


def _mailbox_row(conn: sqlite3.Connection, user_id: int, name: str) -> MailboxRow | None:
    row = conn.execute(
        "SELECT id, uidvalidity, uidnext, highestmodseq FROM mailboxes"
        " WHERE user_id = ? AND name = ?",
        (user_id, name),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


def _opened_mailbox(ctx: WriteContext, user: str, user_id: int, name: str) -> MailboxRow:
    """A mailbox a message operation writes into; INBOX is created on this first use."""
    if name == INBOX and _mailbox_row(ctx.conn, user_id, INBOX) is None:
        _create_mailbox(ctx, user, user_id, INBOX, None)
    return _selectable_mailbox(ctx.conn, user_id, name)


def _selectable_mailbox(conn: sqlite3.Connection, user_id: int, name: str) -> MailboxRow:
    row = _mailbox_row(conn, user_id, name)
    if row is not None:
        return row
    if _children(conn, user_id, name):
        raise MailboxNotSelectableError(f"Mailbox isn't selectable: {name}")
    raise MailboxNotFoundError(name)


def _read_mailbox(
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


def _read_mailbox_id(conn: sqlite3.Connection, user: str, name: str) -> int:
    return _read_mailbox(conn, user, name)[0]


def _children(conn: sqlite3.Connection, user_id: int, name: str) -> list[tuple[int, str]]:
    prefix = name + "/"
    # substr comparison rather than LIKE: names may contain % and _.
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT id, name FROM mailboxes WHERE user_id = ? AND substr(name, 1, ?) = ?",
            (user_id, len(prefix), prefix),
        )
    ]


def _at_mailbox_limit(conn: sqlite3.Connection, user_id: int, limit: int) -> bool:
    """Whether the user has `limit` mailboxes already (never, for a limit of 0)."""
    if limit <= 0:
        return False
    row = conn.execute("SELECT COUNT(*) FROM mailboxes WHERE user_id = ?", (user_id,)).fetchone()
    return int(row[0]) >= limit


def _create_mailbox(
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


def _bump_modseq(conn: sqlite3.Connection, box_id: int) -> int:
    row = conn.execute(
        "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?"
        " RETURNING highestmodseq",
        (box_id,),
    ).fetchone()
    return int(row[0])


def _allocate_uids(conn: sqlite3.Connection, box_id: int, count: int) -> tuple[int, int]:
    """Reserve `count` UIDs; returns (first uid, new modseq). Never reuses a UID."""
    row = conn.execute(
        "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1"
        " WHERE id = ? RETURNING uidnext, highestmodseq",
        (count, box_id),
    ).fetchone()
    return int(row[0]) - count, int(row[1])


def _save(
    ctx: WriteContext,
    user: str,
    box: MailboxRow,
    mailbox: str,
    messages: Sequence[NewMessage],
    *,
    delivery: bool,
    body_id: int | None = None,
) -> MessagesSaved:
    conn = ctx.conn
    first_uid, modseq = _allocate_uids(conn, box[0], len(messages))
    now = int(time.time())
    saved: list[SavedMessage] = []
    for offset, message in enumerate(messages):
        uid = first_uid + offset
        keywords = _dedupe_keywords(message.keywords)
        flags = message.flags & F.STORED_FLAGS
        if body_id is None or offset > 0:
            cur = conn.execute("INSERT INTO bodies (refs, raw) VALUES (1, ?)", (message.raw,))
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
            _remember_keywords(conn, box[0], keywords)
        saved.append(
            SavedMessage(uid, flags, keywords, len(message.raw), internal_date, modseq,
                         message.raw)
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
    rows: list[tuple[int, int, int, int, int, str]],
) -> MessagesSaved:
    """Copy `rows` of `src` into `dst`, sharing bodies; flags and keywords travel along."""
    conn = ctx.conn
    first_uid, modseq = _allocate_uids(conn, dst[0], len(rows))
    saved: list[SavedMessage] = []
    for offset, (uid, body_id, size, internal_date, flags, kw_text) in enumerate(rows):
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
            _remember_keywords(conn, dst[0], keywords)
        raw = conn.execute("SELECT raw FROM bodies WHERE id = ?", (body_id,)).fetchone()[0]
        saved.append(
            SavedMessage(new_uid, flags, keywords, size, internal_date, modseq, bytes(raw), uid)
        )
    result = MessagesSaved(user, dest, dst[1], tuple(saved), False, source_mailbox=source)
    ctx.record(result)
    return result


def _message_rows(
    conn: sqlite3.Connection, box_id: int, uids: list[int]
) -> list[tuple[int, int, int, int, int, str]]:
    allowed = set(uids)
    return [
        (r[0], r[1], r[2], r[3], r[4], r[5])
        for r in conn.execute(
            "SELECT uid, body_id, size, internal_date, flags, keywords FROM messages"
            " WHERE mailbox_id = ? ORDER BY uid",
            (box_id,),
        )
        if r[0] in allowed
    ]


def _flag_rows(
    conn: sqlite3.Connection, box_id: int, uids: list[int]
) -> list[tuple[int, int, str]]:
    if not uids:
        return []
    if len(uids) <= 500:
        marks = ",".join("?" * len(uids))
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                f"SELECT uid, flags, keywords FROM messages WHERE mailbox_id = ?"
                f" AND uid IN ({marks}) ORDER BY uid",
                (box_id, *uids),
            )
        ]
    allowed = set(uids)
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT uid, flags, keywords FROM messages WHERE mailbox_id = ?"
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


def _delete_messages(conn: sqlite3.Connection, box_id: int, uids: Sequence[int]) -> None:
    for uid in uids:
        row = conn.execute(
            "DELETE FROM messages WHERE mailbox_id = ? AND uid = ? RETURNING body_id",
            (box_id, uid),
        ).fetchone()
        if row is None:
            continue
        conn.execute("UPDATE bodies SET refs = refs - 1 WHERE id = ?", (row[0],))
        conn.execute("DELETE FROM bodies WHERE id = ? AND refs <= 0", (row[0],))


def _move_all_messages(conn: sqlite3.Connection, from_id: int, to_id: int) -> None:
    """Renaming INBOX: its messages move to the new mailbox with fresh UIDs there."""
    uids = [
        r[0]
        for r in conn.execute(
            "SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (from_id,)
        )
    ]
    if not uids:
        return
    first_uid, modseq = _allocate_uids(conn, to_id, len(uids))
    for offset, uid in enumerate(uids):
        conn.execute(
            "UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ?"
            " WHERE mailbox_id = ? AND uid = ?",
            (to_id, first_uid + offset, modseq, from_id, uid),
        )
    _bump_modseq(conn, from_id)


def _remember_keywords(conn: sqlite3.Connection, box_id: int, keywords: Iterable[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO mailbox_keywords (mailbox_id, keyword_key, keyword)"
        " VALUES (?, ?, ?)",
        [(box_id, kw.lower(), kw) for kw in keywords],
    )


def _dedupe_keywords(keywords: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[str] = set()
    for kw in keywords:
        key = kw.lower()
        if kw and key not in seen:
            seen.add(key)
            out.append(kw)
    return tuple(out)


def _apply_flags(
    mode: FlagMode,
    old_flags: int,
    old_keywords: tuple[str, ...],
    flags: int,
    keywords: tuple[str, ...],
) -> tuple[int, tuple[str, ...]]:
    if mode == "replace":
        return flags, keywords
    old_lower = {k.lower() for k in old_keywords}
    if mode == "add":
        added = tuple(k for k in keywords if k.lower() not in old_lower)
        return old_flags | flags, old_keywords + added
    removed = {k.lower() for k in keywords}
    return old_flags & ~flags, tuple(k for k in old_keywords if k.lower() not in removed)


def _mailbox_sort_key(name: str) -> tuple[int, str]:
    return (0 if name == INBOX or name.startswith(INBOX + "/") else 1, name)
