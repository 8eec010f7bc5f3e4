"""The outbox recorder: store change records → push transactions, inside the commit.

Runs on the store's writer thread while the mail change's transaction is
open, so it must be pure computation: map the change to Dovecot-style push
transactions (`events.mapping`), serialise them, and name the driver
instances that must deliver each one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ..drivers.base import PushDriver
from ..events import transaction_to_json, transactions_for_change
from ..store.changes import Change
from ..store.sqlite_writer import OutboxEntry
from .metrics import PushMetrics


class PushRecorder:
    def __init__(self, drivers: Mapping[str, PushDriver], metrics: PushMetrics | None = None):
        self._drivers = dict(drivers)
        self._metrics = metrics

    def __call__(self, change: Change) -> Sequence[OutboxEntry]:
        entries = []
        for txn in transactions_for_change(change):
            wanted = tuple(name for name, d in self._drivers.items() if d.accepts(txn))
            if not wanted:
                continue
            if self._metrics is not None:
                # One labels() lookup per event type, not per event: a STORE on 1:*
                # is thousands of events in one transaction.
                for name, count in Counter(event.name for event in txn.events).items():
                    self._metrics.events.labels(name).inc(count)
            entries.append(OutboxEntry(txn.user, transaction_to_json(txn), wanted, txn.id))
        return entries
