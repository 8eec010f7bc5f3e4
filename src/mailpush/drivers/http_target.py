"""One HTTP(S) endpoint a driver sends to, and how a request's outcome becomes an error.

Shared by the chronos, ox and webhook drivers so that they agree on what
Dovecot's HTTP drivers do — Basic authentication from the URL's userinfo,
2xx is success — and on what mailpush adds: TLS through `http_tls`, a
classification of every failure the dispatcher understands (408, 429, 5xx,
network errors and timeouts are worth retrying; other statuses are not),
and error messages that never show a password.

`attempts` are made at once, within one dispatcher call, like Dovecot's
`max_retries` (lib-http attempts), but never after a timeout: a request that
timed out may have arrived, and repeating it at once is how one slow
Chronos endpoint got the same invitation eight times. When they are used up
the transaction goes back to the outbox and the framework retries it with
the driver's backoff, up to its `delivery_attempts` and `max_age`.

An answer's body is read up to `response_max_size` (option of the same name,
default 64 KiB); a longer one is cut there and its connection dropped, not
drained: an endpoint answering with a huge or endless body costs neither
memory nor time. Error messages quote its first 200 characters.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from ..config import parse_size
from ..errors import (
    EndpointCertificateError,
    EndpointTimeoutError,
    PermanentDriverError,
    RetryableDriverError,
)
from ..logging_config import mask_secrets
from .driver_options import DriverOptions
from .http_body import read_at_most
from .http_tls import tls_failure_reason
from .shared_options import RESPONSE_MAX_SIZE

__all__ = ["DEFAULT_RESPONSE_MAX_SIZE", "HttpTarget", "check_http_url", "response_max_size"]

log = logging.getLogger(__name__)

#: Pause before the second attempt; doubled for each further one.
FIRST_RETRY_DELAY = 0.1
#: How much of an error response's body an error message quotes.
QUOTED_RESPONSE = 200
#: The most of an answer's body read (option `response_max_size`).
DEFAULT_RESPONSE_MAX_SIZE = parse_size(RESPONSE_MAX_SIZE.default)


def check_http_url(url: str) -> str | None:
    """Why `url` cannot be an endpoint, or None if it can."""
    if not url.startswith(("http://", "https://")):
        return "an http:// or https:// URL is required"
    try:
        parsed = URL(url)
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if not parsed.host:
        return "the URL has no host"
    return None


def response_max_size(options: DriverOptions) -> int:
    """The option `response_max_size`: how much of an answer's body is read."""
    return options.size(RESPONSE_MAX_SIZE)


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """An endpoint: the URL without its userinfo, the credentials apart."""

    url: URL
    #: `Basic …` from the URL's userinfo, or None without one.
    authorization: str | None
    #: The URL as error messages and logs show it (password masked).
    shown: str
    tls: ssl.SSLContext
    ca_file: Path | None
    timeout: float
    attempts: int
    #: Bytes of an answer's body read at most; the connection is dropped past them.
    response_max_size: int = DEFAULT_RESPONSE_MAX_SIZE

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ssl_context: ssl.SSLContext,
        ca_file: Path | None,
        timeout: float,
        attempts: int,
        response_max_size: int = DEFAULT_RESPONSE_MAX_SIZE,
    ) -> HttpTarget:
        """`url` may carry `login:password@` (percent-encoded), sent as Basic auth."""
        parsed = URL(url)
        authorization = None
        if parsed.user is not None:
            credentials = f"{parsed.user}:{parsed.password or ''}".encode()
            authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
        return cls(
            parsed.with_user(None), authorization, mask_secrets(url), ssl_context, ca_file, timeout,
            max(1, attempts), response_max_size,
        )

    async def send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        body: bytes,
        headers: Mapping[str, str],
    ) -> int:
        """Send until success, a timeout, or `attempts` are used up; the 2xx status.

        Raises RetryableDriverError (EndpointTimeoutError after a timeout) or
        PermanentDriverError with a message naming the method, the (masked) URL
        and what went wrong.
        """
        error: RetryableDriverError | None = None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(FIRST_RETRY_DELAY * 2 ** (attempt - 1))
            try:
                return await self._send_once(session, method, body, headers)
            except (EndpointCertificateError, EndpointTimeoutError):
                raise
            except RetryableDriverError as exc:
                error = exc
                log.debug("%s; attempt %d of %d", exc, attempt + 1, self.attempts)
        assert error is not None
        raise error

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        method: str,
        body: bytes,
        headers: Mapping[str, str],
    ) -> int:
        what = f"{method} {self.shown}"
        headers = dict(headers)
        if self.authorization is not None:
            headers["Authorization"] = self.authorization
        try:
            async with session.request(
                method,
                self.url,
                data=body,
                headers=headers,
                ssl=self.tls,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                reason = response.reason or ""
                answer, whole = await read_at_most(response, self.response_max_size)
                if not whole:
                    log.debug(
                        "%s %s: answer longer than %d bytes (response_max_size);"
                        " connection dropped",
                        response.method, response.url, self.response_max_size,
                    )  # fmt: skip
                    # Closing rather than releasing drops the connection unread.
                    response.close()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            tls = tls_failure_reason(exc, self.ca_file)
            if tls is not None:
                raise EndpointCertificateError(f"{what} failed: {tls}") from None
            if isinstance(exc, TimeoutError):
                raise EndpointTimeoutError(
                    f"{what} failed: no answer within {self.timeout:g}s (timeout)"
                ) from None
            detail = f"{exc.__class__.__name__}: {mask_secrets(str(exc))}"
            raise RetryableDriverError(f"{what} failed: {detail}") from None
        if 200 <= status < 300:
            log.debug("%s: Notification sent successfully: %d %s", what, status, reason)
            return status
        message = f"{what} answered {status} {reason}".rstrip()
        quoted = answer[:QUOTED_RESPONSE].decode("utf-8", "replace").strip()
        if quoted:
            message += f": {mask_secrets(quoted)}"
        if status in (408, 429) or status >= 500:
            raise RetryableDriverError(message)
        if 300 <= status < 400:
            where = response.headers.get("Location", "")
            message += f" (redirects are not followed; point the url at {where or 'the target'})"
        raise PermanentDriverError(message)
