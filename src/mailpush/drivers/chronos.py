"""chronos: calendar invitations pushed to OX App Suite's iTIP endpoint, as Dovecot Pro does.

For every delivered message (MessageNew, any folder) that carries a
text/calendar part or an `.ics` attachment, one HTTP PUT of
`{"user","event","folder","body"}` with the full raw message, to
`/chronos/v1/itip/pushmail` on the OX node, with Basic auth from the URL
(docs/dovecot-reference.md#chronos-driver).

Where mailpush differs from Dovecot's driver
(docs/dovecot-reference.md#one-push-per-message-id), on purpose:
- one push per Message-ID per user is enforced durably (a store table, kept
  for `dedup_retention`), not per LMTP session in memory, so a restart or a
  retry never pushes the same invitation twice;
- plain and oversized mail is filtered while the delivery commits (the event
  already knows size and calendar parts), so no outbox row is written for it;
- `event` is `MessageNew` as Dovecot Pro's Chronos documentation shows
  (Dovecot's code sends `messageNew`; the OX receiver compares
  case-insensitively: docs/dovecot-reference.md#request);
- failed requests are retried through the outbox instead of being lost
  after `max_retries`, but few times: each retry may import the invitation
  again (a timeout may hide a request that arrived), so by default a
  notification is attempted at most 3 times (`delivery_attempts`), 30 s,
  then 60 s apart, for at most an hour (`max_age`);
- invitations are independent of each other (`ordered = False`): one that
  keeps failing never holds back the user's later ones.

The options are declared once, in `OPTION_SCHEMA` (docs/drivers/chronos.md is
generated from it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..config import parse_size
from ..config.schema import SettingType
from ..errors import InvalidValueError, MailboxNotFoundError, MessageNotFoundError, SettingError
from ..events import PushEvent, PushTransaction
from .base import DriverServices, PushDriver
from .dovecot_json import dovecot_json_object
from .driver_config import DriverConfig
from .driver_options import DriverOptions
from .option_schema import DriverOptionSchema, declare_option
from .per_user_endpoint import (
    REQUEST_ATTEMPTS,
    REQUEST_RETRIES,
    PerUserEndpoint,
    checked_url_template,
)
from .shared_options import RESPONSE_MAX_SIZE, SSL_CLIENT_CA_FILE, TIMEOUT, retry_options

log = logging.getLogger(__name__)

#: Plugin settings of the 2.3-style key/value form (`plugin { push_notification_chronos_url = … }`).
PLUGIN_URL = "push_notification_chronos_url"
PLUGIN_MSG_MAX_SIZE = "push_notification_chronos_msg_max_size"

URL = declare_option(
    "url",
    SettingType.STRING,
    "",
    "The iTIP endpoint, `https://LOGIN:PASS@HOST:8009/chronos/v1/itip/pushmail`: the "
    "userinfo is sent as Basic auth (percent-encode special characters; the password is "
    "masked in logs). `%u`, `%n`, `%d`, `%{user}`, `%{username}`, `%{domain}` (and "
    "`%L...`) are replaced per user, so a literal `%` is written `%%`. The plugin or "
    f"(2.4) top-level setting `{PLUGIN_URL}` is used when the driver sets none.",
    aliases=(PLUGIN_URL,),
    required=True,
)
MSG_MAX_SIZE = declare_option(
    "msg_max_size",
    SettingType.SIZE,
    "1M",
    "Larger messages are not pushed. The plugin or (2.4) top-level setting "
    f"`{PLUGIN_MSG_MAX_SIZE}` is used when the driver sets none.",
    aliases=(PLUGIN_MSG_MAX_SIZE,),
)
DEDUP_RETENTION = declare_option(
    "dedup_retention",
    SettingType.DURATION,
    "7d",
    "How long a pushed Message-ID is remembered: a new delivery of the same invitation "
    "(another copy, a resend) within it is not pushed again.",
)

REQUEST_TIMEOUT = TIMEOUT.with_default("2s").with_bare_unit("ms")

OPTION_SCHEMA = DriverOptionSchema(
    "chronos",
    "Pushes calendar invitations to OX App Suite: every delivered message carrying a "
    "`text/calendar` part or an `.ics` attachment is sent whole, with a HTTP PUT, to the "
    "Chronos iTIP endpoint, which imports it into the recipient's calendar. One push per "
    "Message-ID and user; failed pushes are retried a few times only, because a repeat "
    "may import the invitation again.",
    (
        URL,
        MSG_MAX_SIZE,
        REQUEST_TIMEOUT,
        REQUEST_RETRIES,
        REQUEST_ATTEMPTS,
        *retry_options(
            delivery_attempts="3", retry_initial="30s", retry_max_interval="5min", max_age="1h"
        ),
        RESPONSE_MAX_SIZE,
        DEDUP_RETENTION,
        SSL_CLIENT_CA_FILE,
    ),
)

CONTENT_TYPE = "application/json; charset=utf-8"
EVENT = "MessageNew"


class ChronosDriver(PushDriver):
    name = "chronos"
    ordered = False
    option_schema = OPTION_SCHEMA

    def __init__(self, config: DriverConfig, services: DriverServices) -> None:
        super().__init__(config, services)
        options = DriverOptions(config)
        plugin = services.plugin_settings()
        found = options.find(URL)
        if found is not None:
            setting, url = f"{config.instance} {found[0]}", found[1].strip()
        else:
            setting, url = PLUGIN_URL, plugin.get(PLUGIN_URL, "").strip()
        if not url:
            raise options.error(
                "url",
                "Driver requires the url parameter: set it with "
                "push_notification_driver = chronos:url=https://LOGIN:PASS@HOST:8009"
                "/chronos/v1/itip/pushmail, url = … in a push_notification block, or "
                f"{PLUGIN_URL} in plugin {{}} or (2.4) at the top level",
            )
        template = checked_url_template(options, setting.rpartition(" ")[2], setting, url)
        self.msg_max_size = self._msg_max_size(options, plugin)
        self.endpoint = PerUserEndpoint.for_driver(
            template,
            options,
            config,
            services,
            timeout=options.duration(REQUEST_TIMEOUT),
        )
        self.dedup_retention = options.duration(DEDUP_RETENTION)

    # --- the driver interface ---------------------------------------------------------------

    def accepts(self, txn: PushTransaction) -> bool:
        return any(self._is_invitation(txn.user, event) for event in txn.events)

    def subscribes(self, event: str) -> bool:
        return event == "MessageNew"

    async def process_event(self, state: object, event: PushEvent) -> None:
        assert isinstance(state, PushTransaction)
        txn = state
        if not self._is_invitation(txn.user, event, quiet=True):
            return
        assert event.message is not None and event.uid is not None
        raw = await self._raw_message(txn.user, event)
        if raw is None:
            return
        message_id = (event.message.message_id or "").strip()
        if message_id and not await self.services.store.claim_pushed_message_id(
            self.config.instance, txn.user, message_id, f"{txn.id}/{event.uid}",
            self.dedup_retention,
        ):
            log.debug(
                "%s: Message-ID %s is a duplicate - not sending push notification",
                txn.user, message_id,
            )
            return
        body = dovecot_json_object(
            [
                ("user", txn.user),
                ("event", EVENT),
                ("folder", event.mailbox),
                ("body", raw.decode("utf-8", "replace")),
            ]
        )
        await self.endpoint.target(txn.user).send(
            self.services.http(), "PUT", body, {"Content-Type": CONTENT_TYPE}
        )

    # --- private --------------------------------------------------------------------------

    def _is_invitation(self, user: str, event: PushEvent, quiet: bool = False) -> bool:
        """A delivered message with a calendar part, within `msg_max_size`."""
        message = event.message
        if event.name != "MessageNew" or message is None:
            return False
        if not message.has_calendar:
            if not quiet:
                log.debug("%s: %s UID %s: Mail does not contain calendar invite",
                          user, event.mailbox, event.uid)
            return False
        if message.size > self.msg_max_size:
            if not quiet:
                log.debug(
                    "%s: %s UID %s: Mail exceeds configured max size (%d > %d bytes, "
                    "msg_max_size) - not sending push notification",
                    user, event.mailbox, event.uid, message.size, self.msg_max_size,
                )
            return False
        return True

    async def _raw_message(self, user: str, event: PushEvent) -> bytes | None:
        """The message as stored, or None if it is gone (expunged before this push ran)."""
        assert event.uid is not None
        try:
            status = await self.services.store.status(user, event.mailbox)
            # A mailbox deleted and created again reuses UIDs under a new UIDVALIDITY.
            if status.uidvalidity != event.uid_validity:
                raise MessageNotFoundError(event.mailbox, event.uid)
            return await self.services.store.raw_message(user, event.mailbox, event.uid)
        except (MessageNotFoundError, MailboxNotFoundError):
            log.info(
                "%s: %s UID %d was expunged before its push notification could be sent; "
                "nothing sent", user, event.mailbox, event.uid,
            )
            return None

    @staticmethod
    def _msg_max_size(options: DriverOptions, plugin: Mapping[str, str]) -> int:
        text = plugin.get(PLUGIN_MSG_MAX_SIZE, "").strip()
        if options.find(MSG_MAX_SIZE) is not None or not text:
            return options.size(MSG_MAX_SIZE)
        try:
            size = parse_size(text)
        except InvalidValueError as exc:
            raise SettingError(PLUGIN_MSG_MAX_SIZE, str(exc)) from None
        if size <= 0:
            raise SettingError(PLUGIN_MSG_MAX_SIZE, f"must be more than 0, got {text!r}")
        return size
