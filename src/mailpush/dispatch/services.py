"""What the framework lends drivers: the store (read-only), per-user settings, HTTP,
and (Lua `http_resend`) a journal for failed requests in the outbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from ..drivers.base import DriverServices, RequestJournal, StoreView
from .request_journal import JournalingServices, RequestOutbox

#: Connections the shared HTTP client opens to one host, at least: the default
#: mailpush_push_concurrency. Each running push transaction waits for one request at a
#: time, so with as many connections per host as transactions run at once, one slow
#: endpoint (the usual case: one URL for everyone) is never waited for in a queue.
HTTP_CONNECTIONS_PER_HOST = 64
#: aiohttp's default limit over all hosts, kept unless more per host are needed.
HTTP_CONNECTIONS = 100


class FrameworkServices:
    def __init__(
        self,
        store: StoreView,
        plugin: Mapping[str, str],
        userdb_fields: Callable[[str], Mapping[str, str]],
        *,
        ssl_client_ca_file: Path | None = None,
        push_concurrency: int = HTTP_CONNECTIONS_PER_HOST,
        push_timeout: float | None = None,
        outbox: RequestOutbox | None = None,
    ) -> None:
        self._store = store
        #: Where journaled requests go; None: nothing is journaled (`http_resend` is inert).
        self._outbox = outbox
        #: mailpush_push_timeout: drivers keep their own limits below it (Lua).
        self._push_timeout = push_timeout
        self._ssl_client_ca_file = ssl_client_ca_file
        #: mailpush_push_concurrency: how many transactions may wait for HTTP at once.
        self._connections_per_host = max(HTTP_CONNECTIONS_PER_HOST, push_concurrency)
        self._plugin = dict(plugin)
        self._userdb_fields = userdb_fields
        self._http: aiohttp.ClientSession | None = None

    @property
    def store(self) -> StoreView:
        return self._store

    @property
    def ssl_client_ca_file(self) -> Path | None:
        return self._ssl_client_ca_file

    @property
    def push_timeout(self) -> float | None:
        return self._push_timeout

    def plugin_settings(self) -> Mapping[str, str]:
        return self._plugin

    def journal_requests(self, driver: str) -> DriverServices:
        if self._outbox is None:
            return self
        return JournalingServices(self, self._outbox, driver)

    def request_journal(self, user: str) -> RequestJournal | None:
        return None

    def user_settings(self, user: str) -> Mapping[str, str]:
        merged = dict(self._plugin)
        merged.update(self._userdb_fields(user))
        return merged

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                limit=max(HTTP_CONNECTIONS, self._connections_per_host),
                limit_per_host=self._connections_per_host,
            )
            self._http = aiohttp.ClientSession(connector=connector)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
