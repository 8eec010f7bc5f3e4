"""The first write for a user creates its row; every later write finds the same one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from importlib import resources

import pytest

from mailpush.store.sqlite_users import user_row_id


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(resources.files("mailpush.store").joinpath("schema.sql").read_text())
    yield conn
    conn.close()


def test_a_users_first_write_creates_its_row(conn: sqlite3.Connection) -> None:
    alice = user_row_id(conn, "alice")
    assert conn.execute("SELECT name FROM users WHERE id = ?", (alice,)).fetchall() == [("alice",)]


def test_later_writes_get_the_same_row_and_other_users_their_own(
    conn: sqlite3.Connection,
) -> None:
    alice = user_row_id(conn, "alice")
    bob = user_row_id(conn, "bob")
    assert user_row_id(conn, "alice") == alice
    assert bob != alice
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone() == (2,)
