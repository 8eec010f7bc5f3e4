"""dlog: logs every transaction and event the way Dovecot's dlog driver does.

For debugging configurations: the lines match Dovecot's wording
(docs/dovecot-reference.md#dlog-wording), including its "Mailbox was
subscribed to" for unsubscribe. Unlike Dovecot, MessageNew/MessageAppend
data is always shown (Dovecot's dlog alone records none).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from ..events import PushEvent, PushTransaction
from .base import PushDriver
from .option_schema import DriverOptionSchema
from .shared_options import RETRY_OPTIONS

log = logging.getLogger(__name__)

_MAILBOX_LINES = {
    "MailboxCreate": "MailboxCreate: Mailbox was created",
    "MailboxDelete": "MailboxDelete: Mailbox was deleted",
    "MailboxSubscribe": "MailboxSubscribe: Mailbox was subscribed to",
    "MailboxUnsubscribe": "MailboxUnsubscribe: Mailbox was subscribed to",
}
_MESSAGE_LINES = {
    "MessageExpunge": "MessageExpunge: Message was expunged",
    "MessageRead": "MessageRead: Message was flagged as seen",
    "MessageTrash": "MessageTrash: Message was marked as deleted",
}


OPTION_SCHEMA = DriverOptionSchema(
    "dlog",
    "Writes every push transaction and its events to the log, in the words of Dovecot's "
    "dlog driver, and sends nothing: for checking which events a configuration produces. "
    "Unlike Dovecot's, it also shows the data of new and appended messages (date, sender, "
    "subject, snippet).",
    RETRY_OPTIONS,
)


class DlogDriver(PushDriver):
    name = "dlog"
    option_schema = OPTION_SCHEMA

    async def begin_txn(self, txn: PushTransaction) -> object | None:
        log.info("%s: Called begin_txn push_notification plugin hook.", txn.user)
        return txn

    async def process_event(self, state: object, event: PushEvent) -> None:
        assert isinstance(state, PushTransaction)
        for line in describe(event):
            log.info("%s: %s", state.user, line)

    async def end_txn(self, state: object, success: bool) -> None:
        assert isinstance(state, PushTransaction)
        log.info("%s: Called end_txn push_notification plugin hook.", state.user)


def describe(event: PushEvent) -> list[str]:
    """Dovecot's dlog lines for one event."""
    if event.is_mailbox_event:
        lines = [f"Mailbox data: Mailbox [{event.mailbox}]"]
        if event.name == "MailboxRename":
            lines.append(f"MailboxRename: Mailbox was renamed (old name: {event.mailbox_old})")
        else:
            lines.append(_MAILBOX_LINES[event.name])
        return lines
    lines = [
        f"Message data: Mailbox [{event.mailbox}], UID [{event.uid}],"
        f" UIDVALIDITY [{event.uid_validity}]"
    ]
    if event.name in _MESSAGE_LINES:
        lines.append(_MESSAGE_LINES[event.name])
    elif event.name in ("MessageNew", "MessageAppend") and event.message is not None:
        data = event.message
        zone = timezone(timedelta(minutes=data.tz))
        date = datetime.fromtimestamp(data.date, zone).isoformat()
        lines.append(f"{event.name}: Date [{date}]")
        lines.append(f"{event.name}: From [{data.from_}]")
        lines.append(f"{event.name}: Snippet [{data.snippet}]")
        if data.subject is not None:
            lines.append(f"{event.name}: Subject [{data.subject}]")
        lines.append(f"{event.name}: To [{data.to}]")
    elif event.name in ("FlagsSet", "FlagsClear"):
        verb = "set" if event.name == "FlagsSet" else "cleared"
        short = "set" if event.name == "FlagsSet" else "clear"
        for flag in event.flags:
            lines.append(f"{event.name}: {flag.lstrip(chr(92))} flag {verb}")
        for keyword in event.keywords:
            lines.append(f"{event.name}: Keyword {short} [{keyword}]")
    return lines
