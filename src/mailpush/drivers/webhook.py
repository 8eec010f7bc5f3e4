"""webhook: one signed JSON POST per push transaction (mailpush's own driver).

Options (2.3 `webhook:url=… secret=whsec_… events=MessageNew,MessageRead`, or a
`push_notification NAME { driver = webhook  url = … }` block) are declared once,
in `OPTION_SCHEMA` (docs/drivers/webhook.md is generated from it). Requests are
signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), once per
`secret` so that keys can be rotated. A transaction left with no event by the
`events` and `mailboxes` filters is not sent at all. `max_retries` defaults to
0: retries are the outbox's job.

`webhook-id` is the push transaction id: stable across retries and restarts,
so a receiver drops duplicates of the framework's at-least-once delivery.
`webhook-timestamp` is the time of each attempt (receivers reject stale ones).
2xx is success; 408, 429, 5xx and network errors are retried; other 4xx are
permanent (dead letter).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from ..config.schema import SettingType
from ..events import EVENT_NAMES, PushEvent, PushTransaction, transaction_to_dict
from ..store.mailbox_names import INBOX
from .base import DriverServices, PushDriver
from .driver_config import DriverConfig
from .driver_options import DriverOptions
from .http_target import HttpTarget, check_http_url, response_max_size
from .http_tls import driver_ca_file, driver_ssl_context
from .option_schema import DriverOptionSchema, declare_option
from .shared_options import (
    HTTP_CLIENT_REQUEST_MAX_ATTEMPTS,
    MAX_RETRIES,
    RESPONSE_MAX_SIZE,
    RETRY_OPTIONS,
    SSL_CLIENT_CA_FILE,
    TIMEOUT,
)

SECRET_PREFIX = "whsec_"

URL = declare_option(
    "url",
    SettingType.STRING,
    "",
    "The endpoint, http:// or https://; `login:password@` in it is sent as Basic auth. "
    "No `%` variables are replaced.",
    required=True,
)
SECRET = declare_option(
    "secret",
    SettingType.LIST,
    "",
    f"`{SECRET_PREFIX}` and a base64 key of at least 16 bytes: requests are signed per "
    "Standard Webhooks. Several, separated by commas, sign with each (for key rotation: "
    "receivers accept any one).",
    default_doc="none (unsigned)",
)
EVENTS = declare_option(
    "events",
    SettingType.LIST,
    "",
    "Event names to send, separated by commas or spaces.",
    default_doc="all",
)
MAILBOXES = declare_option(
    "mailboxes",
    SettingType.LIST,
    "",
    "Names or patterns (`*` any text, `%` within one hierarchy level) the mailbox of an "
    "event (for a rename, also its old name) must match to be sent; `inbox` means INBOX.",
    default_doc="all",
)
ORDERED = declare_option(
    "ordered",
    SettingType.BOOL,
    "no",
    "`yes`: a user's transactions are sent one after another in commit order, and one that "
    "keeps failing holds back the later ones. `no`: each is sent and retried on its own, "
    "so a receiver may see them out of order (the payload's `created` tells the order; "
    "`webhook-timestamp` is per attempt).",
)
REQUEST_TIMEOUT = TIMEOUT.with_default("10s")
REQUEST_RETRIES = MAX_RETRIES.with_default("0")
REQUEST_ATTEMPTS = HTTP_CLIENT_REQUEST_MAX_ATTEMPTS.with_default("1")

OPTION_SCHEMA = DriverOptionSchema(
    "webhook",
    "mailpush's own driver: each push transaction becomes one JSON POST (the transaction "
    "as `mailpush events tail` shows it), signed per Standard Webhooks. Its `webhook-id` "
    "is the transaction's id, the same on every retry, so a receiver can drop the "
    "duplicates that at-least-once delivery brings.",
    (
        URL, SECRET, EVENTS, MAILBOXES, REQUEST_TIMEOUT, REQUEST_RETRIES, REQUEST_ATTEMPTS,
        ORDERED, *RETRY_OPTIONS, RESPONSE_MAX_SIZE, SSL_CLIENT_CA_FILE,
    ),
)


class WebhookDriver(PushDriver):
    name = "webhook"
    option_schema = OPTION_SCHEMA

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        super().__init__(config, services)
        options = DriverOptions(config)
        url = options.text(URL)
        problem = check_http_url(url)
        if problem is not None:
            raise options.error(URL.name, problem)
        self.secrets = tuple(_signing_key(options, text) for text in options.words(SECRET))
        self.events = _event_filter(options)
        self.mailboxes = tuple(MailboxPattern.parse(p) for p in options.words(MAILBOXES))
        self.ordered = options.flag(ORDERED)
        self.target = HttpTarget.from_url(
            url,
            ssl_context=driver_ssl_context(config, services),
            ca_file=driver_ca_file(config, services),
            timeout=options.duration(REQUEST_TIMEOUT),
            attempts=options.attempts(REQUEST_RETRIES, REQUEST_ATTEMPTS),
            response_max_size=response_max_size(options),
        )

    def accepts(self, txn: PushTransaction) -> bool:
        return any(self._selected(event) for event in txn.events)

    def subscribes(self, event: str) -> bool:
        return self.events is None or event in self.events

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        return _Batch(txn, [])

    async def process_event(self, state: object, event: PushEvent) -> None:
        assert isinstance(state, _Batch)
        if self._selected(event):
            state.events.append(event)

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, _Batch)
        if not success or not state.events:
            return
        body = json.dumps(_payload(state.txn, state.events), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        headers.update(self.signature_headers(state.txn.id, int(time.time()), body))
        await self.target.send(self.services.http(), "POST", body, headers)

    def signature_headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers for one attempt (unsigned without a secret)."""
        headers = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
        if self.secrets:
            signed = f"{message_id}.{timestamp}.".encode() + body
            headers["webhook-signature"] = " ".join(
                "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
                for key in self.secrets
            )
        return headers

    def _selected(self, event: PushEvent) -> bool:
        if not self.subscribes(event.name):
            return False
        if not self.mailboxes:
            return True
        names = [event.mailbox] + ([event.mailbox_old] if event.mailbox_old else [])
        return any(p.matches(name) for p in self.mailboxes for name in names)


