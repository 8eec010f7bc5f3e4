"""The LMTP suite runs on both store backends: `make_server` gets the `mailpush_store` line.

Every server a test here starts reads the store `store_backend` names
(tests/support/store_backends.py): SQLite in its data directory, or a
database of its own on the session's private PostgreSQL.
"""

from tests.support.postgres import postgres_server
from tests.support.store_backends import make_server, store_backend

__all__ = ["make_server", "postgres_server", "store_backend"]  # fixtures, for pytest to find
