"""`dovecot.http` for scripts: Dovecot's client options, requests sent with aiohttp.

Options are read as Dovecot 2.3.19 reads them (`request_timeout_msecs`,
`max_attempts`, `user_agent`, `debug`, … ; unknown keys are ignored, a wrong
type is an error), plus the 2.4 names with units (`request_timeout = "5s"`)
and `timeout` in milliseconds, which the published example scripts pass and
Dovecot ignores. Failures lib-http reports as status codes come back the same
way — 9003 for a refused connection, 9008 for a timeout — so a script's
`r:status()/100 ~= 2` check sees them; they are never Lua errors.

The URL goes out exactly as the script built it (`%3d` is not re-quoted to
`%3D`, nor `%40` decoded to `@`), as lib-http sends it.

Unlike Dovecot 2.3.19, requests are not sent with `Expect: 100-continue`
(which cost up to 2 s against servers that do not answer it), and no headers
are added besides `Host`, `Content-Length` and, on request, `User-Agent`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ....config import parse_duration
from ....errors import InvalidValueError
from ....logging_config import mask_secrets
from ...http_body import read_at_most
from ...http_tls import tls_failure_reason

if TYPE_CHECKING:
    from ...base import RequestJournal

__all__ = [
    "DEFAULT_RESPONSE_MAX_SIZE",
    "HttpClientSettings",
    "HttpOptionError",
    "HttpResponse",
    "check_url",
    "client_settings",
    "request_url",
    "submit",
    "worth_resending",
]

log = logging.getLogger(__name__)

# lib-http's internal status codes (src/lib-http/http-client.h).
ABORTED = 9000
INVALID_URL = 9001
HOST_LOOKUP_FAILED = 9002
CONNECT_FAILED = 9003
INVALID_REDIRECT = 9004
CONNECTION_LOST = 9005
BROKEN_PAYLOAD = 9006
BAD_RESPONSE = 9007
TIMED_OUT = 9008

#: Failures worth another attempt when `max_attempts` allows one.
_RETRYABLE = frozenset({CONNECT_FAILED, CONNECTION_LOST, BAD_RESPONSE, TIMED_OUT})

#: lua_http_response_max_size's default: a push endpoint answers a few bytes of JSON.
DEFAULT_RESPONSE_MAX_SIZE = 1024 * 1024

_STRING_OPTIONS = frozenset({"user_agent", "rawlog_dir", "proxy_url"})
_MSEC_OPTIONS = frozenset({
    "max_idle_time_msecs", "connect_backoff_time_msecs", "connect_backoff_max_time_msecs",
    "request_absolute_timeout_msecs", "request_timeout_msecs", "connect_timeout_msecs",
    "soft_connect_timeout_msecs", "timeout",
})
_COUNT_OPTIONS = frozenset({
    "max_redirects", "max_attempts", "max_connect_attempts", "max_auto_retry_delay_secs",
})
_BOOL_OPTIONS = frozenset({"no_auto_redirect", "no_auto_retry", "debug"})
#: Dovecot 2.4 names: values are strings with units (`"5s"`), counts or booleans.
_V24_DURATIONS = {
    "request_timeout": "request_timeout_msecs",
    "request_absolute_timeout": "request_absolute_timeout_msecs",
    "connect_timeout": "connect_timeout_msecs",
    "connect_backoff_time": "connect_backoff_time_msecs",
    "connect_backoff_max_time": "connect_backoff_max_time_msecs",
    "soft_connect_timeout": "soft_connect_timeout_msecs",
    "max_idle_time": "max_idle_time_msecs",
}
_V24_COUNTS = {"request_max_attempts": "max_attempts", "request_max_redirects": "max_redirects"}
#: Other 2.4 client settings: accepted, nothing in mailpush's HTTP pool to set.
_V24_IGNORED_PREFIXES = ("ssl_", "dns_client_", "socket_", "response_hdr_", "request_hdr_")
_V24_IGNORED = frozenset({
    "max_parallel_connections", "max_pipelined_requests", "event_parent",
    "request_max_attempts_per_host",
})
#: Characters a URI may hold (RFC 3986): such a URL is sent exactly as written.
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_V24_BOOLS = {"auto_retry": "no_auto_retry", "auto_redirect": "no_auto_redirect"}


class HttpOptionError(ValueError):
    """A `dovecot.http.client{}` option of the wrong type; the message is Dovecot's."""


