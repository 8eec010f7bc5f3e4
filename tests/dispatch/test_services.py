"""The shared HTTP client drivers borrow: enough connections per host for every
transaction the dispatcher runs at once."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from mailpush.dispatch import FrameworkServices
from mailpush.store import SqliteStore


def connector(services: FrameworkServices) -> aiohttp.TCPConnector:
    pool = services.http().connector
    assert isinstance(pool, aiohttp.TCPConnector)
    return pool


async def test_one_host_gets_as_many_connections_as_transactions_run_at_once(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "unused.sqlite")
    default = FrameworkServices(store, {}, lambda user: {})
    wide = FrameworkServices(store, {}, lambda user: {}, push_concurrency=256)
    try:
        assert connector(default).limit_per_host == 64  # mailpush_push_concurrency's default
        assert (connector(wide).limit_per_host, connector(wide).limit) == (256, 256)
    finally:
        await default.close()
        await wide.close()
