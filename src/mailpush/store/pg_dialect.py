"""The store's shared SQL, spoken to PostgreSQL: a connection that reads SQLite's spellings.

The store's operations (`sqlite_mailboxes`, `sqlite_messages`,
`sqlite_metadata`, `sqlite_outbox`, `sqlite_pushed_ids`) are plain functions
of a DB-API connection, and their SQL is nearly portable; running the very
same operations on PostgreSQL keeps one implementation of each behaviour
(UID allocation, flag updates, outbox claiming) instead of two that drift.
`PgConnection` gives them the `execute` / `executemany` / `lastrowid`
surface they use, over a psycopg connection, and `translate` rewrites the
few SQLite spellings they contain:

- `?` and `:name` placeholders become psycopg's `%s` and `%(name)s`;
- `INSERT OR IGNORE` becomes `INSERT … ON CONFLICT DO NOTHING`, and
  `INSERT OR REPLACE` an upsert on the table's key (`_KEYS`);
- `x & ?` used as a condition (SQLite reads any integer as a truth value)
  becomes `(x & ?) <> 0`;
- `SUM(condition)` (SQLite counts true as 1) becomes `SUM(CASE WHEN … END)`;
- `INDEXED BY name` (a planner hint) is dropped: PostgreSQL's planner
  picks the index by itself;
- an `INSERT` into a table with an `id` key gets `RETURNING id`, read back
  as `lastrowid`.

Anything SQLite-only that is not listed (a PRAGMA, `sqlite_master`, a
REPLACE into a table whose key is not in `_KEYS`) raises
`UnportableSqlError` rather than sending PostgreSQL something it would read
differently. Writing the shared SQL in the portable forms at the source
(`ON CONFLICT …`, `<> 0`, `RETURNING id`: SQLite ≥ 3.35 reads them
all) would shrink this module to the placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from ..errors import StoreError

__all__ = ["PgConnection", "PgCursor", "UnportableSqlError", "translate"]

#: Tables whose rows are numbered by an `id` identity column (see pg_schema.sql).
_ID_TABLES = ("users", "bodies", "push_outbox", "mailboxes")

#: Primary keys of the tables the shared SQL writes with INSERT OR REPLACE.
_KEYS = {"expunged_messages": ("mailbox_id", "uid")}

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?|(?<![:\w]):([A-Za-z_]\w*)|%")
_BIT_TEST = re.compile(r"\b([\w.]+) & \?(?=\s+(?:THEN|ORDER|AND|OR|LIMIT)\b|\s*\)|\s*$)")
_SUM_CONDITION = re.compile(r"\bSUM\(([^()]*?(?:=|<>|<|>)[^()]*)\)", re.IGNORECASE)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO\b", re.IGNORECASE)
_INSERT_INTO_ID_TABLE = re.compile(
    r"^\s*INSERT INTO (" + "|".join(_ID_TABLES) + r")\b", re.IGNORECASE
)
_INSERT_OR_REPLACE = re.compile(
    r"^\s*INSERT OR REPLACE INTO (\w+) \(([^)]*)\)", re.IGNORECASE
)
_INDEXED_BY = re.compile(r"\s+INDEXED BY \w+", re.IGNORECASE)
_SQLITE_ONLY = re.compile(r"\bPRAGMA\b|\bsqlite_master\b", re.IGNORECASE)


class UnportableSqlError(StoreError):
    """SQL that only SQLite understands reached the PostgreSQL store (a programming error)."""


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """`sql` as psycopg takes it, and whether it now ends in `RETURNING id` (lastrowid)."""
    if _SQLITE_ONLY.search(sql):
        raise UnportableSqlError(f"SQLite-only SQL reached the PostgreSQL store: {sql[:120]!r}")
    ignore = bool(_INSERT_OR_IGNORE.match(sql))
    if ignore:
        sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql, count=1)
    upsert = ""
    replace = _INSERT_OR_REPLACE.match(sql)
    if replace is not None:
        upsert = _upsert_clause(replace.group(1), replace.group(2), sql)
        sql = sql.replace("OR REPLACE ", "", 1)
    sql = _INDEXED_BY.sub("", sql)
    sql = _BIT_TEST.sub(r"(\1 & ?) <> 0", sql)
    sql = _SUM_CONDITION.sub(r"SUM(CASE WHEN \1 THEN 1 ELSE 0 END)", sql)
    sql = _PLACEHOLDER.sub(_placeholder, sql)
    if ignore:
        sql += " ON CONFLICT DO NOTHING"
    sql += upsert
    returns_id = bool(_INSERT_INTO_ID_TABLE.match(sql)) and "RETURNING" not in sql.upper()
    if returns_id:
        sql += " RETURNING id"
    return sql, returns_id


def _upsert_clause(table: str, columns: str, sql: str) -> str:
    key = _KEYS.get(table)
    if key is None:
        raise UnportableSqlError(
            f"INSERT OR REPLACE into {table}, whose key pg_dialect does not know: {sql[:120]!r}"
        )
    rest = [c.strip() for c in columns.split(",") if c.strip() not in key]
    if not rest:
        return f" ON CONFLICT ({', '.join(key)}) DO NOTHING"
    updates = ", ".join(f"{c} = excluded.{c}" for c in rest)
    return f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


def _placeholder(match: re.Match[str]) -> str:
    text = match.group(0)
    if text == "?":
        return "%s"
    if text == "%":
        return "%%"
    if match.group(1) is not None:
        return f"%({match.group(1)})s"
    return text  # a string literal, left as it is


class PgCursor:
    """The part of `sqlite3.Cursor` the store's operations read."""

    __slots__ = ("_cursor", "lastrowid", "rowcount")

    def __init__(self, cursor: psycopg.Cursor[Any], lastrowid: int | None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class PgConnection:
    """A psycopg connection with the `sqlite3.Connection` calls the operations make."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> PgCursor:
        text, returns_id = translate(sql)
        cursor = self.raw.cursor()
        cursor.execute(text, params if params else None)
        lastrowid = None
        if returns_id:
            row = cursor.fetchone()
            lastrowid = None if row is None else int(row[0])
        return PgCursor(cursor, lastrowid)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> PgCursor:
        text, returns_id = translate(sql)
        if returns_id:
            text = text[: -len(" RETURNING id")]
        rows = list(params)
        cursor = self.raw.cursor()
        if rows:
            cursor.executemany(text, rows)
        return PgCursor(cursor, None)
