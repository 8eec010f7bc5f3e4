"""The store `mailpush_store` names: SQLite in `mailpush_data_dir`, or a PostgreSQL URI.

The one place that turns the setting into a store, so that the server, the
admin commands and `mailpush store migrate` agree on which database they
open. The URI's password never leaves here unmasked: `store_location` is
what logs and messages show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from ..config.settings import Settings
from ..errors import StoreError
from ..logs.text import mask_secrets
from .sqlite_schema import SchemaUpgrade
from .sqlite_store import SqliteStore

if TYPE_CHECKING:
    from .pg_schema import PgSchemaUpgrade
    from .pg_store import PostgresStore

__all__ = [
    "SQLITE_STORE_FILE",
    "ConfiguredStore",
    "configured_store",
    "migrate_store",
    "open_store",
    "store_location",
]

#: The SQLite store's file in `mailpush_data_dir` (when `mailpush_store` is empty).
SQLITE_STORE_FILE = "mail.sqlite"

#: Either backend: both meet `MailStore` and `PushOutbox`, and both have what the
#: server asks beyond them (`check_writable`, `observe_commits`,
#: `claim_pushed_message_id`).
ConfiguredStore: TypeAlias = "SqliteStore | PostgresStore"


def configured_store(settings: Settings) -> ConfiguredStore:
    """The store the settings name, not opened yet."""
    if settings.store:
        try:
            # Imported here: an SQLite-only install need not have psycopg.
            from .pg_store import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f"mailpush_store names a PostgreSQL database ({mask_secrets(settings.store)})"
                f" but its driver is not installed ({exc}); install mailpush[postgresql]"
            ) from None
        return PostgresStore(settings.store, mailbox_count_limit=settings.quota_mailbox_count)
    return SqliteStore(
        settings.data_dir / SQLITE_STORE_FILE,
        fsync=settings.mail_fsync,
        mailbox_count_limit=settings.quota_mailbox_count,
    )


def open_store(settings: Settings) -> ConfiguredStore:
    """The store the settings name, opened (schema created or migrated)."""
    store = configured_store(settings)
    store.open()
    return store


def migrate_store(settings: Settings) -> SchemaUpgrade | PgSchemaUpgrade:
    """Run the store's migrations alone (`mailpush store migrate`)."""
    return configured_store(settings).migrate()


def store_location(settings: Settings) -> str:
    """Where the store is, as logs and messages may show it (a URI's password masked)."""
    if settings.store:
        return mask_secrets(settings.store)
    return str(settings.data_dir / SQLITE_STORE_FILE)
