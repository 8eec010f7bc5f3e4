"""ox: new-mail notifications for OX App Suite, exactly as Dovecot's OX driver sends them.

Per user opt-in: OX App Suite sets the server METADATA entry
`/private/vendor/vendor.dovecot/http-notify` (IMAP SETMETADATA, or `mailpush
metadata set`) to a TAB-separated `key=value` list holding `user=<userId>@
<contextId>`. For each message delivered to that user's INBOX (MessageNew; no
other mailbox, no other event: docs/dovecot-reference.md#opt-in-and-what-is-sent)
one HTTP PUT goes to `url` with Basic auth from its userinfo and, in this
key order,
`{"user","event":"messageNew","folder","imap-uidvalidity","imap-uid","from",
"subject","snippet","unseen"}`: From and Subject raw (encoded words kept),
`unseen` the INBOX's count when the push is sent.

The options are declared once, in `OPTION_SCHEMA` (docs/drivers/ox.md is
generated from it).

Unlike Dovecot, failed requests are not lost: after the attempts they go back
to the outbox and are retried, but a new-mail notification is worth little
late and a repeat shows twice, so by default at most 3 times in all
(`delivery_attempts`), 10 s then 20 s apart, for at most 15 minutes
(`max_age`). Notifications are independent of each other (`ordered =
False`): one that keeps failing never holds back the user's later ones. The
2.4 `cache_ttl` bug (milliseconds read as seconds) is not reproduced.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..config.schema import SettingType
from ..errors import MailboxNotFoundError
from ..events import PushEvent, PushTransaction
from ..store.mailbox_names import INBOX
from .base import DriverServices, PushDriver
from .dovecot_json import JsonField, dovecot_json_object
from .driver_config import DriverConfig
from .driver_options import DriverOptions
from .option_schema import DriverOptionSchema, declare_option
from .per_user_endpoint import (
    REQUEST_ATTEMPTS,
    REQUEST_RETRIES,
    PerUserEndpoint,
    checked_url_template,
)
from .shared_options import RESPONSE_MAX_SIZE, SSL_CLIENT_CA_FILE, retry_options

log = logging.getLogger(__name__)

#: The server METADATA entry OX App Suite writes to opt a user in.
OPT_IN_ENTRY = "/private/vendor/vendor.dovecot/http-notify"

URL = declare_option(
    "url",
    SettingType.STRING,
    "",
    "The http-notify endpoint, `https://LOGIN:PASS@HOST:8009/preliminary/http-notify/v1/"
    "notify`: the userinfo is sent as Basic auth, `%` variables are replaced per user and "
    "`%%` is a literal `%`, as for chronos.",
    aliases=("push_notification_ox_url",),
    required=True,
)
USER_FROM_METADATA = declare_option(
    "user_from_metadata",
    SettingType.BOOL,
    "no",
    "Send the opt-in's `user` (OX's `userId@contextId`) instead of the mailpush user "
    "name. In 2.3 it is written bare: `ox:url=... user_from_metadata`.",
    aliases=("push_notification_ox_user_from_metadata",),
)
CACHE_LIFETIME = declare_option(
    "cache_lifetime",
    SettingType.DURATION,
    "60s",
    "How long an opt-in value is reused before the entry is read again, so an opt-out "
    "takes up to this long; a missing entry is never cached. `cache_ttl` is its 2.4 name.",
    aliases=("cache_ttl", "push_notification_ox_cache_ttl"),
    bare_unit=None,
)
TIMEOUT_MSECS = declare_option(
    "timeout_msecs",
    SettingType.DURATION,
    "2000",
    "Dovecot 2.3's request timeout; wins over `http_client_request_timeout`.",
    bare_unit="ms",
)
HTTP_CLIENT_REQUEST_TIMEOUT = declare_option(
    "http_client_request_timeout",
    SettingType.DURATION,
    "2s",
    "How long one request may take before it counts as failed (and is not repeated at "
    "once: it may have arrived).",
    bare_unit=None,
)

OPTION_SCHEMA = DriverOptionSchema(
    "ox",
    "Tells OX App Suite about new mail, as Dovecot's OX driver does. A user opts in when "
    "OX App Suite writes the server METADATA entry "
    "`/private/vendor/vendor.dovecot/http-notify`; then each message delivered to that "
    "user's INBOX is announced by a HTTP PUT of its sender, subject, snippet and the "
    "INBOX's unseen count. Failed notifications are retried a few times, briefly: late "
    "they are worth little.",
    (
        URL,
        USER_FROM_METADATA,
        CACHE_LIFETIME,
        TIMEOUT_MSECS,
        HTTP_CLIENT_REQUEST_TIMEOUT,
        REQUEST_RETRIES,
        REQUEST_ATTEMPTS,
        *retry_options(
            delivery_attempts="3", retry_initial="10s", retry_max_interval="1min", max_age="15min"
        ),
        RESPONSE_MAX_SIZE,
        SSL_CLIENT_CA_FILE,
    ),
)

CONTENT_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class OptIn:
    """A user's parsed opt-in: the OX user (`<userId>@<contextId>`) to notify."""

    ox_user: str


