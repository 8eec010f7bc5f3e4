"""The I/O a script waits for: HTTP requests, mailbox checks and status, METADATA, sleeps.

HTTP comes from `dovecot.http` `submit()` and from the built-in `socket.http`
(LuaSocket's API: its answers and error strings are made here); `socket.sleep`
waits here too.

A script asks for I/O by yielding (`calls.io(kind, ...)` in Lua); the call
runner awaits `HostIO.perform` on the event loop and resumes the script with
its answer: `(True, results...)`, or `(False, message)` which the Lua side
raises as an error at the script's line. `YIELDING_CALLS`, at the end, is the
one table of these kinds: each one's handler and the name its errors use.
Network failures of HTTP requests are results (status codes 9000–9009), not
errors.

Any other exception while doing the I/O (aiohttp refusing a request it
cannot send, a store failure, a bug here) also becomes `(False, message)`: an
exception escaping into the dispatcher would make it run the whole
transaction again — and again, since it would fail the same way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ....errors import MailboxNotFoundError, StoreError, UnknownUserError
from ....logging_config import mask_secrets
from ....store.mailbox_names import normalize_mailbox_name
from ....store.models import MailboxStatus
from ...base import DriverServices
from ..lua_strings import text
from .host_api import HostApi
from .http_requests import (
    ABORTED,
    CONNECT_FAILED,
    CONNECTION_LOST,
    HOST_LOOKUP_FAILED,
    TIMED_OUT,
    HttpClientSettings,
    HttpResponse,
    submit,
)
from .storage_constants import (
    PERMANENT_FLAGS,
    STATUS_HIGHESTMODSEQ,
    STATUS_KEYWORDS,
    STATUS_MESSAGES,
    STATUS_PERMANENT_FLAGS,
    STATUS_RECENT,
    STATUS_UIDNEXT,
    STATUS_UIDVALIDITY,
    STATUS_UNSEEN,
)

__all__ = ["YIELDING_CALLS", "HostIO", "YieldingCall", "luasocket_error", "status_fields"]

log = logging.getLogger(__name__)

Answer = tuple[object, ...]


class HostIO:
    """Performs one state's I/O requests; `lua` builds the tables handed back."""

    def __init__(
        self, user: str, api: HostApi, services: DriverServices, tls: ssl.SSLContext, lua: Any
    ) -> None:
        self.user = user
        self._api = api
        self._services = services
        self._tls = tls
        self._lua = lua
        #: The status the running call's transaction committed for its mailbox
        #: (set by the driver around each call): what `mailbox:status()` reports
        #: for that mailbox, as Dovecot's call inside the commit would.
        self.committed_status: MailboxStatus | None = None

    async def perform(self, kind: object, args: tuple[object, ...]) -> Answer:
        request = YIELDING_CALLS.get(kind) if isinstance(kind, bytes) else None
        if request is None:
            return False, f"unknown I/O request {text(kind)!r}".encode()
        try:
            return await request.handler(self, *args)
        except UnknownUserError:
            return False, f"{self.user} has no mailboxes yet".encode()
        except StoreError as exc:
            return False, str(exc).encode()
        except Exception as exc:
            log.debug("%s%s failed", self._api.prefix, text(kind), exc_info=True)
            reason = mask_secrets(f"{exc.__class__.__name__}: {exc}")
            return False, f"{request.name} failed: {reason}".encode()

    # --- HTTP -------------------------------------------------------------------------

    async def _http(
        self, settings: object, method: bytes, url: bytes, headers: Any, payload: bytes | None
    ) -> Answer:
        if not isinstance(settings, HttpClientSettings):
            return False, b"submit(): the request does not come from a dovecot.http.client{}"
        flat = [text(headers[i]) for i in range(1, len(headers) + 1)]
        pairs = list(zip(flat[0::2], flat[1::2], strict=True))
        response = await submit(
            self._services.http(), settings, self._tls, text(method), text(url), pairs, payload,
            self._services.request_journal(self.user),
        )
        received = self._lua.table_from(
            {name.encode(): value.encode() for name, value in response.headers.items()}
        )
        return True, response.status, response.reason.encode(), received, response.payload

    async def _socket_http(
        self,
        method: bytes,
        url: bytes,
        headers: Any,
        payload: bytes | None,
        timeout: float,
        max_redirects: int,
        proxy: bytes | None = None,
    ) -> Answer:
        """LuaSocket's `http.request`: the response, or `None` and LuaSocket's error text."""
        flat = [text(headers[i]) for i in range(1, len(headers) + 1)]
        pairs = list(zip(flat[0::2], flat[1::2], strict=True))
        settings = HttpClientSettings(
            request_timeout=max(float(timeout), 0.001),
            max_redirects=int(max_redirects),
            proxy_url=text(proxy) if proxy else None,
            max_response_size=self._api.response_max_size,
        )
        # Journaled like dovecot.http's submit() when http_resend is on: scripts in
        # LuaSocket's style deserve the same at-least-once.
        response = await submit(
            self._services.http(), settings, self._tls, text(method), text(url), pairs, payload,
            self._services.request_journal(self.user),
        )
        failure = luasocket_error(response)
        if failure is not None:
            return True, None, failure.encode()
        received = self._lua.table_from(
            {name.encode(): value.encode() for name, value in response.headers.items()}
        )
        status_line = f"HTTP/1.1 {response.status} {response.reason}".rstrip()
        return True, response.status, response.reason.encode(), received, response.payload, (
            status_line.encode()
        )

    async def _sleep(self, seconds: float) -> Answer:
        """`socket.sleep`: the call runner's deadline still ends it when time is up."""
        await asyncio.sleep(max(0.0, float(seconds)))
        return (True,)

    # --- mailboxes ---------------------------------------------------------------------

    async def _mailbox_open(self, name: bytes) -> Answer:
        await self._status(name)
        return (True,)

    async def _mailbox_status(self, name: bytes, items: int) -> Answer:
        status = await self._status(name)
        return True, self._lua.table_from(status_fields(status, items, self._lua))

    async def _status(self, name: bytes) -> MailboxStatus:
        committed = self.committed_status
        if committed is not None and _same_mailbox(text(name), committed.mailbox):
            return committed
        try:
            return await self._services.store.status(self.user, text(name))
        except UnknownUserError:
            raise MailboxNotFoundError(text(name)) from None

    # --- METADATA ----------------------------------------------------------------------

    async def _metadata_get(self, mailbox: bytes | bool, *keys: bytes) -> Answer:
        box = self._box(mailbox)
        values: list[object] = [True]
        for key in keys:
            entry = text(key)
            problem = _server_key_problem(box, entry)
            if problem is not None:
                return False, problem
            value = await self._services.store.get_metadata(self.user, box, entry)
            values.append(None if value is None else value.encode())
        return tuple(values)

    async def _metadata_set(
        self, mailbox: bytes | bool, key: bytes, value: bytes | None = None
    ) -> Answer:
        box = self._box(mailbox)
        entry = text(key)
        problem = _server_key_problem(box, entry)
        if problem is not None:
            return False, problem
        await self._services.store.set_metadata(
            self.user, box, entry, None if value is None else text(value)
        )
        return (True,)

    async def _metadata_list(self, mailbox: bytes | bool, *prefixes: bytes) -> Answer:
        box = self._box(mailbox)
        found: dict[bytes, bytes] = {}
        for prefix in prefixes:
            wanted = text(prefix)
            problem = _server_key_problem(box, wanted)
            if problem is not None:
                return False, problem
            entries = await self._services.store.list_metadata(self.user, box, wanted)
            found.update({name.encode(): value.encode() for name, value in entries.items()})
        return True, self._lua.table_from(found)

    @staticmethod
    def _box(mailbox: bytes | bool) -> str | None:
        return text(mailbox) if isinstance(mailbox, bytes) else None


