"""The PostgreSQL store after the server closed its connections: the next call still works.

A restart, a failover to the standby or an idle-session timeout closes every
pooled connection without the store noticing; the pool finds out only when a
connection is next used. A call whose connection turns out dead at its first
statement (nothing sent, nothing changed) runs again on a new connection,
instead of failing once per pooled connection (docs/cluster.md#what-happens-when).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from mailpush.store import DeliveryTarget
from mailpush.store.pg_store import PostgresStore
from tests.support.postgres import PostgresServer, database_name, postgres_server

__all__ = ["postgres_server"]  # the session fixture, imported for pytest to find

MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
async def store(postgres_server: PostgresServer) -> AsyncIterator[PostgresStore]:
    async with postgres_server.opened_store() as opened:
        yield opened


def close_connections_to(server: PostgresServer, uri: str) -> int:
    """What a restart does to the store's connections: the server ends them all."""
    name = database_name(uri)
    with psycopg.connect(server.uri(), autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s) AS t", (name,),
        ).fetchone()
        deadline = time.monotonic() + 10
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the backends did not end"
            time.sleep(0.01)
    assert ended is not None
    return int(ended[0])


async def test_a_write_after_the_server_closed_the_connections_succeeds(
    store: PostgresStore, postgres_server: PostgresServer
) -> None:
    await store.deliver("alice", MESSAGE, [DeliveryTarget("INBOX")])
    assert close_connections_to(postgres_server, store.uri) >= 1

    saved = await store.deliver("alice", MESSAGE, [DeliveryTarget("INBOX")])

    assert [m.uid for m in saved[0].messages] == [2]


async def test_a_read_after_the_server_closed_the_connections_succeeds(
    store: PostgresStore, postgres_server: PostgresServer
) -> None:
    await store.deliver("alice", MESSAGE, [DeliveryTarget("INBOX")])
    assert close_connections_to(postgres_server, store.uri) >= 1

    status = await store.status("alice", "INBOX")

    assert status.messages == 1
