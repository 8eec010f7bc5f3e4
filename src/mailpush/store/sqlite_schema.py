"""The SQLite store's schema: created for a new file, migrated step by step for an old one.

`schema.sql` is the schema as it is now, every statement idempotent. An
older file is brought up to it by `MIGRATIONS`, an ordered list of steps,
each run once, in order, for a file whose recorded version is below it —
before `schema.sql` runs, since its indexes may use what a step adds. The
whole upgrade is one transaction: a file is at one version or the next,
never in between. `SqliteStore.open` migrates; `mailpush store migrate`
does only that (for a large store, the version-4 step reads every body once).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import StoreError
from ..mime import summarize
from .mailbox_counts import BACKFILL, COUNT_COLUMNS, SQLITE_TRIGGERS, UNSEEN_INDEX
from .message_summaries import summary_to_text
from .sqlite_outbox import add_lease_columns, add_outbox_columns

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "SchemaUpgrade", "migrate_schema"]

#: Bodies whose summary one migration query computes at a time (bounds the memory).
_SUMMARY_BATCH = 200


@dataclass(frozen=True, slots=True)
class Migration:
    """One step from the version before `version` to `version`."""

    version: int
    what: str
    step: Callable[[sqlite3.Connection], None]


@dataclass(frozen=True, slots=True)
class SchemaUpgrade:
    """What opening a file did to its schema."""

    #: The version the file had; None for a file that had no schema yet.
    before: int | None
    after: int
    applied: tuple[Migration, ...]


def _tables_only(conn: sqlite3.Connection) -> None:
    """Version 2 only added tables (METADATA, push_message_ids): `schema.sql`, run after
    every step, creates them with CREATE TABLE IF NOT EXISTS."""


def _add_body_summaries(conn: sqlite3.Connection) -> None:
    """Version 4: each body's push summary, computed once (store/message_summaries.py)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(bodies)")}
    if not present:
        return  # no bodies table: schema.sql creates it, with the column
    if "summary" not in present:
        conn.execute("ALTER TABLE bodies ADD COLUMN summary TEXT NOT NULL DEFAULT ''")
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, raw FROM bodies WHERE id > ? AND summary = '' ORDER BY id LIMIT ?",
            (last, _SUMMARY_BATCH),
        ).fetchall()
        if not rows:
            return
        conn.executemany(
            "UPDATE bodies SET summary = ? WHERE id = ?",
            [(summary_to_text(summarize(bytes(raw))), body_id) for body_id, raw in rows],
        )
        last = rows[-1][0]


def _expunged_messages(conn: sqlite3.Connection) -> None:
    """Version 5: a table and its index (`schema.sql` creates them). UIDs expunged before
    the upgrade are not known: a QRESYNC client resynchronising from a modseq older than the
    upgrade gets no VANISHED for them, as from a Dovecot whose index lost them."""


def _add_mailbox_counts(conn: sqlite3.Connection) -> None:
    """Version 7: each mailbox's counts on its row (store/mailbox_counts.py), counted once
    here; the triggers that keep them from now on are made after `schema.sql`."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(mailboxes)")}
    if not present:
        return  # a new file: schema.sql creates the table with them
    for column, declaration in COUNT_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE mailboxes ADD COLUMN {column} {declaration}")
    conn.execute(BACKFILL)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "METADATA and pushed Message-ID tables", _tables_only),
    Migration(3, "outbox row kinds and crash counts", add_outbox_columns),
    Migration(4, "message summaries stored with the bodies", _add_body_summaries),
    Migration(5, "expunged UIDs with their modseq (CONDSTORE/QRESYNC)", _expunged_messages),
    Migration(6, "outbox claims held under a lease (several dispatchers)", add_lease_columns),
    Migration(7, "message, recent and unseen counts kept on each mailbox", _add_mailbox_counts),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate_schema(conn: sqlite3.Connection, path: Path) -> SchemaUpgrade:
    """Create the schema in a new file, or run the steps an older one lacks; one transaction.

    Several processes may open a new file at once (`mailpush deliver`): BEGIN
    IMMEDIATE makes one create or migrate it while the others wait, and then
    find it done.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = _recorded_version(conn)
        if before is not None and before > SCHEMA_VERSION:
            raise StoreError(
                f"{path} was written by a newer mailpush (schema {before}, this one knows"
                f" up to {SCHEMA_VERSION}); upgrade mailpush to open it"
            )
        applied = tuple(m for m in MIGRATIONS if before is not None and m.version > before)
        for migration in applied:
            migration.step(conn)
        _run_schema_sql(conn)
        if before is None:
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif before < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    return SchemaUpgrade(before, SCHEMA_VERSION, applied)


def _recorded_version(conn: sqlite3.Connection) -> int | None:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return None if row is None else int(row[0])


def _run_schema_sql(conn: sqlite3.Connection) -> None:
    schema = resources.files("mailpush.store").joinpath("schema.sql").read_text()
    for statement in schema.split(";\n"):
        if statement.strip():
            conn.execute(statement)
    # Trigger bodies hold semicolons of their own: not in the file split above.
    for statement in (UNSEEN_INDEX, *SQLITE_TRIGGERS):
        conn.execute(statement)