class OxDriver(PushDriver):
    name = "ox"
    ordered = False
    option_schema = OPTION_SCHEMA

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        super().__init__(config, services)
        options = DriverOptions(config)
        found = options.find(URL)
        if found is None or not found[1].strip():
            raise options.error(
                "url",
                "Driver requires the url parameter: push_notification_driver = "
                "ox:url=https://LOGIN:PASS@HOST:8009/preliminary/http-notify/v1/notify, "
                "or url = … in a push_notification block",
            )
        template = checked_url_template(
            options, found[0], f"{config.instance} {found[0]}", found[1].strip()
        )
        self.user_from_metadata = options.flag(USER_FROM_METADATA)
        # Dovecot insists on a unit here ("missing units"); so does mailpush.
        self.cache_lifetime = options.duration(CACHE_LIFETIME)
        self.endpoint = PerUserEndpoint.for_driver(
            template,
            options,
            config,
            services,
            timeout=(
                options.duration(TIMEOUT_MSECS)
                if options.find(TIMEOUT_MSECS) is not None
                else options.duration(HTTP_CLIENT_REQUEST_TIMEOUT)
            ),
        )
        #: user → (opt-in value, when it was read); only values found are kept.
        self._opt_ins: dict[str, tuple[str, float]] = {}

    # --- the driver interface ---------------------------------------------------------------

    def accepts(self, txn: PushTransaction) -> bool:
        """Only deliveries to INBOX can produce a request; nothing else is queued."""
        return txn.mailbox == INBOX and any(e.name == "MessageNew" for e in txn.events)

    def subscribes(self, event: str) -> bool:
        return event == "MessageNew"

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        if txn.mailbox != INBOX:
            log.debug("%s: Skipped because %s is not a watched mailbox", txn.user, txn.mailbox)
            return None
        value = await self._opt_in_value(txn.user)
        if value is None:
            log.debug(
                "%s: Skipped because not active (%s METADATA not set)", txn.user, OPT_IN_ENTRY
            )
            return None
        ox_user = parse_opt_in(value).get("user", "")
        if not ox_user:
            log.error(
                "%s: No user provided in config (%s holds no user=…); not notifying",
                txn.user, OPT_IN_ENTRY,
            )
            return None
        return _OxTxn(txn, OptIn(ox_user))

    async def process_event(self, state: object, event: PushEvent) -> None:
        assert isinstance(state, _OxTxn)
        message = event.message
        if event.name != "MessageNew" or message is None:
            return
        txn = state.txn
        fields: list[JsonField] = [
            ("user", state.opt_in.ox_user if self.user_from_metadata else txn.user),
            ("event", "messageNew"),
            ("folder", event.mailbox),
            ("imap-uidvalidity", event.uid_validity or 0),
            ("imap-uid", event.uid or 0),
        ]
        if message.from_:
            fields.append(("from", message.from_))
        if message.subject_raw is not None:
            fields.append(("subject", message.subject_raw))
        fields.append(("snippet", message.snippet))
        unseen = await self._unseen(txn.user, event.mailbox)
        if unseen is not None:
            fields.append(("unseen", unseen))
        await self.endpoint.target(txn.user).send(
            self.services.http(), "PUT", dovecot_json_object(fields),
            {"Content-Type": CONTENT_TYPE},
        )

    # --- private --------------------------------------------------------------------------

    async def _opt_in_value(self, user: str) -> str | None:
        now = time.monotonic()
        cached = self._opt_ins.get(user)
        if cached is not None and cached[1] + self.cache_lifetime > now:
            return cached[0]
        value = await self.services.store.get_metadata(user, None, OPT_IN_ENTRY)
        if value is None:
            self._opt_ins.pop(user, None)
        else:
            self._opt_ins[user] = (value, now)
        return value

    async def _unseen(self, user: str, mailbox: str) -> int | None:
        try:
            return (await self.services.store.status(user, mailbox)).unseen
        except MailboxNotFoundError as exc:
            log.error("%s: mailbox status of %s failed: %s; unseen omitted", user, mailbox, exc)
            return None


@dataclass(frozen=True, slots=True)
class _OxTxn:
    txn: PushTransaction
    opt_in: OptIn


def parse_opt_in(value: str) -> dict[str, str]:
    """The opt-in value: TAB-separated `key=value` pairs, Dovecot-tab-escaped."""
    pairs: dict[str, str] = {}
    for item in value.split("\t"):
        key, eq, text = _tab_unescape(item).partition("=")
        if eq:
            pairs[key] = text
    return pairs


_TAB_ESCAPES = {"1": "\x01", "0": "\x00", "t": "\t", "r": "\r", "n": "\n"}


def _tab_unescape(text: str) -> str:
    """Dovecot's str_tabunescape: \\x01 followed by 1, 0, t, r or n."""
    if "\x01" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\x01" and i + 1 < len(text):
            out.append(_TAB_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)