@dataclass(frozen=True, slots=True)
class HttpClientSettings:
    """One `dovecot.http.client{}`; defaults are lib-http's."""

    user_agent: str | None = None
    proxy_url: str | None = None
    max_redirects: int = 0
    max_attempts: int = 1
    #: Per attempt, seconds.
    request_timeout: float = 60.0
    #: For all attempts together; None = no such limit.
    absolute_timeout: float | None = None
    connect_timeout: float | None = None
    retry_delay: float = 0.1
    auto_retry: bool = True
    debug: bool = False
    #: The largest response payload handed to the script (lua_http_response_max_size).
    max_response_size: int = DEFAULT_RESPONSE_MAX_SIZE


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    #: Lower-case names; repeated headers joined with ", ".
    headers: dict[str, str]
    payload: bytes


def client_settings(options: Iterable[tuple[object, object]]) -> HttpClientSettings:
    """Settings from the Lua table's (key, value) pairs (keys and strings as bytes)."""
    settings = HttpClientSettings()
    for raw_key, value in options:
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else str(raw_key)
        settings = _apply(settings, key, value)
    return settings


def request_url(url: str) -> URL:
    """The URL to send, byte for byte as the script built it when it is a valid URI.

    Parsed normally, yarl re-quotes: `%3d` would leave as `%3D`, `%40` as `@`,
    and a signature computed over the script's query string would no longer
    match. A URL with characters no URI may hold (a space, non-ASCII) is still
    quoted, as before, rather than refused.
    """
    if _URI_CHARACTERS.fullmatch(url) and _BAD_ESCAPE.search(url) is None:
        return URL(url, encoded=True)
    return URL(url)


