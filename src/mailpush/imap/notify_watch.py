"""NOTIFY's other mailboxes at run time: change records in, `* STATUS` and `* LIST` out.

The connection hands every change of its user to `MailboxWatch.on_change`
(the same change hub records IDLE uses, `ChangedElsewhere` included). The
watch keeps, for each mailbox a message filter covers, the status it last
reported from (Dovecot's mailbox list index node); after a change it reads
the mailbox's status from the store, compares (`notify.changed_events`) and
says `* STATUS` with the items that change calls for, when a filter wants
it. Mailbox names (MailboxName) and subscriptions (SubscriptionChange) are
told as `* LIST` responses, as Dovecot 2.3.19 writes them: no attributes
but `\\NonExistent` for a deleted mailbox and `\\Subscribed` for a new
subscription, and `("OLDNAME" (old))` after a rename.

The statuses compared with are Dovecot's too: those of the mailboxes that
existed when NOTIFY was set, kept per name. A mailbox created (or renamed to
a new name) since has none, and each of its changes is told as new in every
way (UIDVALIDITY UIDNEXT MESSAGES UNSEEN), as Dovecot's list index tells it;
a deleted mailbox's status is kept, so one created again under its name is
told as a new UIDVALIDITY.

One task at a time works through what is pending, in the order the changes
came; several changes to one mailbox before its turn make one `* STATUS`
(Dovecot bundles for 500 ms). What is pending is bounded
(`MAX_PENDING`): past it the client is told `* OK [NOTIFICATIONOVERFLOW]`
and the watch of other mailboxes stops (RFC 5465 §5.8 has NOTIFY stop then). The selected
mailbox's messages are not told here: they come as EXISTS, EXPUNGE and
FETCH (connection.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import MailboxNotFoundError, StoreError, UnknownUserError
from ..store import (
    Change,
    ChangedElsewhere,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MailStore,
    MessagesExpunged,
    MessagesSaved,
    SubscriptionChanged,
)
from ..store.mailbox_names import is_inside
from ..store.models import MailboxStatus
from .notify import (
    MESSAGE_EVENTS,
    NotifyEvent,
    NotifySettings,
    StatusSnapshot,
    changed_events,
    status_items_for,
    wants,
)
from .responses import mailbox_name
from .status_response import format_status, status_items

log = logging.getLogger(__name__)

__all__ = ["MAX_PENDING", "MailboxWatch"]

#: Notifications waiting for their turn beyond which NOTIFY is dropped with
#: `* OK [NOTIFICATIONOVERFLOW]` (one per mailbox operation; status changes coalesce).
MAX_PENDING = 10_000


@dataclass(frozen=True, slots=True)
class _ListNotice:
    """A `* LIST` to send: its attributes (none, `\\Subscribed` or `\\NonExistent`)."""

    name: str
    attributes: str = ""
    old_name: str | None = None


class MailboxWatch:
    """The non-selected mailboxes one NOTIFY covers, for one connection."""

    def __init__(
        self,
        settings: NotifySettings,
        store: MailStore,
        user: str,
        *,
        emit: Callable[[bytes], None],
        selected: Callable[[], str | None],
        condstore: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self._store = store
        self._user = user
        self._write = emit
        self._selected = selected
        self._condstore = condstore
        self._baselines: dict[str, StatusSnapshot] = {}
        self._subscribed: set[str] = set()
        #: Work in arrival order: a mailbox name (its status) or a `* LIST` to send.
        self._queue: deque[str | _ListNotice] = deque()
        self._queued_status: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def prime(self) -> list[MailboxStatus]:
        """Read the covered mailboxes' status (what later changes compare with);
        return them, for `NOTIFY SET STATUS` (as Dovecot: every mailbox a filter
        covers, once any filter has message events)."""
        settings = self.settings
        if settings.needs_subscriptions or settings.watches_names:
            self._subscribed = set(await self._store.subscriptions(self._user))
        found: list[MailboxStatus] = []
        if not settings.watches_messages:
            return found
        for index, box in enumerate(await self._store.list_mailboxes(self._user)):
            if index % 64 == 63:
                await asyncio.sleep(0)
            if not box.selectable or not self.settings.events_for(
                box.name, box.name in self._subscribed
            ):
                continue
            try:
                status = await self._store.status(self._user, box.name)
            except (MailboxNotFoundError, UnknownUserError):
                continue
            self._baselines[box.name] = _snapshot(status)
            found.append(status)
        return found

    def _emit(self, line: bytes) -> None:
        if not self._closed:
            self._write(line)

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()

    # --- changes in ------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        if self._closed:
            return
        if isinstance(change, MessagesSaved | FlagsChanged | MessagesExpunged):
            self._status_changed(change.mailbox)
        elif isinstance(change, ChangedElsewhere):
            if change.mailbox is not None:
                self._status_changed(change.mailbox)
            else:
                for name in list(self._baselines):
                    self._status_changed(name)
        elif isinstance(change, MailboxCreated):
            self._name_changed(change.mailbox, _ListNotice(change.mailbox))
        elif isinstance(change, MailboxDeleted):
            self._name_changed(change.mailbox, _ListNotice(change.mailbox, "\\NonExistent"))
        elif isinstance(change, MailboxRenamed):
            self._renamed(change.old, change.new)
            self._name_changed(change.new, _ListNotice(change.new, old_name=change.old))
        elif isinstance(change, SubscriptionChanged):
            if change.subscribed:
                self._subscribed.add(change.mailbox)
            else:
                self._subscribed.discard(change.mailbox)
            if self._wants_event(change.mailbox, NotifyEvent.SUBSCRIPTION_CHANGE):
                attributes = "\\Subscribed" if change.subscribed else ""
                self._enqueue(_ListNotice(change.mailbox, attributes))

    def _status_changed(self, name: str) -> None:
        if name in self._queued_status or not self._message_events(name):
            return
        self._queued_status.add(name)
        self._enqueue(name)

    def _name_changed(self, name: str, notice: _ListNotice) -> None:
        if self._wants_event(name, NotifyEvent.MAILBOX_NAME):
            self._enqueue(notice)

    def _enqueue(self, item: str | _ListNotice) -> None:
        if len(self._queue) >= MAX_PENDING:
            self._emit(b"* OK [NOTIFICATIONOVERFLOW] Too many notifications\r\n")
            self.close()
            return
        self._queue.append(item)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work())

    def _renamed(self, old: str, new: str) -> None:
        for known in list(self._subscribed):
            if known == old or is_inside(known, old):
                self._subscribed.discard(known)
                self._subscribed.add(new + known[len(old) :])

    def _message_events(self, name: str) -> NotifyEvent:
        events = NotifyEvent.NONE
        for wanted in self.settings.events_for(name, name in self._subscribed):
            events |= wanted
        return events & MESSAGE_EVENTS

    def _wants_event(self, name: str, event: NotifyEvent) -> bool:
        return any(
            wanted & event for wanted in self.settings.events_for(name, name in self._subscribed)
        )

    # --- notifications out -----------------------------------------------------------

    async def _work(self) -> None:
        while self._queue and not self._closed:
            item = self._queue.popleft()
            try:
                if isinstance(item, _ListNotice):
                    self._send_list(item)
                else:
                    self._queued_status.discard(item)
                    await self._send_status(item)
            except StoreError:
                log.warning("NOTIFY: reading %r failed", item, exc_info=True)
                self._emit(b"* NO NOTIFY error, some events may have got lost\r\n")

    async def _send_status(self, name: str) -> None:
        try:
            status = await self._store.status(self._user, name)
        except (MailboxNotFoundError, UnknownUserError):
            return
        now = _snapshot(status)
        before = self._baselines.get(name)
        changed = changed_events(before or StatusSnapshot(), now)
        if before is not None:
            self._baselines[name] = now
        if not changed or name == self._selected():
            return
        if not any(
            wants(events, changed)
            for events in self.settings.events_for(name, name in self._subscribed)
        ):
            return
        items = status_items(status_items_for(changed, self._condstore()))
        if items:
            self._emit(format_status(status, items))

    def _send_list(self, notice: _ListNotice) -> None:
        line = (
            b"* LIST (" + notice.attributes.encode() + b') "/" ' + mailbox_name(notice.name)
        )
        if notice.old_name is not None:
            line += b' ("OLDNAME" (' + mailbox_name(notice.old_name) + b"))"
        self._emit(line + b"\r\n")


def _snapshot(status: MailboxStatus) -> StatusSnapshot:
    return StatusSnapshot(
        status.uidvalidity, status.uidnext, status.messages, status.unseen, status.highestmodseq
    )
