"""Running drivers on committed push transactions: claiming, ordering, retries, metrics."""

from .dispatcher import Dispatcher
from .metrics import PushMetrics
from .metrics_endpoint import MetricsEndpoint
from .outbox_recorder import PushRecorder
from .retry_policy import RetryPolicy
from .services import FrameworkServices

__all__ = [
    "Dispatcher",
    "FrameworkServices",
    "MetricsEndpoint",
    "PushMetrics",
    "PushRecorder",
    "RetryPolicy",
]
