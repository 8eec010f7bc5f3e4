"""Sending log lines to the local syslog daemon, as glibc's syslog(3) does for Dovecot.

One datagram per record to a UNIX socket (`/dev/log`, where rsyslog and
systemd-journald listen), in the BSD syslog shape glibc writes:
`<PRI>Dec  5 08:00:00 dovecot: imap-login: Login: ...`. The ident is
Dovecot's, `dovecot`, so that syslog-side rules and fail2ban's stock filter
(whose daemon names are `dovecot`, `dovecot-auth`, `auth`) read mailpush's
lines as they read Dovecot's. A worker of several names itself there,
`dovecot(worker1): ...` (`worker_tag` says why that form): syslog's
programname is then `dovecot(worker1)`, which `journalctl -t dovecot` and a
rule matching the exact name `dovecot` do not select.

The socket is non-blocking: a syslog daemon that stops reading must not
stall the event loop. A line the full socket refuses is counted, and the
next line that goes through is preceded by how many were lost. A daemon
that restarted (its socket replaced) is reconnected once per line.
"""

from __future__ import annotations

import logging
import socket
import time

from ..errors import SyslogUnavailableError
from .settings import SYSLOG_FACILITIES
from .worker_tag import worker_tag

__all__ = ["DEFAULT_SYSLOG_SOCKET", "SYSLOG_IDENT", "SyslogSocketHandler"]

DEFAULT_SYSLOG_SOCKET = "/dev/log"
SYSLOG_IDENT = "dovecot"
#: Longest datagram sent; longer lines are cut (syslog daemons cut them anyway, and
#: a datagram over the socket's limit would be refused whole).
MAX_DATAGRAM = 16 * 1024

_SEVERITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))  # fmt: skip
_DEBUG_SEVERITY = 7


class SyslogSocketHandler(logging.Handler):
    """Records to the syslog socket at `socket_path` with `facility` (a `syslog_facility` name)."""

    def __init__(self, facility: str, socket_path: str = DEFAULT_SYSLOG_SOCKET) -> None:
        super().__init__()
        self._facility = SYSLOG_FACILITIES[facility]
        self._path = socket_path
        self._dropped = 0
        self._socket = self._connect()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if self._dropped and self._send(logging.WARNING, record.created, self._lost_note()):
                self._dropped = 0
            if not self._send(record.levelno, record.created, text):
                self._dropped += 1
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()

    def _send(self, levelno: int, created: float, text: str) -> bool:
        """False when the socket is full (the line is lost); True once sent."""
        stamp = time.strftime("%b %e %H:%M:%S", time.localtime(created))
        priority = self._facility * 8 + _severity(levelno)
        data = f"<{priority}>{stamp} {_ident()}: {text}".encode("utf-8", "replace")
        data = data[:MAX_DATAGRAM]
        try:
            self._socket.send(data)
        except BlockingIOError:
            return False
        except OSError:
            # The daemon restarted and its socket was replaced: connect again, once.
            self._socket.close()
            self._socket = self._connect()
            try:
                self._socket.send(data)
            except BlockingIOError:
                return False
        return True

    def _lost_note(self) -> str:
        # Not through the formatter: it would give the note the prefix of whichever
        # connection's line happened to go through next.
        return (f"{__name__}: Warning: {self._dropped} log lines lost: the syslog socket "
                f"{self._path} was full")  # fmt: skip

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect(self._path)
        except OSError as exc:
            sock.close()
            raise SyslogUnavailableError(
                f"cannot send log lines to syslog at {self._path} ({exc.strerror or exc}): "
                "start a syslog daemon (rsyslog or systemd-journald) or set the log "
                "setting to a file"
            ) from None
        return sock


def _ident() -> str:
    tag = worker_tag()
    return f"{SYSLOG_IDENT}({tag})" if tag else SYSLOG_IDENT


def _severity(levelno: int) -> int:
    for threshold, severity in _SEVERITIES:
        if levelno >= threshold:
            return severity
    return _DEBUG_SEVERITY