@dataclass(frozen=True, slots=True)
class MailboxPattern:
    """A `mailboxes` entry: a name, or a pattern with IMAP LIST's `*` and `%`."""

    text: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> MailboxPattern:
        if text.upper() == INBOX or text.upper().startswith(INBOX + "/"):
            text = INBOX + text[len(INBOX):]
        parts = (
            ".*" if char == "*" else "[^/]*" if char == "%" else re.escape(char) for char in text
        )
        return cls(text, re.compile("".join(parts)))

    def matches(self, mailbox: str) -> bool:
        return self.regex.fullmatch(mailbox) is not None


@dataclass
class _Batch:
    txn: PushTransaction
    events: list[PushEvent]


def _signing_key(options: DriverOptions, text: str) -> bytes:
    if not text.startswith(SECRET_PREFIX):
        raise options.error(
            SECRET.name,
            f"a Standard Webhooks secret starts with {SECRET_PREFIX} followed by base64 "
            "(generate one with: python -c \"import base64,os; "
            "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\")",
        )
    encoded = text[len(SECRET_PREFIX):]
    try:
        # Padding may be left off, as the Standard Webhooks libraries allow.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise options.error(
            SECRET.name, f"the part after {SECRET_PREFIX} is not valid base64"
        ) from None
    if len(key) < 16:
        raise options.error(SECRET.name, f"the key is {len(key)} bytes; use at least 16 (24-64)")
    return key


def _event_filter(options: DriverOptions) -> frozenset[str] | None:
    names = options.words(EVENTS)
    if not names:
        return None
    unknown = [name for name in names if name not in EVENT_NAMES]
    if unknown:
        raise options.error(
            EVENTS.name,
            f"unknown event {', '.join(unknown)} (known: {', '.join(EVENT_NAMES)})",
        )
    return frozenset(names)


def _payload(txn: PushTransaction, events: list[PushEvent]) -> dict[str, Any]:
    """The transaction as `mailpush events tail` shows it, with only the selected events."""
    full = transaction_to_dict(txn)
    rendered = full["events"]
    assert isinstance(rendered, list)
    selected = {id(e) for e in events}
    full["events"] = [
        shown for event, shown in zip(txn.events, rendered, strict=True) if id(event) in selected
    ]
    return full
