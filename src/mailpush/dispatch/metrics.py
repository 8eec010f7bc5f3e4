"""Prometheus metrics of the push pipeline, on their own registry (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PushMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "mailpush_push_events", "Push events committed to the outbox, by type",
            ["event"], registry=self.registry,
        )
        self.transactions = Counter(
            "mailpush_push_transactions", "Push transactions handled by drivers, by outcome",
            ["driver", "outcome"], registry=self.registry,
        )
        self.retries = Counter(
            "mailpush_push_retries", "Failed attempts that will be retried",
            ["driver"], registry=self.registry,
        )
        self.dead_letters = Counter(
            "mailpush_push_dead_letters", "Transactions given up and kept as dead letters",
            ["driver"], registry=self.registry,
        )
        self.queue_depth = Gauge(
            "mailpush_push_queue_depth", "Transactions waiting for a driver (pending + in flight)",
            ["driver"], registry=self.registry,
        )
        self.latency = Histogram(
            "mailpush_push_delivery_latency_seconds",
            "From commit of the mail change to successful delivery by the driver",
            ["driver"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
        )
