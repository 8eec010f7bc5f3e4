"""The outbox recorder: store change records → push transactions, inside the commit.

Runs on the store's writer thread while the mail change's transaction is
open, so it must be pure computation: map one operation's changes to
Dovecot-style push transactions (`events.mapping`, one operation group),
serialise them, and name the driver instances that must deliver each one.
The one exception is a mailbox's status: when a driver that reads it
(`PushDriver.wants_mailbox_status`, the Lua driver's `mailbox:status()`)
takes a save transaction (MessageNew, MessageAppend: where scripts read it,
like the seed's events example), the status its commit leaves is read in
the same database transaction (one aggregate query) and travels with it, so
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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..config import Settings
from ..config.settings import PROTOCOL_SERVICES
from ..drivers.base import PushDriver
from ..errors import MailboxNotFoundError
from ..events import PushTransaction, transaction_to_json, transactions_for_operation
from ..store.changes import Change
from ..store.sqlite_writer import OutboxEntry, StatusAt
from .metrics import PushMetrics

__all__ = ["PushRecorder", "PushServicePlan", "push_service_plan", "required_plugins"]

#: What every driver needs loaded: the push-notification framework plugin.
_FRAMEWORK_PLUGINS = ("push_notification",)
#: Drivers that are plugins of their own in Dovecot, with what they need on top.
_DRIVER_PLUGINS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"lua": ("push_notification", "mail_lua", "push_notification_lua")}
)
#: The events of a save transaction, whose mailbox status is captured for drivers that want it.
_SAVE_EVENTS = frozenset({"MessageNew", "MessageAppend"})
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
        for txn in transactions_for_operation(changes):
            if txn.service == _MAPPED_DELIVERY_SERVICE != self._delivery_service:
                txn = dataclasses.replace(txn, service=self._delivery_service)
            allowed = self._drivers.keys() if self._plan is None else self._plan.drivers_for(
                txn.service
            )
            wanted = tuple(
                name for name, d in self._drivers.items() if name in allowed and d.accepts(txn)
            )
            if not wanted:
                continue
            if _is_save_transaction(txn) and any(
                self._drivers[name].wants_mailbox_status for name in wanted
            ):
                txn = _with_status(txn, status)
            if self._metrics is not None:
                # One labels() lookup per event type, not per event: a STORE on 1:*
                # is thousands of events in one transaction.
                for name, count in Counter(event.name for event in txn.events).items():
                    self._metrics.events.labels(name).inc(count)
            entries.append(OutboxEntry(txn.user, transaction_to_json(txn), wanted, txn.id))
        return entries


def _is_save_transaction(txn: PushTransaction) -> bool:
    return bool(txn.events) and txn.events[0].name in _SAVE_EVENTS


def _with_status(txn: PushTransaction, status: StatusAt) -> PushTransaction:
    """`txn` with its mailbox's status; without one if the mailbox is gone by the end of
    the operation, where a script's `mailbox:status()` fails as it would live."""
    try:
        return dataclasses.replace(txn, status=status(txn.user, txn.mailbox))
    except MailboxNotFoundError:
        return txn
