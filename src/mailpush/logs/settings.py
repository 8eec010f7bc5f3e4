"""The log settings, read once from the configuration (see `config/schema.py`).

Dovecot's meaning: `log_path` takes errors and warnings, `info_log_path`
informational lines and `debug_log_path` debug lines; an empty
`info_log_path` means "as `log_path`", an empty `debug_log_path` "as
`info_log_path`". A destination is a file, `syslog`, or standard error
(mailpush's default for `log_path`, where Dovecot's is `syslog`: a service
manager collects standard error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

__all__ = [
    "DEFAULT_DELIVER_LOG_FORMAT",
    "DEFAULT_LOG_TIMESTAMP",
    "LogDestination",
    "LogSettings",
    "SYSLOG",
    "SYSLOG_FACILITIES",
]

SYSLOG: Literal["syslog"] = "syslog"

#: A file, syslog, or None for standard error.
LogDestination: TypeAlias = Path | Literal["syslog"] | None

DEFAULT_LOG_TIMESTAMP = "%b %d %H:%M:%S "

#: Dovecot's `msgid=%m: %$` with the size and the client's address added: mailpush
#: serves every connection from one process, so the `<pid>` of the line's prefix
#: does not lead to the connection the way it does in Dovecot.
DEFAULT_DELIVER_LOG_FORMAT = "msgid=%m, size=%p, rip=%{rip}: %$"

#: syslog(3) facility codes by the names `syslog_facility` accepts (Dovecot's list).
SYSLOG_FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Destinations per level, already defaulted as Dovecot defaults them."""

    #: Errors and warnings.
    path: LogDestination = None
    #: Informational lines (logins, deliveries).
    info_path: LogDestination = None
    #: Debug lines (`mail_debug = yes`).
    debug_path: LogDestination = None
    syslog_facility: str = "mail"
    #: strftime format put before each line written to a file or standard error.
    timestamp: str = DEFAULT_LOG_TIMESTAMP
    deliver_log_format: str = DEFAULT_DELIVER_LOG_FORMAT

    @classmethod
    def of(
        cls,
        path: LogDestination,
        info_path: LogDestination | Literal[""] = "",
        debug_path: LogDestination | Literal[""] = "",
        syslog_facility: str = "mail",
        timestamp: str = DEFAULT_LOG_TIMESTAMP,
        deliver_log_format: str = DEFAULT_DELIVER_LOG_FORMAT,
    ) -> LogSettings:
        """`""` for an `info_log_path` / `debug_log_path` that is not set."""
        info = path if info_path == "" else info_path
        debug = info if debug_path == "" else debug_path
        return cls(path, info, debug, syslog_facility, timestamp, deliver_log_format)

    def uses_syslog(self) -> bool:
        return SYSLOG in (self.path, self.info_path, self.debug_path)
