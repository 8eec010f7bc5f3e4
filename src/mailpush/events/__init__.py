"""Push events: Dovecot's twelve event types, how store changes map to them, their JSON form.

Everything a driver or the dispatcher needs from this package is importable
from here; the submodules are an implementation detail of layout.
"""

from mailpush.events.mapping import (
    compact_transactions_for_operation,
    event_counts,
    events_for_change,
    expand,
    transactions_for_change,
    transactions_for_operation,
)
from mailpush.events.model import (
    EVENT_NAMES,
    MAILBOX_EVENTS,
    CompactTransaction,
    EventName,
    MessageData,
    PushEvent,
    PushTransaction,
)
from mailpush.events.serialization import (
    COMPACT_FORMAT_VERSION,
    FORMAT_VERSION,
    EventFormatError,
    compact_transaction_to_json,
    transaction_from_json,
    transaction_to_dict,
    transaction_to_json,
)

__all__ = [
    "COMPACT_FORMAT_VERSION",
    "EVENT_NAMES",
    "FORMAT_VERSION",
    "MAILBOX_EVENTS",
    "EventFormatError",
    "CompactTransaction",
    "EventName",
    "MessageData",
    "PushEvent",
    "PushTransaction",
    "compact_transaction_to_json",
    "event_counts",
    "events_for_change",
    "expand",
    "transaction_from_json",
    "transaction_to_dict",
    "transaction_to_json",
    "compact_transactions_for_operation",
    "transactions_for_change",
    "transactions_for_operation",
]
