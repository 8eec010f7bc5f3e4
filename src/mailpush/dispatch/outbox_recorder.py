"""The outbox recorder: store change records → push transactions, inside the commit.

Runs on the store's writer thread while the mail change's transaction is
open, so it must be pure computation: map the change to Dovecot-style push
transactions (`events.mapping`), serialise them, and name the driver
instances that must deliver each one.
"""

from __future__ import annotations

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
                for event in txn.events:
                    self._metrics.events.labels(event.name).inc()
            entries.append(OutboxEntry(txn.user, transaction_to_json(txn), wanted, txn.id))
        return entries
