"""The change feed of the store `mailpush_store` names (docs/operations.md#the-change-feed).

The one place that picks it, so that the server and every command that
writes (`mailpush deliver`, admin commands) speak the same feed: UNIX
datagrams in the data directory for SQLite, which reach every process of
this host sharing it; PostgreSQL's LISTEN/NOTIFY for a database, which
reaches every node and worker on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..config.settings import Settings
from .feed_protocol import ChangeFeed
from .feed_sqlite import FEED_DIR, DatagramChangeFeed

__all__ = ["configured_feed"]


def configured_feed(settings: Settings, everyone: Callable[[], Iterable[str]]) -> ChangeFeed:
    """The feed for the settings' store, not listening yet.

    `everyone`: the users this process has subscribers for (`ChangeHub.users`),
    who all hear a change when the feed may have missed announcements."""
    if settings.store:
        # Imported here: an SQLite-only install need not have psycopg (open_store.py
        # already refused a PostgreSQL store without it).
        from .feed_postgres import NotifyChangeFeed

        return NotifyChangeFeed(settings.store, everyone=everyone)
    return DatagramChangeFeed(settings.data_dir / FEED_DIR, everyone=everyone)
