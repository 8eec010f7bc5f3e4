"""Lua `http_resend`: a script's failed HTTP request, kept in the outbox and sent again.

Dovecot runs a push script once per transaction: when the script's `submit()`
fails (connection refused, a timeout, a 5xx) the script sees the failure and
moves on, and the notification is lost — the example scripts of Dovecot's
Lua push documentation only log it
(docs/dovecot-reference.md#http-requests-of-the-example-scripts). With the
lua driver option `http_resend = yes` mailpush keeps such a
request (method, URL, headers, body and the client options that shape it) in
the outbox database, durably, before the script sees the answer, and the
dispatcher sends it again with the driver's backoff until it is answered 2xx
or becomes a dead letter (`mailpush queue dead`, `mailpush queue replay`).
The script still sees the first answer, exactly as under Dovecot.

A journaled request is independent of everything else: it does not hold
back the user's later transactions, and it may arrive after requests the
script made later. It is at-least-once: a request that timed out may have
arrived and is sent again all the same.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..drivers.base import DriverServices, RequestJournal, StoreView
from ..drivers.lua.api.http_requests import HttpClientSettings, submit
from ..errors import PermanentDriverError, RetryableDriverError
from ..logging_config import mask_secrets

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "FIRST_RESEND_DELAY",
    "JournaledRequest",
    "JournalingServices",
    "OutboxRequestJournal",
    "RequestOutbox",
    "resend",
]

#: Seconds from a request's failure to its first resend; later ones follow the
#: driver's backoff. Long enough for a blip to pass, short next to any outage.
FIRST_RESEND_DELAY = 1.0
#: Longest wait for one resent request's answer (its own timeout, if shorter).
MAX_RESEND_TIMEOUT = 30.0
#: How much of an error answer's body a dead letter quotes.
QUOTED_RESPONSE = 200
#: How much of a URL an error shows (a script may build long ones; masking is slow on them).
SHOWN_URL = 500


@dataclass(frozen=True, slots=True)
class JournaledRequest:
    """One request as the script made it; the outbox payload, as JSON."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    #: The client's per-attempt timeout, seconds.
    timeout: float
    user_agent: str | None = None
    proxy_url: str | None = None

    def to_json(self) -> bytes:
        return json.dumps({
            "method": self.method,
            "url": self.url,
            "headers": [list(pair) for pair in self.headers],
            "body": None if self.body is None else base64.b64encode(self.body).decode("ascii"),
            "timeout": self.timeout,
            "user_agent": self.user_agent,
            "proxy_url": self.proxy_url,
        }).encode()

    @classmethod
    def from_json(cls, payload: bytes) -> JournaledRequest:
        """Raises ValueError for a payload this module did not write."""
        try:
            data = json.loads(payload)
            body = data["body"]
            return cls(
                str(data["method"]),
                str(data["url"]),
                tuple((str(name), str(value)) for name, value in data["headers"]),
                None if body is None else base64.b64decode(body, validate=True),
                float(data["timeout"]),
                data.get("user_agent"),
                data.get("proxy_url"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a journaled request: {exc}") from None


class RequestOutbox(Protocol):
    """`SqliteOutbox.add_request`."""

    async def add_request(
        self, driver: str, user: str, payload: bytes, next_attempt: float
    ) -> int: ...


class OutboxRequestJournal:
    """A `RequestJournal` for one driver instance and user, writing to the outbox."""

    def __init__(self, outbox: RequestOutbox, driver: str, user: str) -> None:
        self._outbox = outbox
        self._driver = driver
        self._user = user

    async def record(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        *,
        timeout: float,
        user_agent: str | None = None,
        proxy_url: str | None = None,
    ) -> None:
        request = JournaledRequest(
            method, url, tuple(headers), body, timeout, user_agent, proxy_url
        )
        await self._outbox.add_request(
            self._driver, self._user, request.to_json(), time.time() + FIRST_RESEND_DELAY
        )


class JournalingServices:
    """A driver's services, with its failed requests journaled (`http_resend = yes`)."""

    def __init__(self, services: DriverServices, outbox: RequestOutbox, driver: str) -> None:
        self._services = services
        self._outbox = outbox
        self._driver = driver

    @property
    def store(self) -> StoreView:
        return self._services.store

    def user_settings(self, user: str) -> Mapping[str, str]:
        return self._services.user_settings(user)

    def http(self) -> aiohttp.ClientSession:
        return self._services.http()

    def plugin_settings(self) -> Mapping[str, str]:
        return self._services.plugin_settings()

    @property
    def push_timeout(self) -> float | None:
        return self._services.push_timeout

    @property
    def ssl_client_ca_file(self) -> Path | None:
        return self._services.ssl_client_ca_file

    def journal_requests(self, driver: str) -> DriverServices:
        return JournalingServices(self._services, self._outbox, driver)

    def request_journal(self, user: str) -> RequestJournal | None:
        return OutboxRequestJournal(self._outbox, self._driver, user)


async def resend(
    session: aiohttp.ClientSession, tls: ssl.SSLContext, payload: bytes, timeout: float
) -> None:
    """Send a journaled request once more; raise unless it is answered 2xx.

    Sent as the script's `submit()` sends it (the same headers, Basic auth from
    the URL, no automatic headers). A 5xx or a lib-http failure is retried; any
    other answer, or a payload that is not a request, is a dead letter.
    """
    try:
        request = JournaledRequest.from_json(payload)
    except ValueError as exc:
        raise PermanentDriverError(f"unreadable journaled request: {exc}") from None
    settings = HttpClientSettings(
        user_agent=request.user_agent,
        proxy_url=request.proxy_url,
        # Below `timeout` (the dispatcher's), so that a slow answer is this module's error.
        request_timeout=min(request.timeout or MAX_RESEND_TIMEOUT, MAX_RESEND_TIMEOUT,
                            timeout * 0.9),
    )
    response = await submit(
        session, settings, tls, request.method, request.url, request.headers, request.body
    )
    if 200 <= response.status < 300:
        return
    message = f"{request.method} {mask_secrets(request.url[:SHOWN_URL])} answered"
    message += f" {response.status}"
    if response.reason:
        message += f" {mask_secrets(response.reason[:SHOWN_URL])}"
    quoted = response.payload[:QUOTED_RESPONSE].decode("utf-8", "replace").strip()
    if quoted:
        message += f": {mask_secrets(quoted)}"
    if response.status >= 9000 or 500 <= response.status < 600:
        raise RetryableDriverError(message)
    raise PermanentDriverError(message)
