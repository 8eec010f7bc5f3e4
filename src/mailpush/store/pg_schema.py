"""The PostgreSQL store's schema: versioned migrations, run at open.

Unlike `sqlite_schema` (a current `schema.sql` run after the steps), every
version here is one step, applied in order inside one transaction:
`pg_schema.sql` is version 1 (the SQLite schema of version 4 in PostgreSQL
types), and each later step alters what the one before made. A database is
at one version or the next, never in between. Several nodes may open the
same database at once: a transaction-scoped advisory lock makes one of them
migrate while the others wait and then find it done. A database written by
a newer mailpush is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from ..errors import StoreError
from .mailbox_counts import BACKFILL, COUNT_COLUMNS, PG_TRIGGERS, UNSEEN_INDEX

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PgMigration", "PgSchemaUpgrade", "migrate_pg_schema"]

#: pg_advisory_xact_lock key held while migrating ("mailpush" in ASCII, as a bigint).
MIGRATION_LOCK = 0x6D61696C70757368


@dataclass(frozen=True, slots=True)
class PgMigration:
    """One step from the version before `version` to `version`."""

    version: int
    what: str
    step: Callable[[psycopg.Connection[Any]], None]


@dataclass(frozen=True, slots=True)
class PgSchemaUpgrade:
    """What opening a database did to its schema."""

    #: The version the database had; None for a database without mailpush tables.
    before: int | None
    after: int
    applied: tuple[PgMigration, ...]


def _create_tables(conn: psycopg.Connection[Any]) -> None:
    """Version 1: every table of the store (`pg_schema.sql`)."""
    text = resources.files("mailpush.store").joinpath("pg_schema.sql").read_text()
    for statement in text.split(";\n"):
        body = "\n".join(
            line for line in statement.splitlines() if not line.lstrip().startswith("--")
        ).strip()
        if body:
            conn.execute(body)


def _expunged_messages(conn: psycopg.Connection[Any]) -> None:
    """Version 2 (SQLite's 5): expunged UIDs with their modseq, and the modseq indexes that
    CONDSTORE/QRESYNC's "what changed since" reads through (`changes_since`)."""
    conn.execute("CREATE INDEX messages_modseq ON messages (mailbox_id, modseq)")
    conn.execute(
        "CREATE TABLE expunged_messages ("
        " mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),"
        " uid BIGINT NOT NULL, modseq BIGINT NOT NULL, PRIMARY KEY (mailbox_id, uid))"
    )
    conn.execute(
        "CREATE INDEX expunged_messages_modseq ON expunged_messages (mailbox_id, modseq)"
    )


def _claim_leases(conn: psycopg.Connection[Any]) -> None:
    """Version 3 (SQLite's 6): an in-flight delivery's dispatcher and the end of its lease,
    so that several nodes' dispatchers share the outbox and take over a dead one's claims
    (store/outbox_claimants.py). Rows claimed before have no holder: the next dispatcher
    to start takes them over."""
    conn.execute(
        "ALTER TABLE push_deliveries ADD COLUMN claimed_by TEXT COLLATE \"C\","
        " ADD COLUMN claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0"
    )


def _mailbox_counts(conn: psycopg.Connection[Any]) -> None:
    """Version 4 (SQLite's 7): each mailbox's counts on its row, counted once here and kept
    from now on by triggers, and the unseen messages' index (store/mailbox_counts.py)."""
    conn.execute(
        "ALTER TABLE mailboxes "
        + ", ".join(f"ADD COLUMN {name} {declaration}" for name, declaration in COUNT_COLUMNS)
    )
    conn.execute(BACKFILL)
    for statement in (UNSEEN_INDEX, *PG_TRIGGERS):
        conn.execute(statement)


MIGRATIONS: tuple[PgMigration, ...] = (
    PgMigration(1, "mailboxes, messages, METADATA and the push outbox", _create_tables),
    PgMigration(2, "expunged UIDs with their modseq (CONDSTORE/QRESYNC)", _expunged_messages),
    PgMigration(3, "outbox claims held under a lease (several dispatchers)", _claim_leases),
    PgMigration(4, "message, recent and unseen counts kept on each mailbox", _mailbox_counts),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate_pg_schema(conn: psycopg.Connection[Any], where: str) -> PgSchemaUpgrade:
    """Run the steps the database lacks, in one transaction (`where`: the masked URI).

    `conn` must be in autocommit mode; the transaction is this function's own.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        before = _recorded_version(conn)
        if before is not None and before > SCHEMA_VERSION:
            raise StoreError(
                f"{where} was written by a newer mailpush (schema {before}, this one knows"
                f" up to {SCHEMA_VERSION}); upgrade mailpush to open it"
            )
        applied = tuple(m for m in MIGRATIONS if before is None or m.version > before)
        for migration in applied:
            migration.step(conn)
        if before is None:
            conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        elif before < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
    return PgSchemaUpgrade(before, SCHEMA_VERSION, applied)


def _recorded_version(conn: psycopg.Connection[Any]) -> int | None:
    exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()
    if exists is None or exists[0] is None:
        return None
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return None if row is None else int(row[0])
