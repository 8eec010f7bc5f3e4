"""NOTIFY (RFC 5465): what a client asked to hear, and what a change makes it hear.

`NotifySettings` is one `NOTIFY SET` as read: the selected mailbox's events
(SELECTED or SELECTED-DELAYED, with MessageNew's FETCH attributes) and the
filters for other mailboxes (PERSONAL, INBOXES, SUBSCRIBED, SUBTREE,
MAILBOXES), each with its events. Pure data and decisions, as Dovecot
2.3.19 makes them (src/imap/cmd-notify.c and imap-notify.c, and its mailbox
list index's notify code):

- A non-selected mailbox is reported by comparing its status with the one
  last seen (`changed_events`): UIDNEXT moved = appends, fewer messages =
  expunges, UNSEEN moved = seen changes, HIGHESTMODSEQ rose = modseq
  changes. The change is reported when one filter covering the mailbox
  wants one of those (`wants`), and the `* STATUS` items follow from all of
  them (`status_items_for`), HIGHESTMODSEQ only once CONDSTORE is enabled.
- PERSONAL and INBOXES both mean every mailbox of the user (Dovecot cannot
  tell inboxes apart either).
- AnnotationChange, MailboxMetadataChange and ServerMetadataChange are
  refused `NO [BADEVENT ...]`, as Dovecot refuses them.

The connection keeps the runtime state (notify_watch.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..store.mailbox_names import SEPARATOR
from .fetch import FetchPlan

__all__ = [
    "EVENT_NAMES", "MAX_NAMES_PER_FILTER", "MESSAGE_EVENTS", "UNSUPPORTED_EVENTS", "FilterKind",
    "MailboxEvents", "MailboxFilter", "NotifyEvent", "NotifySettings", "StatusSnapshot",
    "changed_events", "initial_status_items", "status_items_for", "wants",
]  # fmt: skip


class NotifyEvent(enum.IntFlag):
    """RFC 5465's events, with Dovecot's bit values (imap-notify.h)."""

    NONE = 0
    MESSAGE_NEW = 0x01
    MESSAGE_EXPUNGE = 0x02
    FLAG_CHANGE = 0x04
    ANNOTATION_CHANGE = 0x08
    MAILBOX_NAME = 0x10
    SUBSCRIPTION_CHANGE = 0x20
    MAILBOX_METADATA_CHANGE = 0x40
    SERVER_METADATA_CHANGE = 0x80


#: Event names as the client spells them (any case), in Dovecot's order.
EVENT_NAMES: tuple[tuple[str, NotifyEvent], ...] = (
    ("MessageNew", NotifyEvent.MESSAGE_NEW),
    ("MessageExpunge", NotifyEvent.MESSAGE_EXPUNGE),
    ("FlagChange", NotifyEvent.FLAG_CHANGE),
    ("AnnotationChange", NotifyEvent.ANNOTATION_CHANGE),
    ("MailboxName", NotifyEvent.MAILBOX_NAME),
    ("SubscriptionChange", NotifyEvent.SUBSCRIPTION_CHANGE),
    ("MailboxMetadataChange", NotifyEvent.MAILBOX_METADATA_CHANGE),
    ("ServerMetadataChange", NotifyEvent.SERVER_METADATA_CHANGE),
)

#: Refused with `NO [BADEVENT ...]`: no annotations, and metadata changes are not
#: recorded as changes (docs/architecture.md#metadata-rfc-5464), as in Dovecot.
UNSUPPORTED_EVENTS = (
    NotifyEvent.ANNOTATION_CHANGE
    | NotifyEvent.MAILBOX_METADATA_CHANGE
    | NotifyEvent.SERVER_METADATA_CHANGE
)

#: The message events: these make `* STATUS` responses for other mailboxes.
MESSAGE_EVENTS = (
    NotifyEvent.MESSAGE_NEW | NotifyEvent.MESSAGE_EXPUNGE | NotifyEvent.FLAG_CHANGE
    | NotifyEvent.ANNOTATION_CHANGE
)  # fmt: skip

#: More names than this in one filter group is `NO [NOTIFICATIONOVERFLOW]` (Dovecot's
#: IMAP_NOTIFY_MAX_NAMES_PER_NS): it bounds what every change is matched against.
MAX_NAMES_PER_FILTER = 100


class FilterKind(enum.Enum):
    SUBSCRIBED = "subscribed"
    #: The named mailboxes and everything below them; `""` names every mailbox.
    SUBTREE = "subtree"
    MAILBOXES = "mailboxes"


@dataclass(frozen=True, slots=True)
class MailboxFilter:
    """One group of mailboxes with the events wanted for them."""

    kind: FilterKind
    events: NotifyEvent
    names: tuple[str, ...] = ()

    def covers(self, name: str, subscribed: bool) -> bool:
        if self.kind is FilterKind.SUBSCRIBED:
            return subscribed
        if self.kind is FilterKind.MAILBOXES:
            return name in self.names
        return any(
            not root or name == root or name.startswith(root + SEPARATOR) for root in self.names
        )


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """One `NOTIFY SET` (or `NOTIFY NONE`: no filters, no selected events)."""

    filters: tuple[MailboxFilter, ...] = ()
    #: Whether SELECTED or SELECTED-DELAYED was given at all.
    selected: bool = False
    selected_events: NotifyEvent = NotifyEvent.NONE
    #: SELECTED (not -DELAYED): expunges are reported between commands too.
    immediate_expunges: bool = False
    #: MessageNew's FETCH attributes for the selected mailbox, if any.
    fetch_plan: FetchPlan | None = None
    #: `NOTIFY SET STATUS`: a `* STATUS` for each covered mailbox before the OK.
    send_status: bool = False
    #: Every event named anywhere in the command.
    used_events: NotifyEvent = NotifyEvent.NONE

    @property
    def count_changes(self) -> bool:
        """EXISTS, EXPUNGE and RECENT for the selected mailbox (MessageNew asked for)."""
        return bool(self.selected_events & NotifyEvent.MESSAGE_NEW)

    @property
    def flag_changes(self) -> bool:
        """FETCH FLAGS for flag changes in the selected mailbox (FlagChange asked for)."""
        return bool(self.selected_events & NotifyEvent.FLAG_CHANGE)

    @property
    def watches_names(self) -> bool:
        return any(
            f.events & (NotifyEvent.MAILBOX_NAME | NotifyEvent.SUBSCRIPTION_CHANGE)
            for f in self.filters
        )

    @property
    def watches_messages(self) -> bool:
        return any(f.events & MESSAGE_EVENTS for f in self.filters)

    @property
    def needs_subscriptions(self) -> bool:
        return any(f.kind is FilterKind.SUBSCRIBED for f in self.filters)

    def events_for(self, name: str, subscribed: bool) -> list[NotifyEvent]:
        """The event sets of every filter that covers mailbox `name`."""
        return [f.events for f in self.filters if f.covers(name, subscribed)]


class MailboxEvents(enum.IntFlag):
    """What changed in a mailbox, as Dovecot's mailbox list index tells it."""

    NONE = 0
    UIDVALIDITY = 0x01
    APPENDS = 0x02
    EXPUNGES = 0x04
    SEEN_CHANGES = 0x08
    MODSEQ_CHANGES = 0x10


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """The status values a change is judged by (Dovecot's mailbox_notify_node)."""

    uidvalidity: int = 0
    uidnext: int = 0
    messages: int = 0
    unseen: int = 0
    highestmodseq: int = 0


