"""webhook: one signed JSON POST per push transaction (mailpush's own driver).

Options (2.3 `webhook:url=… secret=whsec_… events=MessageNew,MessageRead`, or a
`push_notification NAME { driver = webhook  url = … }` block):

- `url` (required): http:// or https://; userinfo becomes Basic auth.
- `secret`: `whsec_<base64 key>` — requests are signed per Standard Webhooks
  (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
  HMAC-SHA256 of "id.timestamp.body">`). Several secrets separated by commas
  sign with each (key rotation); receivers accept any one.
- `events`: event names to send (default: all); `mailboxes`: mailbox names or
  patterns (`*` any text, `%` within one hierarchy level) to send events of
  (default: all). A transaction left with no event is not sent at all.
- `timeout` (default 10s), `max_retries` (default 0: retries are the
  outbox's job), `ssl_client_ca_file`, `response_max_size` (default 64k).
- `ordered` (default no): with `yes` a user's transactions are sent one after
  another in commit order, and one that keeps failing holds back the later
  ones; without it each is sent and retried on its own, so a receiver may see
  them out of order (`webhook-timestamp` is per attempt; the payload's
  `created` tells the order).

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

from ..events import EVENT_NAMES, PushEvent, PushTransaction, transaction_to_dict
from ..store.mailbox_names import INBOX
from .base import DriverConfig, DriverServices, PushDriver
from .driver_options import DriverOptions
from .http_target import HttpTarget, check_http_url, response_max_size
from .http_tls import driver_ca_file, driver_ssl_context

SECRET_PREFIX = "whsec_"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 0


class WebhookDriver(PushDriver):
    name = "webhook"

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        super().__init__(config, services)
        options = DriverOptions(config)
        url = options.text("url")
        problem = check_http_url(url)
        if problem is not None:
            raise options.error("url", problem)
        self.secrets = tuple(_signing_key(options, text) for text in options.words("secret"))
        self.events = _event_filter(options)
        self.mailboxes = tuple(MailboxPattern.parse(p) for p in options.words("mailboxes"))
        self.ordered = options.flag("ordered")
        self.target = HttpTarget.from_url(
            url,
            ssl_context=driver_ssl_context(config, services),
            ca_file=driver_ca_file(config, services),
            timeout=options.duration(
                "timeout", "http_client_request_timeout", default=DEFAULT_TIMEOUT
            ),
            attempts=options.attempts(default_retries=DEFAULT_MAX_RETRIES),
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
            "secret",
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
            "secret", f"the part after {SECRET_PREFIX} is not valid base64"
        ) from None
    if len(key) < 16:
        raise options.error("secret", f"the key is {len(key)} bytes; use at least 16 (24-64)")
    return key


def _event_filter(options: DriverOptions) -> frozenset[str] | None:
    names = options.words("events")
    if not names:
        return None
    unknown = [name for name in names if name not in EVENT_NAMES]
    if unknown:
        raise options.error(
            "events",
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
