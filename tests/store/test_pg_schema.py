"""The PostgreSQL store's migrations: run at open, once, and refused for a newer database."""

from __future__ import annotations

import psycopg
import pytest

from mailpush.errors import StoreError
from mailpush.store.pg_schema import MIGRATIONS, SCHEMA_VERSION
from mailpush.store.pg_store import PostgresStore
from tests.support.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the session fixture, imported for pytest to find


def test_a_new_database_gets_every_migration_and_records_the_version(
    postgres_server: PostgresServer,
) -> None:
    store = PostgresStore(postgres_server.create_database())
    first = store.migrate()
    again = store.migrate()
    assert (first.before, first.after, first.applied) == (None, SCHEMA_VERSION, MIGRATIONS)
    assert (again.before, again.applied) == (SCHEMA_VERSION, ())


def test_an_older_database_gets_only_the_steps_it_lacks(postgres_server: PostgresServer) -> None:
    uri = postgres_server.create_database()
    with psycopg.connect(uri, autocommit=True) as conn:
        MIGRATIONS[0].step(conn)
        conn.execute("INSERT INTO schema_version VALUES (1)")
    upgrade = PostgresStore(uri).migrate()
    assert [m.version for m in upgrade.applied] == [m.version for m in MIGRATIONS[1:]]
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)


def test_a_database_from_a_newer_mailpush_is_refused(postgres_server: PostgresServer) -> None:
    uri = postgres_server.create_database()
    PostgresStore(uri).migrate()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(StoreError, match="newer mailpush .schema 999"):
        PostgresStore(uri).migrate()


def test_connection_errors_never_show_the_password(postgres_server: PostgresServer) -> None:
    uri = f"postgresql://mailpush:s3cret@/nosuchdb?host={postgres_server.socket_dir}&port=5432"
    with pytest.raises(StoreError) as caught:
        PostgresStore(uri).open()
    assert "s3cret" not in str(caught.value)
    assert "nosuchdb" in str(caught.value)