def changed_events(old: StatusSnapshot, new: StatusSnapshot) -> MailboxEvents:
    """Dovecot's mailbox_list_index_get_changed_events; a mailbox not known before
    compares with all zeros, so everything about it is new."""
    events = MailboxEvents.NONE
    if old.uidvalidity != new.uidvalidity:
        events |= MailboxEvents.UIDVALIDITY
    if old.uidnext != new.uidnext:
        events |= MailboxEvents.APPENDS
    if old.messages > new.messages:
        events |= MailboxEvents.EXPUNGES
    if old.unseen != new.unseen:
        events |= MailboxEvents.SEEN_CHANGES
    if old.highestmodseq < new.highestmodseq:
        events |= MailboxEvents.MODSEQ_CHANGES
    return events


def wants(events: NotifyEvent, changed: MailboxEvents) -> bool:
    """Whether a filter with `events` reports a mailbox whose status changed so
    (the message part of Dovecot's imap_notify_match_event)."""
    if events & (
        NotifyEvent.MESSAGE_NEW | NotifyEvent.MESSAGE_EXPUNGE | NotifyEvent.FLAG_CHANGE
    ) and changed & MailboxEvents.UIDVALIDITY:
        return True
    if events & NotifyEvent.MESSAGE_NEW and changed & MailboxEvents.APPENDS:
        return True
    if events & NotifyEvent.MESSAGE_EXPUNGE and changed & MailboxEvents.EXPUNGES:
        return True
    return bool(
        events & NotifyEvent.FLAG_CHANGE
        and changed & (MailboxEvents.SEEN_CHANGES | MailboxEvents.MODSEQ_CHANGES)
    )


def status_items_for(changed: MailboxEvents, condstore: bool) -> frozenset[str]:
    """The `* STATUS` items for a change (Dovecot's imap_notify_status); empty when
    there is nothing to say (a keyword change without CONDSTORE)."""
    items: set[str] = set()
    if condstore:
        items.add("HIGHESTMODSEQ")
    if changed & MailboxEvents.UIDVALIDITY:
        items |= {"UIDVALIDITY", "UIDNEXT", "MESSAGES", "UNSEEN"}
    if changed & (MailboxEvents.APPENDS | MailboxEvents.EXPUNGES):
        items |= {"UIDNEXT", "MESSAGES", "UNSEEN"}
    if changed & MailboxEvents.SEEN_CHANGES:
        items.add("UNSEEN")
    return frozenset(items)


def initial_status_items(used_events: NotifyEvent) -> frozenset[str]:
    """`NOTIFY SET STATUS`'s items (Dovecot's imap_notify_box_send_status)."""
    items = {"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"}
    if used_events & (NotifyEvent.FLAG_CHANGE | NotifyEvent.ANNOTATION_CHANGE):
        items.add("HIGHESTMODSEQ")
    return frozenset(items)