@dataclass(frozen=True, slots=True)
class YieldingCall:
    """One kind of request a script yields for (`calls.io(kind, ...)` in lib/*.lua)."""

    #: How error messages name it: the function as the script wrote it.
    name: str
    #: `HostIO` method answering it: `(True, results...)` or `(False, message)`.
    handler: Callable[..., Awaitable[Answer]]


#: Every yielding call, by the kind lib/*.lua passes to `calls.io`.
YIELDING_CALLS: Mapping[bytes, YieldingCall] = MappingProxyType({
    b"http": YieldingCall("submit()", HostIO._http),
    b"socket_http": YieldingCall("socket.http.request()", HostIO._socket_http),
    b"sleep": YieldingCall("socket.sleep()", HostIO._sleep),
    b"mailbox_open": YieldingCall("mailbox:open()", HostIO._mailbox_open),
    b"mailbox_status": YieldingCall("mailbox:status()", HostIO._mailbox_status),
    b"metadata_get": YieldingCall("metadata_get()", HostIO._metadata_get),
    b"metadata_set": YieldingCall("metadata_set()", HostIO._metadata_set),
    b"metadata_list": YieldingCall("metadata_list()", HostIO._metadata_list),
})

def _same_mailbox(name: str, mailbox: str) -> bool:
    try:
        return normalize_mailbox_name(name) == mailbox
    except StoreError:
        return False


