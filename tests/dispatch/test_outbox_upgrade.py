"""An outbox written by schema 2 (before crash counting and journaled requests) opens and works."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from mailpush.store import SqliteStore
from mailpush.store.sqlite_store import SCHEMA_VERSION

SCHEMA_2_OUTBOX = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (2);
CREATE TABLE push_outbox (
    id INTEGER PRIMARY KEY, txn_id TEXT NOT NULL UNIQUE, user_name TEXT NOT NULL,
    created REAL NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE push_deliveries (
    outbox_id INTEGER NOT NULL REFERENCES push_outbox(id), driver TEXT NOT NULL,
    user_name TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt REAL, next_attempt REAL NOT NULL, finished REAL, last_error TEXT,
    PRIMARY KEY (outbox_id, driver)
);
INSERT INTO push_outbox VALUES (1, 'txn-1', 'alice', 0, x'7b7d');
INSERT INTO push_deliveries (outbox_id, driver, user_name, state, next_attempt)
    VALUES (1, 'webhook', 'alice', 'inflight', 0);
"""


async def test_a_schema_2_outbox_gains_the_new_columns_and_keeps_its_deliveries(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mail.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_2_OUTBOX)
    store = SqliteStore(path, fsync="never")
    store.open()
    try:
        recovery = await store.outbox.reset_inflight()
        assert (recovery.pending_again, recovery.buried) == (1, ())
        (claim,) = await store.outbox.claim_due(time.time(), 10)
        assert (claim.txn_id, claim.kind) == ("txn-1", "transaction")
        await store.outbox.mark_started([claim])
    finally:
        await asyncio.to_thread(store.close)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT started, orphaned FROM push_deliveries").fetchone() == (1, 0)
