"""Prometheus metrics of the mail services: LMTP, IMAP, authentication, the store.

They sit beside the push metrics (`dispatch/metrics.py`) on the one registry
`/metrics` serves, in the same style: plain prometheus-client objects on a
registry passed in (no globals), so every server and every test has its own.

The services count on their hot paths (every LMTP reply, every IMAP command,
every store commit), so each counting call is cheap: label children are
bound once (`labels()` takes a lock and hashes the label values each call),
and a command name becomes a label only when it is one the server declares,
so a client cannot grow the series by sending made-up command names.
Prometheus-client objects take their own locks, which is what lets the store's
writer thread observe commits directly.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AuthMetrics", "ImapMetrics", "LmtpMetrics", "ServiceMetrics", "StoreMetrics"]

#: Seconds: from sub-millisecond IMAP commands to deliveries waiting on a slow disk.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)  # fmt: skip
#: Operations committed together (the group commit's batch; at most 256).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: The reply classes counted; anything else (a greeting's 220 counts as 2xx) by first digit.
REPLY_CLASSES = ("2xx", "3xx", "4xx", "5xx")


class LmtpMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deliveries = Counter(
            "mailpush_lmtp_deliveries",
            "Recipients of LMTP messages, by outcome (saved: 250; failed: 4xx, try later)",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.received_bytes = Counter(
            "mailpush_lmtp_received_bytes", "Bytes of messages received over LMTP DATA",
            registry=self.registry,
        )  # fmt: skip
        self.delivery_seconds = Histogram(
            "mailpush_lmtp_delivery_duration_seconds",
            "From the end of DATA to the replies (the store's commit included)",
            registry=self.registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.replies = Counter(
            "mailpush_lmtp_replies", "LMTP replies sent, by class", ["class"],
            registry=self.registry,
        )  # fmt: skip
        self.connections_current = Gauge(
            "mailpush_lmtp_connections_current", "LMTP connections open now",
            registry=self.registry,
        )  # fmt: skip
        self.connections = Counter(
            "mailpush_lmtp_connections", "LMTP connections accepted", registry=self.registry
        )
        self._saved = self.deliveries.labels("saved")
        self._failed = self.deliveries.labels("failed")
        self._reply_class = {name[0]: self.replies.labels(name) for name in REPLY_CLASSES}

    def reply(self, line: str) -> None:
        """Count one reply line (`250 2.0.0 ...`); a continuation line (`250-...`) is none."""
        if len(line) > 3 and line[3] == "-":
            return
        child = self._reply_class.get(line[:1])
        if child is not None:
            child.inc()

    def delivered(self, size: int, replies: list[str], seconds: float) -> None:
        """One DATA: its size, each recipient's outcome, the time it took."""
        self.received_bytes.inc(size)
        self.delivery_seconds.observe(seconds)
        saved = sum(1 for reply in replies if reply.startswith("2"))
        if saved:
            self._saved.inc(saved)
        if len(replies) > saved:
            self._failed.inc(len(replies) - saved)


class ImapMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.connections_current = Gauge(
            "mailpush_imap_connections_current", "IMAP connections open now",
            registry=self.registry,
        )  # fmt: skip
        self.connections = Counter(
            "mailpush_imap_connections", "IMAP connections accepted", registry=self.registry
        )
        self.commands = Counter(
            "mailpush_imap_commands", "IMAP commands run, by name", ["command"],
            registry=self.registry,
        )  # fmt: skip
        self.command_seconds = Histogram(
            "mailpush_imap_command_duration_seconds",
            "Time an IMAP command's handler took, by command name",
            ["command"], registry=self.registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.auth = AuthMetrics(self.registry)

    def command(self, name: str) -> tuple[Counter, Histogram]:
        """The bound (counter, histogram) children of one declared command."""
        return self.commands.labels(name), self.command_seconds.labels(name)


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.successes = Counter(
            "mailpush_auth_successes", "Successful logins, by SASL mechanism (LOGIN is PLAIN)",
            ["mechanism"], registry=self.registry,
        )  # fmt: skip
        self.failures = Counter(
            "mailpush_auth_failures",
            "Failed logins (wrong user or password), by SASL mechanism (LOGIN is PLAIN)",
            ["mechanism"], registry=self.registry,
        )  # fmt: skip

    def succeeded(self, mechanism: str) -> None:
        self.successes.labels(mechanism.upper()).inc()

    def failed(self, mechanism: str) -> None:
        self.failures.labels(mechanism.upper()).inc()


class StoreMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.commit_batch_size = Histogram(
            "mailpush_store_commit_batch_size",
            "Write operations committed together by the group-commit writer",
            registry=self.registry, buckets=BATCH_BUCKETS,
        )  # fmt: skip
        self.commit_seconds = Histogram(
            "mailpush_store_commit_duration_seconds",
            "Time of one COMMIT, the fsync of the write-ahead log included",
            registry=self.registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip

    def committed(self, operations: int, seconds: float) -> None:
        """Called on the store's writer thread after each successful COMMIT."""
        self.commit_batch_size.observe(operations)
        self.commit_seconds.observe(seconds)


class ServiceMetrics:
    """Every service's metrics on one registry (the one `/metrics` serves)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.lmtp = LmtpMetrics(self.registry)
        self.imap = ImapMetrics(self.registry)
        self.store = StoreMetrics(self.registry)

    @property
    def auth(self) -> AuthMetrics:
        return self.imap.auth
