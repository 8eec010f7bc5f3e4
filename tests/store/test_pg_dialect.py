"""How the store's shared SQL is rewritten for PostgreSQL (store/pg_dialect.py)."""

from __future__ import annotations

import pytest

from mailpush.store.pg_dialect import UnportableSqlError, translate


@pytest.mark.parametrize(
    ("sqlite", "postgresql"),
    [
        ("SELECT id FROM users WHERE name = ?", "SELECT id FROM users WHERE name = %s"),
        ("SELECT 1 WHERE a = :driver AND b > :after",
         "SELECT 1 WHERE a = %(driver)s AND b > %(after)s"),
        ("SELECT '?', 'a:b', x::text FROM t WHERE y = ?",
         "SELECT '?', 'a:b', x::text FROM t WHERE y = %s"),
        ("SELECT 100 % 7", "SELECT 100 %% 7"),
        ("INSERT OR IGNORE INTO subscriptions (user_id, name) VALUES (?, ?)",
         "INSERT INTO subscriptions (user_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING"),
        ("INSERT OR REPLACE INTO expunged_messages (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
         "INSERT INTO expunged_messages (mailbox_id, uid, modseq) VALUES (%s, %s, %s)"
         " ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq"),
        ("SELECT uid FROM messages WHERE mailbox_id = ? AND flags & ? ORDER BY uid",
         "SELECT uid FROM messages WHERE mailbox_id = %s AND (flags & %s) <> 0 ORDER BY uid"),
        ("SELECT SUM(CASE WHEN flags & ? THEN 0 ELSE 1 END)",
         "SELECT SUM(CASE WHEN (flags & %s) <> 0 THEN 0 ELSE 1 END)"),
        ("SELECT SUM(d.state = 'dead') FROM d",
         "SELECT SUM(CASE WHEN d.state = 'dead' THEN 1 ELSE 0 END) FROM d"),
        ("SELECT uid FROM messages INDEXED BY messages_modseq WHERE modseq > ?",
         "SELECT uid FROM messages WHERE modseq > %s"),
    ],
)
def test_sqlite_spellings_become_postgresql_ones(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == (postgresql, False)


def test_an_insert_into_a_numbered_table_returns_its_id() -> None:
    assert translate("INSERT INTO users (name) VALUES (?)") == (
        "INSERT INTO users (name) VALUES (%s) RETURNING id", True
    )


def test_arithmetic_on_flags_is_left_alone() -> None:
    sql = "UPDATE messages SET flags = flags & ? WHERE uid = ?"
    assert translate(sql) == ("UPDATE messages SET flags = flags & %s WHERE uid = %s", False)


@pytest.mark.parametrize(
    "sql",
    ["PRAGMA table_info(bodies)", "SELECT name FROM sqlite_master",
     "INSERT OR REPLACE INTO mailboxes (id, name) VALUES (?, ?)"],
)
def test_sqlite_only_sql_is_refused_rather_than_sent(sql: str) -> None:
    with pytest.raises(UnportableSqlError):
        translate(sql)
