"""The PostgreSQL mail store: several mailpush nodes sharing one database.

`PostgresStore` meets `MailStore` with the very operations `SqliteStore`
runs (`sqlite_mailboxes`, `sqlite_messages`, `sqlite_metadata`,
`sqlite_pushed_ids`, and `PostgresOutbox` over `sqlite_outbox`), spoken to
PostgreSQL by `pg_dialect` and run as serializable transactions by
`pg_transactions`; so UIDs, modseqs, change records and outbox rows come out
the same on either backend, and one test module (tests/store/
test_store_contract.py) checks both. This module holds the lifecycle: the
connection pool, the migrations at open (`pg_schema`), the worker threads.
See docs/postgresql.md for the driver choice (psycopg 3 and its pool).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ..errors import StoreError
from ..logs.text import mask_secrets
from .change_hub import ChangeHub
from .outbox import OutboxRecorder
from .pg_schema import PgSchemaUpgrade, migrate_pg_schema
from .pg_transactions import PgTransactions, pg_error
from .sqlite_mailbox_rows import mailbox_status
from .sqlite_mailboxes import SqliteMailboxes
from .sqlite_messages import SqliteMessages
from .sqlite_metadata import SqliteMetadata
from .sqlite_outbox import SqliteOutbox
from .sqlite_pushed_ids import SqlitePushedMessageIds
from .store_operations import StoreOperations

__all__ = ["PostgresOutbox", "PostgresStore"]

#: Threads (each with a pooled connection) running write transactions at once.
WRITER_THREADS = 4
READER_THREADS = 2
PARSER_THREADS = 2
#: Seconds to wait for PostgreSQL when opening the store.
CONNECT_TIMEOUT = 10


class PostgresOutbox(SqliteOutbox):
    """The push outbox rows in PostgreSQL, with `SqliteOutbox`'s claiming contract.

    Claims run in serializable transactions (`pg_transactions`): two
    dispatchers (two nodes) claiming at once cannot both take a row — the
    later one is retried and then sees the row in flight — and per-user
    commit order holds as with one dispatcher, because a claim reads each
    user's oldest pending row in the same transaction that marks it.
    """


class PostgresStore(StoreOperations):
    """Mail, mailboxes and the push outbox of every user, in one PostgreSQL database."""

    def __init__(
        self,
        uri: str,
        *,
        recorder: OutboxRecorder | None = None,
        hub: ChangeHub | None = None,
        mailbox_count_limit: int = 0,
        writers: int = WRITER_THREADS,
    ) -> None:
        self.uri = uri
        #: The URI as logs and errors may show it (password masked).
        self.where = mask_secrets(uri)
        self.mailbox_count_limit = mailbox_count_limit
        self.hub = hub or ChangeHub()
        self._pool: ConnectionPool[Any] = ConnectionPool(
            uri,
            min_size=1,
            max_size=writers + READER_THREADS,
            kwargs={"autocommit": True},
            open=False,
            name="mailpush-store",
        )
        self._txn = PgTransactions(
            self._pool,
            writers=writers,
            readers=READER_THREADS,
            recorder=recorder,
            on_commit=self.hub.publish,
            status_reader=mailbox_status,
        )
        self._parsers = None
        submit, read = self._txn.submit, self._txn.read
        self._outbox = PostgresOutbox(submit, read)
        self.pushed_ids = SqlitePushedMessageIds(submit)
        self.metadata = SqliteMetadata(submit, read)
        self._mailboxes = SqliteMailboxes(submit, read, lambda: self.mailbox_count_limit)
        self._messages = SqliteMessages(
            submit, read, self._summaries, lambda: self.mailbox_count_limit
        )

    @property
    def outbox(self) -> PostgresOutbox:
        return self._outbox

    # --- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Run the migrations the database lacks, then open the pool and the threads."""
        self.migrate()
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except Exception as exc:  # psycopg_pool.PoolTimeout, psycopg.Error
            raise StoreError(
                f"cannot open connections to PostgreSQL at {self.where}: {mask_secrets(str(exc))}"
            ) from None
        self._parsers = ThreadPoolExecutor(PARSER_THREADS, thread_name_prefix="store-parser")
        self._txn.start()

    def migrate(self) -> PgSchemaUpgrade:
        """Create the schema or run the steps the database lacks (`pg_schema`), alone:
        `open` calls it, and `mailpush store migrate` calls nothing else."""
        try:
            with psycopg.connect(
                self.uri, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            ) as conn:
                return migrate_pg_schema(conn, self.where)
        except psycopg.Error as exc:
            raise pg_error(exc, f"cannot migrate the store at {self.where}") from None

    def close(self) -> None:
        """Finish the transactions under way and close the connections; safe to call twice."""
        self._txn.stop()
        if self._parsers is not None:
            self._parsers.shutdown(wait=True)
            self._parsers = None
        self._pool.close()

    def set_recorder(self, recorder: OutboxRecorder | None) -> None:
        self._txn.set_recorder(recorder)

    def _recording(self) -> bool:
        return self._txn.recording

    def observe_commits(self, observer: Callable[[int, float], None] | None) -> None:
        """`observer(1, seconds)` after each COMMIT, on the writer thread (metrics)."""
        self._txn.commit_observer = observer

    async def check_writable(self) -> None:
        """Run an empty write transaction: raises StoreError if the store cannot write now."""
        await self._txn.submit(lambda ctx: None, durable=False)

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(transactions committed, operations committed): one operation per transaction."""
        return self._txn.commits, self._txn.commits
