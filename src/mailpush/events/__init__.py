"""Push events: Dovecot's twelve event types, how store changes map to them, their JSON form.

Everything a driver or the dispatcher needs from this package is importable
from here; the submodules are an implementation detail of layout.
"""

from mailpush.events.mapping import transactions_for_change, transactions_for_operation
from mailpush.events.model import (
    EVENT_NAMES,
    MAILBOX_EVENTS,
    EventName,
    MessageData,
    PushEvent,
    PushTransaction,
)
from mailpush.events.serialization import (
    FORMAT_VERSION,
    EventFormatError,
    transaction_from_json,
    transaction_to_dict,
    transaction_to_json,
)

__all__ = [
    "EVENT_NAMES",
    "FORMAT_VERSION",
    "MAILBOX_EVENTS",
    "EventFormatError",
    "EventName",
    "MessageData",
    "PushEvent",
    "PushTransaction",
    "transaction_from_json",
    "transaction_to_dict",
    "transaction_to_json",
    "transactions_for_change",
    "transactions_for_operation",
]
