"""The outbox recorder: store change records → push transactions, inside the commit.

Runs on the store's writer thread while the mail change's transaction is
open, so it must be cheap: decide one operation's Dovecot-style push
transactions (`events.mapping`, one operation group), name the driver
instances that must deliver each one, and store each in its compact form —
the change record with the transaction's envelope (events/serialization.py,
version 2). The events themselves are made by the dispatcher when it reads
the row, outside the transaction: a STORE on 10,000 messages commits one
row holding 10,000 flag changes, not 20,000 encoded events.

A driver that does not override `PushDriver.accepts` takes every
transaction, and no event is made for it here. One that filters is first
asked, by event name, whether it subscribes to any of the transaction's
events (counted without making them, `events.mapping.event_counts`); only
if so are the events made, once per transaction, for its `accepts`. So the
chronos and ox drivers, which take MessageNew only, never cost a flag
change's expansion; a webhook subscribed to flag events does.
The one exception is a mailbox's status: when a driver that reads it
(`PushDriver.wants_mailbox_status`, the Lua driver's `mailbox:status()`)
takes a save transaction (MessageNew, MessageAppend: where scripts read it,
like the events example script of Dovecot's Lua push documentation,
docs/dovecot-reference.md#http-requests-of-the-example-scripts), the status
its commit leaves is read in the same database transaction (one aggregate
query) and travels with it, so
the script sees what Dovecot's synchronous call would — not whatever the
mailbox holds when the push finally runs. Flag changes and expunges do not
pay for that query; a script reads their mailbox's status live.

Which instances that is depends on the service that made the change, as in
Dovecot, where the push plugins run only in the processes whose effective
`mail_plugins` load them (``protocol lmtp { mail_plugins = $mail_plugins
push_notification }`` pushes deliveries and not IMAP changes). `PushServicePlan`
holds that choice, computed once from the settings; a transaction of a service
that loads no plugin for a driver never enters the outbox for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..config import Settings
from ..config.settings import PROTOCOL_SERVICES
from ..drivers.base import PushDriver
from ..errors import MailboxNotFoundError
from ..events import (
    CompactTransaction,
    EventName,
    PushTransaction,
    compact_transaction_to_json,
    compact_transactions_for_operation,
    event_counts,
    expand,
)
from ..store.changes import Change, MessagesSaved
from ..store.outbox import OutboxEntry, StatusAt
from .metrics import PushMetrics

__all__ = ["PushRecorder", "PushServicePlan", "push_service_plan", "required_plugins"]

#: What every driver needs loaded: the push-notification framework plugin.
_FRAMEWORK_PLUGINS = ("push_notification",)
#: Drivers that are plugins of their own in Dovecot, with what they need on top.
_DRIVER_PLUGINS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"lua": ("push_notification", "mail_lua", "push_notification_lua")}
)
#: The service changes are labelled with by `events.mapping` when they are deliveries.
_MAPPED_DELIVERY_SERVICE = "lmtp"


def required_plugins(driver: str) -> tuple[str, ...]:
    """The `mail_plugins` a service must load for ``driver`` (a registered driver name)."""
    return _DRIVER_PLUGINS.get(driver, _FRAMEWORK_PLUGINS)


@dataclass(frozen=True)
class PushServicePlan:
    """For each service (``lmtp``, ``imap``, ``lda``), the driver instances it pushes to."""

    by_service: Mapping[str, tuple[str, ...]]

    def drivers_for(self, service: str) -> tuple[str, ...]:
        """Instances a change made by ``service`` goes to; none for a service not planned."""
        return self.by_service.get(service, ())

    @property
    def pushes(self) -> bool:
        """Whether any service pushes to any driver."""
        return any(self.by_service.values())

    def describe(self) -> str:
        """One line for logs and `mailpush config check`: ``lmtp → lua; imap → (none)``."""
        return "; ".join(
            f"{service} → {', '.join(instances) or '(none)'}"
            for service, instances in self.by_service.items()
        )


def push_service_plan(settings: Settings, drivers: Mapping[str, str]) -> PushServicePlan:
    """Which of ``drivers`` (instance name → driver name) each service pushes to.

    A service pushes to an instance when its effective `mail_plugins` (global
    value with its ``protocol { }`` sections applied) holds every plugin
    `required_plugins` names for the driver.
    """
    by_service: dict[str, tuple[str, ...]] = {}
    for service in PROTOCOL_SERVICES:
        loaded = set(settings.for_protocol(service).mail_plugins)
        by_service[service] = tuple(
            instance
            for instance, driver in drivers.items()
            if loaded.issuperset(required_plugins(driver))
        )
    return PushServicePlan(MappingProxyType(by_service))


class PushRecorder:
    """Turns each change into outbox entries for the drivers its service pushes to.

    ``plan`` None means every service pushes to every driver. ``delivery_service``
    is the service deliveries are made by in this process: ``lmtp`` in the
    server, ``lda`` in `mailpush deliver`; the transactions carry it (Lua's
    `user.service`), and the plan is looked up with it.
    """

    def __init__(
        self,
        drivers: Mapping[str, PushDriver],
        metrics: PushMetrics | None = None,
        *,
        plan: PushServicePlan | None = None,
        delivery_service: str = _MAPPED_DELIVERY_SERVICE,
    ):
        self._drivers = dict(drivers)
        self._metrics = metrics
        self._plan = plan
        self._delivery_service = delivery_service

    def __call__(self, changes: Sequence[Change], status: StatusAt) -> Sequence[OutboxEntry]:
        entries = []
        for compact in compact_transactions_for_operation(changes):
            txn = compact.envelope
            if txn.service == _MAPPED_DELIVERY_SERVICE != self._delivery_service:
                txn = dataclasses.replace(txn, service=self._delivery_service)
                compact = CompactTransaction(txn, compact.change)
            allowed = self._drivers.keys() if self._plan is None else self._plan.drivers_for(
                txn.service
            )
            candidates = [(name, d) for name, d in self._drivers.items() if name in allowed]
            if not candidates:
                continue
            counts = event_counts(compact.change)
            wanted = _accepting(candidates, compact, counts)
            if not wanted:
                continue
            if _is_save(compact) and any(
                self._drivers[name].wants_mailbox_status for name in wanted
            ):
                compact = _with_status(compact, status)
            if self._metrics is not None:
                # One labels() lookup per event type, not per event: a STORE on 1:*
                # is thousands of events in one transaction.
                for name, count in counts.items():
                    self._metrics.events.labels(name).inc(count)
            entries.append(
                OutboxEntry(txn.user, compact_transaction_to_json(compact), wanted, txn.id)
            )
        return entries


def _accepting(
    candidates: Sequence[tuple[str, PushDriver]],
    compact: CompactTransaction,
    counts: Mapping[EventName, int],
) -> tuple[str, ...]:
    """The candidates that take the transaction (see the module docstring)."""
    expanded: PushTransaction | None = None
    wanted = []
    for name, driver in candidates:
        if type(driver).accepts is PushDriver.accepts:
            wanted.append(name)
            continue
        if not any(driver.subscribes(event) for event in counts):
            continue
        if expanded is None:
            expanded = expand(compact)
        if driver.accepts(expanded):
            wanted.append(name)
    return tuple(wanted)


def _is_save(compact: CompactTransaction) -> bool:
    """MessageNew or MessageAppend: where a script reads the status its commit left."""
    return isinstance(compact.change, MessagesSaved) and bool(compact.change.messages)


def _with_status(compact: CompactTransaction, status: StatusAt) -> CompactTransaction:
    """`compact` with its mailbox's status; without one if the mailbox is gone by the end
    of the operation, where a script's `mailbox:status()` fails as it would live."""
    txn = compact.envelope
    try:
        txn = dataclasses.replace(txn, status=status(txn.user, txn.mailbox))
    except MailboxNotFoundError:
        return compact
    return CompactTransaction(txn, compact.change)