def luasocket_error(response: HttpResponse) -> str | None:
    """LuaSocket's error text for a lib-http failure status, None for a server's answer.

    Scripts compare these strings (`if err == "timeout"`), so they are LuaSocket's.
    """
    if response.status < ABORTED:
        return None
    if response.status == TIMED_OUT:
        return "timeout"
    if response.status == HOST_LOOKUP_FAILED:
        return "host not found"
    if response.status == CONNECTION_LOST:
        return "closed"
    if response.status == CONNECT_FAILED:
        return response.reason.rsplit("failed: ", 1)[-1].lower()
    return response.reason


def status_fields(status: MailboxStatus, items: int, lua: Any) -> dict[bytes, object]:
    """Dovecot's status table: every field present, those not asked for 0/false."""

    def wanted(item: int, value: object) -> object:
        return value if items & item else 0

    fields: dict[bytes, object] = {
        b"mailbox": status.mailbox.encode(),
        b"messages": wanted(STATUS_MESSAGES, status.messages),
        b"recent": wanted(STATUS_RECENT, status.recent),
        b"unseen": wanted(STATUS_UNSEEN, status.unseen),
        b"uidvalidity": wanted(STATUS_UIDVALIDITY, status.uidvalidity),
        b"uidnext": wanted(STATUS_UIDNEXT, status.uidnext),
        # Sequence numbers belong to IMAP sessions; the store knows UIDs only.
        b"first_unseen_seq": 0,
        b"first_recent_uid": 0,
        b"highest_modseq": wanted(STATUS_HIGHESTMODSEQ, status.highestmodseq),
        b"highest_pvt_modseq": 0,
        b"permanent_flags": wanted(STATUS_PERMANENT_FLAGS, PERMANENT_FLAGS),
        b"flags": 0,
        b"permanent_keywords": bool(items & STATUS_PERMANENT_FLAGS),
        b"allow_new_keywords": bool(items & STATUS_PERMANENT_FLAGS),
        b"nonpermanent_modseqs": False,
        b"no_modseq_tracking": False,
        b"have_guids": False,
        b"have_save_guids": False,
        b"have_only_guid128": False,
    }
    if items & STATUS_KEYWORDS:
        fields[b"keywords"] = lua.table(*(keyword.encode() for keyword in status.keywords))
    return fields


def _server_key_problem(mailbox: str | None, entry: str) -> bytes | None:
    """Dovecot's check for mail_user metadata keys (mailbox keys go to the store's check)."""
    if mailbox is None and not entry.startswith(("/private/", "/shared/")):
        return b"Invalid key prefix, must be /private/ or /shared/"
    return None
