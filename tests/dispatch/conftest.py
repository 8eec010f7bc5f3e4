"""The push suite runs on both store backends: the outbox, its claims and the pipeline.

`store_backend` (tests/support/store_backends.py) is SQLite or a database of
its own on the session's private PostgreSQL; `make_server` writes it into
the server's configuration, `store` opens it, and a test that needs a second
process's view (a restart, `mailpush serve` as a process) opens another
instance with `store_backend.open_store()` or passes `store_backend.config()`.
"""

from tests.support.postgres import postgres_server
from tests.support.store_backends import make_server, store, store_backend

__all__ = ["make_server", "postgres_server", "store", "store_backend"]  # fixtures, for pytest