def check_url(url: str) -> str | None:
    """Why `url` cannot be requested (Dovecot's "Failed to parse url" reason), or None."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        return str(exc)
    if parsed.scheme not in ("http", "https"):
        return "Invalid URL scheme (http or https expected)"
    if not parsed.host:
        return "Missing host"
    return None


async def submit(
    session: aiohttp.ClientSession,
    settings: HttpClientSettings,
    tls: ssl.SSLContext,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    payload: bytes | None,
    journal: RequestJournal | None = None,
) -> HttpResponse:
    """Send with up to `max_attempts` attempts; never raises for network failures.

    With a `journal` (the lua option `http_resend`), a request that failed for
    good is journaled, durably, before the script sees the answer: the
    framework sends it again (dispatch/request_journal.py).
    """
    response = await _send(session, settings, tls, method, url, headers, payload)
    if journal is not None and worth_resending(response.status):
        await journal.record(
            method, url, headers, payload, timeout=settings.request_timeout,
            user_agent=settings.user_agent, proxy_url=settings.proxy_url,
        )
    return response


def worth_resending(status: int) -> bool:
    """A lib-http failure but a bad URL or redirect, or a 5xx: sending again may succeed."""
    # BROKEN_PAYLOAD: the endpoint got the request and answered (too much).
    return status >= ABORTED and status not in (INVALID_URL, INVALID_REDIRECT, BROKEN_PAYLOAD) or (
        500 <= status < 600
    )


async def _send(
    session: aiohttp.ClientSession,
    settings: HttpClientSettings,
    tls: ssl.SSLContext,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    payload: bytes | None,
) -> HttpResponse:
    shown = f"{method} {mask_secrets(url)}"
    attempt_logger = log.info if settings.debug else log.debug
    try:
        async with asyncio.timeout(settings.absolute_timeout):
            response = HttpResponse(ABORTED, "Aborted", {}, b"")
            for attempt in range(max(1, settings.max_attempts)):
                if attempt:
                    await asyncio.sleep(settings.retry_delay * 2 ** (attempt - 1))
                response = await _attempt(session, settings, tls, method, url, headers, payload)
                attempt_logger("http-client: %s: %d %s", shown, response.status, response.reason)
                if not _worth_retrying(response, settings):
                    break
            return response
    except TimeoutError:
        timeout = settings.absolute_timeout or 0
        return HttpResponse(TIMED_OUT, f"Absolute request timeout {timeout:g}s reached", {}, b"")


async def _attempt(
    session: aiohttp.ClientSession,
    settings: HttpClientSettings,
    tls: ssl.SSLContext,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    payload: bytes | None,
) -> HttpResponse:
    try:
        target = request_url(url)
    except (ValueError, TypeError) as exc:
        return HttpResponse(INVALID_URL, f"Invalid URL: {exc}", {}, b"")
    request_headers: CIMultiDict[str] = CIMultiDict(headers)
    if target.user is not None:
        if "Authorization" not in request_headers:
            request_headers["Authorization"] = aiohttp.encode_basic_auth(
                target.user, target.password or ""
            )
        target = target.with_user(None)
    skip = {"Accept", "Accept-Encoding", "Content-Type"}
    if settings.user_agent is None:
        skip.add("User-Agent")
    elif "User-Agent" not in request_headers:
        request_headers["User-Agent"] = settings.user_agent
    redirects = settings.max_redirects
    timeout = aiohttp.ClientTimeout(
        total=settings.request_timeout or None, connect=settings.connect_timeout
    )
    try:
        async with session.request(
            method,
            target,
            data=payload,
            headers=request_headers,
            skip_auto_headers=skip,
            ssl=tls,
            proxy=settings.proxy_url,
            allow_redirects=redirects > 0,
            max_redirects=max(redirects, 1),
            timeout=timeout,
        ) as response:
            body = await _read_payload(response, settings.max_response_size)
            if body is None:
                # Not returned to the pool: the rest of the payload stays unread.
                response.close()
                return HttpResponse(
                    BROKEN_PAYLOAD,
                    f"Response payload too large (more than {settings.max_response_size}"
                    " bytes; lua_http_response_max_size)", {}, b"",
                )
            answer: dict[str, str] = {}
            for name, value in response.headers.items():
                key = name.lower()
                answer[key] = f"{answer[key]}, {value}" if key in answer else value
            return HttpResponse(response.status, response.reason or "", answer, body)
    except TimeoutError:
        return HttpResponse(
            TIMED_OUT, f"Request timed out after {settings.request_timeout:g}s", {}, b""
        )
    except aiohttp.ClientError as exc:
        # Connection failures are the proxy's when there is one.
        proxy = URL(settings.proxy_url) if settings.proxy_url else None
        return _failure(exc, target, proxy if proxy is not None and proxy.host else target)
    except OSError as exc:
        return HttpResponse(CONNECTION_LOST, f"Connection lost: {exc}", {}, b"")


async def _read_payload(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The payload, or None once it is known to exceed `limit` bytes.

    A script's state gets the payload as one Lua string; without a cap, an
    endpoint answering with gigabytes would fill the server's memory (the cap
    is http_body.py's); a declared Content-Length over the limit is refused unread.
    """
    if response.content_length is not None and response.content_length > limit:
        return None
    body, whole = await read_at_most(response, limit)
    return body if whole else None


def _failure(exc: aiohttp.ClientError, target: URL, peer: URL) -> HttpResponse:
    """lib-http's status code and reason for an aiohttp failure.

    `peer` is whom the connection goes to: `target`, or the proxy.
    """
    tls = tls_failure_reason(exc, None)
    if tls is not None:
        reason = f"connect({target.host}:{target.port}) failed: {tls}"
        return HttpResponse(CONNECT_FAILED, reason, {}, b"")
    host = f"{peer.host}:{peer.port}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        reason = f"Failed to lookup host {peer.host}: {_os_reason(exc.os_error)}"
        return HttpResponse(HOST_LOOKUP_FAILED, reason, {}, b"")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = f"connect({host}) failed: {_os_reason(exc.os_error)}"
        return HttpResponse(CONNECT_FAILED, reason, {}, b"")
    if isinstance(exc, aiohttp.TooManyRedirects | aiohttp.RedirectClientError):
        return HttpResponse(INVALID_REDIRECT, f"Redirect failed: {exc}", {}, b"")
    if isinstance(exc, aiohttp.InvalidUrlClientError):
        return HttpResponse(INVALID_URL, f"Invalid URL: {exc}", {}, b"")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return HttpResponse(CONNECTION_LOST, f"Connection lost: {exc}", {}, b"")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return HttpResponse(CONNECTION_LOST, f"Connection lost reading the payload: {exc}", {},
                            b"")
    return HttpResponse(BAD_RESPONSE, f"Bad response: {mask_secrets(str(exc))}", {}, b"")


