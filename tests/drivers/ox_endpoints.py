"""Local stand-ins for the two OX App Suite endpoints Dovecot's drivers talk to.

Each is the tests' one HTTP receiver (tests/support/http_receiver.py) answering
through a script that enforces the receiver's contract as
docs/dovecot-reference.md#what-the-ox-receiver-accepts and
docs/dovecot-reference.md#what-the-chronos-receiver-accepts describe it,
answering 4xx (and recording why) for anything the real one would refuse:

- Chronos `PushMailREST`: `PUT /chronos/v1/itip/pushmail`, Basic auth,
  JSON with `body` and `folder`, `event` (if present) equal to `messageNew`
  case-insensitively, `body` a parseable MIME message.
- OX `DovecotPushRESTService`: `PUT /preliminary/http-notify/v1/notify`,
  Basic auth; like the real one it answers `{"success":true}` to any
  well-formed JSON, so `Accepted.ignored` says why it would not act on one
  (`event` not exactly `messageNew`, `user` not `<userId>@<contextId>`, no
  `folder` or `imap-uid`).
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.http_receiver import HttpReceiver

CHRONOS_PATH = "/chronos/v1/itip/pushmail"
OX_PATH = "/preliminary/http-notify/v1/notify"
LOGIN = "oxpush"
PASSWORD = "s3cr:et"
#: As written in a driver URL setting: the colon percent-encoded, and that `%` doubled
#: because Dovecot (and mailpush) expand %variables in these URLs.
PASSWORD_IN_URL = "s3cr%%3Aet"


@dataclass
class Accepted:
    """A request the receiver took: the raw body as it came over the wire."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    #: OX only: why the real receiver would take no action (None: it would act).
    ignored: str | None = None

    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class OxReceiver:
    """Enforces one OX contract; `fail_next` answers that many requests with `fail_status`."""

    kind: str  # "chronos" or "ox"
    tls: ssl.SSLContext | None = None
    fail_next: int = 0
    fail_status: int = 503
    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    attempts: int = 0
    _http: HttpReceiver = field(init=False)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._http = HttpReceiver(self._answer, tls=self.tls)

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def path(self) -> str:
        return CHRONOS_PATH if self.kind == "chronos" else OX_PATH

    def url(self, login: str = LOGIN, password: str = PASSWORD_IN_URL, host: str = "127.0.0.1",
            suffix: str = "") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{login}:{password}@{host}:{self.port}{self.path}{suffix}"

    async def start(self) -> None:
        await self._http.start()

    async def stop(self) -> None:
        await self._http.stop()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Accepted]:
        async def enough() -> None:
            while len(self.accepted) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.accepted

    async def _answer(self, request: web.Request, raw: bytes) -> web.StreamResponse:
        self.attempts += 1
        problem = self._check(request, raw)
        if problem is not None:
            status, reason = problem
            self.rejected.append(problem)
            return web.json_response({"error": reason}, status=status)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=self.fail_status, text="try later")
        ignored = _ox_ignores(json.loads(raw)) if self.kind == "ox" else None
        self.accepted.append(
            Accepted(request.path, dict(request.query), dict(request.headers), raw, ignored)
        )
        self._arrived.set()
        return web.json_response({"success": True})

    def _check(self, request: web.Request, raw: bytes) -> tuple[int, str] | None:
        if request.path != self.path:
            return 404, f"no such resource {request.path}"
        if request.method != "PUT":
            return 405, f"{request.method} not allowed"
        expected = base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return 401, "Basic authentication required"
        if request.headers.get("Content-Type") != "application/json; charset=utf-8":
            return 415, f"unsupported content type {request.headers.get('Content-Type')}"
        try:
            document = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            return 400, f"malformed JSON: {exc}"
        if not isinstance(document, dict):
            return 400, "not a JSON object"
        if self.kind == "chronos":
            return _check_chronos(document)
        return None


def _check_chronos(document: dict[str, Any]) -> tuple[int, str] | None:
    event = document.get("event")
    if event is not None and (not isinstance(event, str) or event.lower() != "messagenew"):
        return 400, f"unsupported event {event!r}"
    for name in ("body", "folder"):
        if not isinstance(document.get(name), str) or not document[name]:
            return 400, f"missing {name}"
    if "user" in document and not isinstance(document["user"], str):
        return 400, "user must be a string"
    message = email.message_from_string(document["body"], policy=email.policy.default)
    if message.defects or not message.keys():
        return 400, f"body is not a MIME message: {message.defects}"
    return None


def _ox_ignores(document: dict[str, Any]) -> str | None:
    if document.get("event") != "messageNew":
        return f"event is not 'messageNew': {document.get('event')!r}"
    user = document.get("user")
    user_id, at, context_id = str(user).partition("@")
    if not (at and user_id.isdigit() and context_id.isdigit()):
        return f"user is not <userId>@<contextId>: {user!r}"
    if not isinstance(document.get("folder"), str):
        return "no folder"
    if not isinstance(document.get("imap-uid"), int):
        return "no imap-uid"
    return None
