"""Options several drivers accept, declared once; each driver states only its own default.

The retry options tune the framework's outbox retries for one driver instance
(the dispatcher reads them through `PushDriver.retry`); the HTTP options are
those of every driver that sends to an endpoint through `http_target`.
"""

from __future__ import annotations

from ..config.schema import SettingType
from .option_schema import DriverOption, declare_option

__all__ = [
    "DELIVERY_ATTEMPTS",
    "HTTP_CLIENT_REQUEST_MAX_ATTEMPTS",
    "MAX_AGE",
    "MAX_RETRIES",
    "RESPONSE_MAX_SIZE",
    "RETRY_INITIAL",
    "RETRY_MAX_INTERVAL",
    "RETRY_OPTIONS",
    "retry_options",
    "SSL_CLIENT_CA_FILE",
    "TIMEOUT",
]

# --- the framework's retries ---------------------------------------------------------------

#: The most `delivery_attempts` accepted (0 is no limit).
MAX_DELIVERY_ATTEMPTS = 1000

DELIVERY_ATTEMPTS = declare_option(
    "delivery_attempts",
    SettingType.LIMIT,
    "",
    "Attempts of one push in all, the first included, counting the outbox's retries; an "
    "attempt that timed out counts (its request may have arrived). `0`: only `max_age` "
    "limits them.",
    maximum=MAX_DELIVERY_ATTEMPTS,
    default_doc="no limit",
)
RETRY_INITIAL = declare_option(
    "retry_initial",
    SettingType.DURATION,
    "",
    "Delay before the outbox's first retry of a failed push; it doubles at each further "
    "failure up to `retry_max_interval`.",
    default_doc="the global `mailpush_push_retry_initial`",
)
RETRY_MAX_INTERVAL = declare_option(
    "retry_max_interval",
    SettingType.DURATION,
    "",
    "Longest delay between two attempts of a failing push.",
    default_doc="the global `mailpush_push_retry_max_interval`",
)
MAX_AGE = declare_option(
    "max_age",
    SettingType.DURATION,
    "",
    "A push still failing this long after its first attempt becomes a dead letter "
    "(`mailpush queue dead`, `mailpush queue replay`).",
    default_doc="the global `mailpush_push_max_age`",
)
#: In the order `RetryOptions` holds them.
RETRY_OPTIONS: tuple[DriverOption, ...] = (
    DELIVERY_ATTEMPTS, RETRY_INITIAL, RETRY_MAX_INTERVAL, MAX_AGE,
)


def retry_options(
    *, delivery_attempts: str, retry_initial: str, retry_max_interval: str, max_age: str
) -> tuple[DriverOption, ...]:
    """`RETRY_OPTIONS` with one driver's own defaults (chronos and ox retry briefly)."""
    return (
        DELIVERY_ATTEMPTS.with_default(delivery_attempts),
        RETRY_INITIAL.with_default(retry_initial),
        RETRY_MAX_INTERVAL.with_default(retry_max_interval),
        MAX_AGE.with_default(max_age),
    )

# --- HTTP endpoints ----------------------------------------------------------------------

TIMEOUT = declare_option(
    "timeout",
    SettingType.DURATION,
    "",
    "How long one request may take before it counts as failed (and is not repeated at "
    "once: it may have arrived).",
    aliases=("http_client_request_timeout",),
)
MAX_RETRIES = declare_option(
    "max_retries",
    SettingType.NUMBER,
    "",
    "Extra requests made at once after a 408, 429, 5xx or network error (never after a "
    "timeout), within one attempt; when they fail too, the outbox retries later.",
)
HTTP_CLIENT_REQUEST_MAX_ATTEMPTS = declare_option(
    "http_client_request_max_attempts",
    SettingType.COUNT,
    "",
    "Dovecot 2.4's spelling of `max_retries` + 1 (requests at once, the first included); "
    "`max_retries` wins when both are written.",
    minimum=1,
)
RESPONSE_MAX_SIZE = declare_option(
    "response_max_size",
    SettingType.SIZE,
    "64k",
    "The most of an answer's body read; a longer one is cut there and its connection "
    "dropped, so an endpoint answering with a huge body costs neither memory nor time.",
)
SSL_CLIENT_CA_FILE = declare_option(
    "ssl_client_ca_file",
    SettingType.PATH,
    "",
    "PEM file of CA certificates trusted besides the system CAs, for an endpoint whose "
    "certificate comes from an internal CA. Certificates are always verified: "
    "`ssl_client_require_valid_cert = no` and `ssl_allow_invalid_cert = yes` are refused.",
    default_doc="the global `ssl_client_ca_file`",
)
