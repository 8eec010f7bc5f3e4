"""The mail store: users' mailboxes and messages, and the push outbox beside them."""

from .base import MailStore
from .change_hub import ChangeHub
from .changes import (
    Change,
    ChangedElsewhere,
    FlagChange,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesExpunged,
    MessagesSaved,
    SavedMessage,
    SubscriptionChanged,
    TransactionRolledBack,
)
from .models import (
    DeliveryTarget,
    MailboxChanges,
    MailboxInfo,
    MailboxSnapshot,
    MailboxStatus,
    MessageInfo,
    NewMessage,
)
from .outbox import OutboxEntry, OutboxRecorder, PushOutbox
from .sqlite_store import SqliteStore

__all__ = [
    "Change",
    "ChangeHub",
    "ChangedElsewhere",
    "DeliveryTarget",
    "FlagChange",
    "FlagsChanged",
    "MailStore",
    "MailboxChanges",
    "MailboxSnapshot",
    "MailboxCreated",
    "MailboxDeleted",
    "MailboxInfo",
    "MailboxRenamed",
    "MailboxStatus",
    "MessageInfo",
    "MessagesExpunged",
    "MessagesSaved",
    "NewMessage",
    "OutboxEntry",
    "OutboxRecorder",
    "PushOutbox",
    "SavedMessage",
    "SqliteStore",
    "SubscriptionChanged",
    "TransactionRolledBack",
]
