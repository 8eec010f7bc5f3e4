"""Log output for the whole process: secrets masked, network text made harmless.

Driver URLs carry passwords (`http://login:pass@host/...`); any log line, from
our code or a library's, passes through `SecretMaskingFilter` so the
password never reaches a log file.

Log messages quote what came from the network: an endpoint's error body, an
HTTP reason phrase, an IMAP login name, an LMTP address or command. A CR or
LF in such text would end the line and let the sender write a forged record
("Dec 05 08:00:00 imap-login: Info: Login: user=<root>"), so the same filter escapes
every control character in the final message (`\r`, `\n`, `\x1b`), as
Dovecot's `str_sanitize` does before logging. A traceback keeps its lines
(they are ours), but the exception's own message may quote network text too:
control characters other than LF are escaped in it, and every line of the
traceback is indented, so no line of it can pass for a record of its own
(records start with their timestamp in the first column).

Lines are written in Dovecot's shape (`logs/line_format.py` says why:
fail2ban and other tools read them), to the destinations Dovecot's
`log_path`, `info_log_path` and `debug_log_path` name, one handler per
distinct destination taking the levels routed to it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import SyslogUnavailableError
from .logs.line_format import DovecotLineFormatter
from .logs.settings import SYSLOG, LogDestination, LogSettings
from .logs.syslog import DEFAULT_SYSLOG_SOCKET, SyslogSocketHandler
from .logs.text import TRACEBACK_INDENT, escape_control_characters, mask_secrets, safe_traceback

__all__ = [
    "SecretMaskingFilter",
    "TRACEBACK_INDENT",
    "configure_logging",
    "escape_control_characters",
    "mask_secrets",
    "quiet_library_loggers",
]

#: The handlers the last `configure_logging` installed.
_INSTALLED: list[logging.Handler] = []

#: Which setting routes which levels, as Dovecot routes them.
_ROUTES: tuple[tuple[str, Callable[[int], bool]], ...] = (
    ("log_path", lambda level: level >= logging.WARNING),
    ("info_log_path", lambda level: logging.INFO <= level < logging.WARNING),
    ("debug_log_path", lambda level: level < logging.INFO),
)


class SecretMaskingFilter(logging.Filter):
    """Rewrites each record's final message with passwords masked and control
    characters escaped, and its traceback masked and indented (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = escape_control_characters(mask_secrets(message))
        if safe != message:
            record.msg = safe
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = safe_traceback(mask_secrets(text))
        if record.stack_info:
            record.stack_info = safe_traceback(mask_secrets(record.stack_info))
        return True


def configure_logging(
    log: LogSettings | Path | None = None,
    debug: bool = False,
    *,
    syslog_socket: str = DEFAULT_SYSLOG_SOCKET,
) -> None:
    """Send log records where `log` says (a bare path: everything to that file;
    None: standard error), masking secrets.

    A syslog destination whose socket is missing falls back to standard error,
    and the first line there says so (naming the setting and what to do).
    """
    settings = log if isinstance(log, LogSettings) else LogSettings.of(log)
    handlers: list[logging.Handler] = []
    problems: list[str] = []
    for destination, names, accepts in _grouped_routes(settings):
        try:
            handler = _handler(destination, settings, syslog_socket)
        except SyslogUnavailableError as exc:
            problems.append(f"{' and '.join(n + ' = syslog' for n in names)}: {exc}; "
                            "logging to standard error instead")
            handler = _handler(None, settings, syslog_socket)
        handler.addFilter(_LevelRoute(accepts))
        handler.addFilter(SecretMaskingFilter())
        handlers.append(handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        # Ours hold files and sockets; others' (a test runner's) are not ours to close.
        if old in _INSTALLED:
            old.close()
    _INSTALLED[:] = handlers
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    quiet_library_loggers()
    for problem in problems:
        logging.getLogger(__name__).error("%s", problem)


def quiet_library_loggers() -> None:
    """Keep the libraries' log lines that tell an admin nothing out of the log."""
    # aiosmtpd logs every connection at INFO; ours say what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    psycopg = logging.getLogger("psycopg")
    if _ABORTED_PIPELINE not in psycopg.filters:
        psycopg.addFilter(_ABORTED_PIPELINE)


class _AbortedPipelineNotice(logging.Filter):
    """Drops psycopg's second report of a failed `executemany`.

    psycopg runs `executemany` in pipeline mode; when a statement fails there,
    the failure is raised to the store's operation, and leaving the pipeline
    then logs "error ignored terminating <psycopg.Pipeline …>: pipeline
    aborted" as a warning. The failure itself is handled by the PostgreSQL
    store: run again (a serialization failure or deadlock between nodes, which
    two nodes under imaptest met a dozen times a minute) or answered as a
    StoreError. The warning told an admin nothing they could act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            record.msg == "error ignored terminating %r: %s"
            and isinstance(args, tuple)
            and len(args) == 2
            and type(args[1]).__name__ == "PipelineAborted"
        )


_ABORTED_PIPELINE = _AbortedPipelineNotice()


class _LevelRoute(logging.Filter):
    def __init__(self, accepts: Callable[[int], bool]) -> None:
        super().__init__()
        self._accepts = accepts

    def filter(self, record: logging.LogRecord) -> bool:
        return self._accepts(record.levelno)


def _grouped_routes(
    settings: LogSettings,
) -> list[tuple[LogDestination, list[str], Callable[[int], bool]]]:
    """One entry per distinct destination: the settings naming it and the levels it takes."""
    destinations = (settings.path, settings.info_path, settings.debug_path)
    grouped: dict[LogDestination, list[int]] = {}
    for index, destination in enumerate(destinations):
        grouped.setdefault(_same_file(destination), []).append(index)
    routes = []
    for destination, indexes in grouped.items():
        checks = [_ROUTES[i][1] for i in indexes]
        names = [_ROUTES[i][0] for i in indexes]
        routes.append((destination, names, _any_of(checks)))
    return routes


def _any_of(checks: list[Callable[[int], bool]]) -> Callable[[int], bool]:
    return lambda level: any(check(level) for check in checks)


def _same_file(destination: LogDestination) -> LogDestination:
    """`/dev/stderr` is standard error (opened as a file it fails under systemd)."""
    if isinstance(destination, Path) and str(destination) in ("/dev/stderr", "/dev/fd/2"):
        return None
    return destination


def _handler(
    destination: LogDestination, settings: LogSettings, syslog_socket: str
) -> logging.Handler:
    handler: logging.Handler
    if destination == SYSLOG:
        handler = SyslogSocketHandler(settings.syslog_facility, syslog_socket)
        handler.setFormatter(DovecotLineFormatter(for_syslog=True))
        return handler
    if destination is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(destination, encoding="utf-8")
    handler.setFormatter(DovecotLineFormatter(settings.timestamp))
    return handler
