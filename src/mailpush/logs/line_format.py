"""A log record as Dovecot writes it: `Dec 05 08:00:00 imap-login: Info: Login: ...`.

To a file or standard error Dovecot writes `log_timestamp`, the process's
log prefix, the level (`Info: `, `Error: `) and the message. fail2ban's stock
`dovecot` filter is written against exactly this: after the date it allows
one word (a host name) and an optional `dovecot:`-style daemon tag, then
wants `imap-login: ` and `Info: ` before `Disconnected (auth failed ...)`,
so a Python-style `INFO mailpush.imap.connection:` prefix would hide every
failed login from it. To syslog the timestamp and host come from the syslog
side, and the level is the priority: Dovecot leaves out `Info: ` there but
keeps `Debug: `, `Warning: `, `Error: `.

A line outside any connection (startup, the push dispatcher) has no
Dovecot process prefix; its logger's name (`mailpush.dispatch.dispatcher`)
stands in that place. The prefix may hold a user name from the network, so
it is escaped like the message (`logging_config`).

In one of several workers a file line starts, after the timestamp, with the
worker's tag (`worker1: imap-login: Info: ...`; `worker_tag` says why
there); to syslog the tag is in the ident instead (`logs/syslog.py`).
"""

from __future__ import annotations

import logging
import time

from .session import current_session
from .text import escape_control_characters
from .worker_tag import worker_tag

__all__ = ["DovecotLineFormatter", "level_word"]

_LEVEL_WORDS = ((logging.CRITICAL, "Fatal"), (logging.ERROR, "Error"),
                (logging.WARNING, "Warning"), (logging.INFO, "Info"))  # fmt: skip
_USECS = "%{usecs}"


def level_word(levelno: int) -> str:
    """Dovecot's name of a level: `Debug`, `Info`, `Warning`, `Error`, `Fatal`."""
    for threshold, word in _LEVEL_WORDS:
        if levelno >= threshold:
            return word
    return "Debug"


class DovecotLineFormatter(logging.Formatter):
    """`<timestamp>[worker<N>: ]<prefix>: <Level>: <message>`, a traceback indented below it.

    `timestamp` is `log_timestamp` (strftime, plus Dovecot's `%{usecs}`);
    `for_syslog` leaves out the timestamp, the worker's tag and the `Info: `
    level word.
    """

    def __init__(self, timestamp: str = "", *, for_syslog: bool = False) -> None:
        super().__init__()
        self._timestamp = "" if for_syslog else timestamp
        self._for_syslog = for_syslog

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self._stamp(record)}{self._worker()}{self._prefix(record)}: {self._level(record)}"
        line += record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line

    def _stamp(self, record: logging.LogRecord) -> str:
        template = self._timestamp
        if not template:
            return ""
        if _USECS in template:
            template = template.replace(_USECS, f"{int(record.created % 1 * 1_000_000):06d}")
        return time.strftime(template, time.localtime(record.created))

    def _worker(self) -> str:
        tag = "" if self._for_syslog else worker_tag()
        return f"{tag}: " if tag else ""

    def _level(self, record: logging.LogRecord) -> str:
        word = level_word(record.levelno)
        if self._for_syslog and word == "Info":
            return ""
        return word + ": "

    @staticmethod
    def _prefix(record: logging.LogRecord) -> str:
        session = current_session()
        prefix = record.name if session is None else session.prefix
        return escape_control_characters(prefix)
