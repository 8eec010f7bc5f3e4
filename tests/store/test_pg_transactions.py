"""PostgreSQL write transactions are run again on a serialization failure.

Several writers on one mailbox make SERIALIZABLE transactions fail now and
then, and pg_transactions runs them again from the start (its docstring says
why that makes the shared SQLite operations correct on PostgreSQL). Here the
failure comes in the middle of an `executemany`, which psycopg runs in
pipeline mode: the operation is run again, and with the server's log setup
(logging_config.quiet_library_loggers) nothing is logged as a warning for a
conflict that was resolved: psycopg's own notice of the aborted pipeline
came about once in four such failures.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import psycopg
import pytest

from mailpush.logging_config import quiet_library_loggers
from mailpush.store.pg_store import PostgresStore
from mailpush.store.sqlite_writer import WriteContext
from tests.support.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the session fixture, imported for pytest to find

#: Fails as a serialization conflict would, while the table says so.
CONFLICT = """
CREATE TABLE conflicts (left_to_raise int);
INSERT INTO conflicts VALUES (1);
CREATE FUNCTION conflict(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT left_to_raise FROM conflicts) > 0 THEN
    RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
  END IF;
  RETURN n;
END $$;
"""


@pytest.fixture
async def store(postgres_server: PostgresServer) -> AsyncIterator[PostgresStore]:
    async with postgres_server.opened_store(CONFLICT) as opened:
        yield opened


async def test_a_serialization_failure_is_run_again_without_a_warning(
    store: PostgresStore, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_library_loggers()  # as the server's log setup does
    caplog.set_level(logging.DEBUG)
    for _ in range(12):  # psycopg's notice came in about one run of four
        await run_one_conflict(store)

    assert store._txn.retried == 12
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def run_one_conflict(store: PostgresStore) -> None:
    with psycopg.connect(store.uri, autocommit=True) as admin:
        admin.execute("UPDATE conflicts SET left_to_raise = 1")
    attempts: list[int] = []

    def operation(ctx: WriteContext) -> int:
        attempts.append(len(attempts) + 1)
        ctx.conn.execute("SELECT left_to_raise FROM conflicts")  # the snapshot, taken here
        if len(attempts) == 1:  # lifted for the next attempt; this one still sees it
            with psycopg.connect(store.uri, autocommit=True) as other:
                other.execute("UPDATE conflicts SET left_to_raise = 0")
        ctx.conn.executemany("SELECT conflict(?)", [(1,), (2,)])
        return len(attempts)

    result, _ = await store._txn.submit(operation)

    assert result == 2
