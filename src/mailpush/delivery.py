"""Delivering one received message to one local user: the part LMTP and `deliver` share.

A front end (the LMTP server, the `mailpush deliver` command) has already
resolved the recipient to a user; this module decides which mailbox(es) the
message goes to and asks the store to file it. Filing is a delivery in
Dovecot's sense (POST_SESSION), so the push framework reports MessageNew.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import MailboxNotFoundError
from .logs.delivery_line import delivery_line
from .logs.session import current_session
from .logs.settings import DEFAULT_DELIVER_LOG_FORMAT
from .store import DeliveryTarget, MailStore, MessagesSaved
from .store.mailbox_names import INBOX

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    user: str
    raw: bytes
    #: The envelope recipient as given (`alice+work@example.org`).
    recipient: str
    #: The `+detail` part of the recipient, if any.
    detail: str | None = None
    #: An explicit mailbox (`mailpush deliver -m`), overriding the detail mailbox.
    mailbox: str | None = None
    #: The envelope sender (MAIL FROM); "" for the null sender `<>`, None when unknown.
    sender: str | None = None


class FilingPlanner(Protocol):
    """Chooses the mailboxes a message is filed into (Sieve plugs in here)."""

    async def plan(self, request: DeliveryRequest) -> Sequence[DeliveryTarget]: ...


class DefaultFilingPlanner:
    """INBOX, or the `+detail` mailbox when `lmtp_save_to_detail_mailbox` is on.

    Like Dovecot, a detail or `-m` mailbox that does not exist falls back to
    INBOX unless `autocreate` is set.
    """

    def __init__(
        self, store: MailStore, *, save_to_detail_mailbox: bool = False, autocreate: bool = False
    ) -> None:
        self._store = store
        self._save_to_detail = save_to_detail_mailbox
        self._autocreate = autocreate

    async def plan(self, request: DeliveryRequest) -> Sequence[DeliveryTarget]:
        wanted = request.mailbox
        if wanted is None and self._save_to_detail and request.detail:
            wanted = request.detail
        if wanted is None or wanted.upper() == INBOX:
            return [DeliveryTarget(INBOX)]
        if self._autocreate:
            return [DeliveryTarget(wanted, create=True)]
        try:
            await self._store.mailbox(request.user, wanted)
        except MailboxNotFoundError:
            log.info("delivery to %s: mailbox %r does not exist, using INBOX", request.user, wanted)
            return [DeliveryTarget(INBOX)]
        return [DeliveryTarget(wanted)]


class DeliveryAgent:
    """Files messages for local users; the store makes each filing durable.

    Each filing is logged as one `deliver_log_format` line (logs/delivery_line.py),
    under the prefix of the delivery's log session (`lmtp(alice)<pid><session>`).
    """

    def __init__(
        self,
        store: MailStore,
        planner: FilingPlanner,
        log_format: str = DEFAULT_DELIVER_LOG_FORMAT,
    ) -> None:
        self._store = store
        self._planner = planner
        self._log_format = log_format

    async def deliver(self, request: DeliveryRequest) -> list[MessagesSaved]:
        targets = await self._planner.plan(request)
        if not targets:
            # A Sieve `discard`: accepted, and deliberately not stored (as Dovecot).
            self._log_filed(request, "discarded by Sieve (discard action), nothing stored")
            return []
        saved = await self._store.deliver(request.user, request.raw, targets)
        for result in saved:
            self._log_filed(request, f"saved mail to {result.mailbox}")
        return saved

    def _log_filed(self, request: DeliveryRequest, status: str) -> None:
        line = delivery_line(
            self._log_format, request.raw, request.sender, status, current_session()
        )
        log.info("%s", line)