def _os_reason(error: OSError) -> str:
    """`Connection refused`, as Dovecot words it, rather than asyncio's wording."""
    if error.errno and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or str(error)


def _worth_retrying(response: HttpResponse, settings: HttpClientSettings) -> bool:
    if not settings.auto_retry:
        return response.status in _RETRYABLE
    return response.status in _RETRYABLE or 500 <= response.status < 600


def _apply(settings: HttpClientSettings, key: str, value: object) -> HttpClientSettings:
    if key in _V24_DURATIONS:
        return _apply(settings, _V24_DURATIONS[key], _milliseconds(key, value))
    if key in _V24_COUNTS:
        return _apply(settings, _V24_COUNTS[key], _count(key, _v24_number(value)))
    if key in _V24_BOOLS:
        return _apply(settings, _V24_BOOLS[key], not _boolean(key, _v24_bool(value)))
    if key in _STRING_OPTIONS:
        text = _string(key, value)
        if key == "user_agent":
            return replace(settings, user_agent=text)
        if key == "proxy_url":
            return replace(settings, proxy_url=text or None)
        return settings  # rawlog_dir: requests are logged with debug=true instead
    if key in _MSEC_OPTIONS:
        seconds = _count(key, value) / 1000
        if key in ("request_timeout_msecs", "timeout"):
            return replace(settings, request_timeout=seconds)
        if key == "request_absolute_timeout_msecs":
            return replace(settings, absolute_timeout=seconds or None)
        if key == "connect_timeout_msecs":
            return replace(settings, connect_timeout=seconds or None)
        if key == "connect_backoff_time_msecs":
            return replace(settings, retry_delay=seconds)
        return settings
    if key in _COUNT_OPTIONS:
        # max_connect_attempts keeps its name in 2.4, where values may be strings.
        number = _count(key, _v24_number(value))
        if key == "max_redirects":
            return replace(settings, max_redirects=number)
        if key == "max_attempts":
            return replace(settings, max_attempts=max(1, number))
        return settings
    if key in _BOOL_OPTIONS:
        flag = _boolean(key, value)
        if key == "no_auto_redirect":
            return replace(settings, max_redirects=0) if flag else settings
        if key == "no_auto_retry":
            return replace(settings, auto_retry=not flag)
        return replace(settings, debug=flag)
    if key in _V24_IGNORED or key.startswith(_V24_IGNORED_PREFIXES):
        log.debug("dovecot.http.client: option %r has no effect in mailpush", key)
        return settings
    log.debug("dovecot.http.client: ignoring unknown option %r, as Dovecot 2.3 does", key)
    return settings


def _string(key: str, value: object) -> str:
    if not isinstance(value, bytes):
        raise HttpOptionError(f"Invalid HTTP client setting: {key}: string expected")
    return value.decode("utf-8", "replace")


def _count(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise HttpOptionError(f"Invalid HTTP client setting: {key}: non-negative number expected")
    return int(value)


def _boolean(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise HttpOptionError(f"Invalid HTTP client setting: {key}: boolean expected")
    return value


def _milliseconds(key: str, value: object) -> int:
    """A 2.4 duration (`"5s"`, `"100ms"`); a plain number is milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _count(key, value)
    text = _string(key, value).strip()
    if text == "0":
        return 0
    try:
        return round(parse_duration(text, bare_unit="ms") * 1000)
    except InvalidValueError as exc:
        raise HttpOptionError(f"Invalid HTTP client setting: {key}: {exc}") from None


def _v24_number(value: object) -> object:
    if isinstance(value, bytes) and value.strip().isdigit():
        return int(value)
    return value


def _v24_bool(value: object) -> object:
    if isinstance(value, bytes):
        return value.strip().lower() in (b"yes", b"true", b"1")
    return value
