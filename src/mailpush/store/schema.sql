-- mailpush store schema, version 7: the schema as it is now, every statement
-- idempotent. An older file is brought here by the ordered steps of
-- sqlite_schema.MIGRATIONS, run before these statements (version 2 added tables,
-- 3 outbox columns, 4 bodies.summary, 5 expunged_messages, 6 claim leases,
-- 7 mailbox counts). The counts' triggers and the unseen index are made after
-- these statements, from store/mailbox_counts.py.
-- Kept to portable SQL (no SQLite-only types) so that a PostgreSQL store can
-- share it; SQLite-specific pragmas live in the Python that opens the file.

CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS users (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    -- Last UIDVALIDITY handed out, so a re-created mailbox never reuses one.
    uidvalidity_last INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS mailboxes (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users(id),
    name           TEXT NOT NULL,
    uidvalidity    INTEGER NOT NULL,
    uidnext        INTEGER NOT NULL DEFAULT 1,
    highestmodseq  INTEGER NOT NULL DEFAULT 1,
    special_use    TEXT,
    -- Kept by triggers on messages (store/mailbox_counts.py).
    message_count  INTEGER NOT NULL DEFAULT 0,
    recent_count   INTEGER NOT NULL DEFAULT 0,
    unseen_count   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, name)
);

CREATE TABLE IF NOT EXISTS subscriptions (
    user_id INTEGER NOT NULL REFERENCES users(id),
    name    TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);

-- Raw messages, byte-exact. COPY shares a body; it is removed with its last message.
-- summary: the push events' header and body facts, computed once before the body is
-- written (store/message_summaries.py), so a COPY neither reads nor parses the body.
CREATE TABLE IF NOT EXISTS bodies (
    id      INTEGER PRIMARY KEY,
    refs    INTEGER NOT NULL,
    raw     BLOB NOT NULL,
    summary TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id),
    uid           INTEGER NOT NULL,
    body_id       INTEGER NOT NULL REFERENCES bodies(id),
    size          INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    internal_tz   INTEGER NOT NULL DEFAULT 0,
    flags         INTEGER NOT NULL DEFAULT 0,
    -- Space-separated keyword atoms in the order they were set.
    keywords      TEXT NOT NULL DEFAULT '',
    modseq        INTEGER NOT NULL,
    recent        INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (mailbox_id, uid)
);
-- Expunged UIDs with the modseq of their expunge: QRESYNC's VANISHED (EARLIER) and a
-- session resynchronising after another process's change (store changes_since).
-- Removed with their mailbox. (messages has no modseq index on purpose: STORE 1:* would
-- move every row's entry, about a fifth more work; changes_since reads the mailbox's
-- rows by primary key instead, under a millisecond per 10,000 messages.)
CREATE TABLE IF NOT EXISTS expunged_messages (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX IF NOT EXISTS expunged_messages_modseq ON expunged_messages (mailbox_id, modseq);

-- Keywords ever used in a mailbox: IMAP FLAGS/PERMANENTFLAGS list them.
-- Keywords compare case-insensitively; the first spelling used is kept.
CREATE TABLE IF NOT EXISTS mailbox_keywords (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id),
    keyword_key TEXT NOT NULL,
    keyword     TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, keyword_key)
);

-- RFC 5464 METADATA. Entry names are stored lower case (they compare
-- case-insensitively). Server entries belong to the user; mailbox entries to the
-- mailbox row, so they follow renames and go with the mailbox.
CREATE TABLE IF NOT EXISTS server_metadata (
    user_id INTEGER NOT NULL REFERENCES users(id),
    entry   TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (user_id, entry)
);

CREATE TABLE IF NOT EXISTS mailbox_metadata (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    entry      TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, entry)
);

-- Transactional outbox: push transactions written in the same database
-- transaction as the mail change they describe.
-- kind: transaction (payload: a push transaction as JSON), or http_request (a Lua
-- script's request that failed, kept to be sent again: the lua option http_resend).
CREATE TABLE IF NOT EXISTS push_outbox (
    id        INTEGER PRIMARY KEY,
    txn_id    TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL,
    created   REAL NOT NULL,
    payload   BLOB NOT NULL,
    kind      TEXT NOT NULL DEFAULT 'transaction'
);
CREATE INDEX IF NOT EXISTS push_outbox_user ON push_outbox (user_name, id);

-- Delivery state of each outbox transaction, per driver instance.
-- state: pending (due at next_attempt), inflight (claimed by the dispatcher),
-- done (kept for mailpush_push_retention, then purged), dead (gave up; replayable).
-- kind: as push_outbox.kind (copied: the dispatcher claims by it).
-- started: 1 while a driver runs it; orphaned: how often the process died meanwhile
-- (counted at start-up; at 2 it is a dead letter, as it may be what kills the server).
-- claimed_by, claimed_until: an inflight row's dispatcher and the end of its lease,
-- renewed while it works; past it, any dispatcher takes the row over
-- (store/outbox_claimants.py).
CREATE TABLE IF NOT EXISTS push_deliveries (
    outbox_id     INTEGER NOT NULL REFERENCES push_outbox(id),
    driver        TEXT NOT NULL,
    user_name     TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    first_attempt REAL,
    next_attempt  REAL NOT NULL,
    finished      REAL,
    last_error    TEXT,
    kind          TEXT NOT NULL DEFAULT 'transaction',
    started       INTEGER NOT NULL DEFAULT 0,
    orphaned      INTEGER NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claimed_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (outbox_id, driver)
);
CREATE INDEX IF NOT EXISTS push_deliveries_state ON push_deliveries (state, outbox_id);
-- Claiming (sqlite_outbox.claim_due): a driver's pending rows in commit order, and its
-- due ones, each found without reading other drivers' or not yet due rows, so that a
-- large backlog (an endpoint down for hours) does not slow every claiming round.
-- An ordered driver's rows are claimed per user (each user's oldest first, a user
-- waiting for a retry skipped with a seek), hence the user before outbox_id.
DROP INDEX IF EXISTS push_deliveries_order;
CREATE INDEX IF NOT EXISTS push_deliveries_user
    ON push_deliveries (state, kind, driver, user_name, outbox_id, next_attempt);
CREATE INDEX IF NOT EXISTS push_deliveries_due
    ON push_deliveries (state, kind, driver, next_attempt);

-- Message-IDs a driver has pushed for a user (Chronos: one push per Message-ID even
-- when Sieve files copies into several folders). owner is the push transaction and
-- UID that claimed it, so its own retries still pass. Forgotten after the driver's
-- retention (sqlite_pushed_ids.py).
CREATE TABLE IF NOT EXISTS push_message_ids (
    driver     TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    owner      TEXT NOT NULL,
    claimed    REAL NOT NULL,
    PRIMARY KEY (driver, user_name, message_id)
);
CREATE INDEX IF NOT EXISTS push_message_ids_claimed ON push_message_ids (claimed);
