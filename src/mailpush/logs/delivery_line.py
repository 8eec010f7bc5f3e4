"""The one line logged per filed message, in Dovecot's `deliver_log_format`.

Dovecot logs `lmtp(alice)<pid><session>: Info: msgid=<id@host>: saved mail
to INBOX` (2.3.19, observed with bench/dovecot_instance.py); mail-log
parsers key on `msgid=` and `saved mail to`. The prefix comes from the
delivery's `LogSession`; this module writes what follows `Info: `. Values
are cut as Dovecot's `str_sanitize` cuts them (Message-ID 200 characters,
Subject and From 80, then `...`); control characters are escaped later, for
every line alike (`logging_config`). A message without a Message-ID logs
`msgid=unspecified`, as Dovecot does.
"""

from __future__ import annotations

from ..mime.addresses import parse_first_address
from ..mime.headers import HeaderFields, decode_encoded_words, find_body_start, parse_header_block
from ..var_expand import Value, expand, keep_as_written
from .session import LogSession

__all__ = ["DELIVER_LOG_LETTERS", "delivery_line"]

#: `deliver_log_format`'s own one-letter variables (Dovecot's mail-deliver.c).
DELIVER_LOG_LETTERS = {
    "$": "message", "m": "msgid", "s": "subject", "f": "from", "e": "from_envelope",
    "p": "size", "w": "vsize",
}  # fmt: skip


def delivery_line(
    template: str, raw: bytes, sender: str | None, status: str, session: LogSession | None
) -> str:
    """`template` expanded for message `raw`; `status` is `%$` (`saved mail to INBOX`).

    Header values are read only when the template names them; an unknown
    variable stays as written (the line is still logged).
    """
    headers = _LazyHeaders(raw)
    values: dict[str, Value] = {
        "message": status,
        "msgid": lambda: _clip(headers.first("Message-ID"), 200) or "unspecified",
        "subject": lambda: _clip(decode_encoded_words(headers.first("Subject") or ""), 80),
        "from": lambda: _clip(parse_first_address(headers.first("From")).address, 80),
        "from_envelope": sender or "",
        "size": str(len(raw)),
        "vsize": lambda: str(len(raw) + raw.count(b"\n") - raw.count(b"\r\n")),
        "rip": session.rip if session else "",
        "lip": session.lip if session else "",
        "session": session.session_id if session else "",
    }
    return expand(template, values, keep_as_written, DELIVER_LOG_LETTERS)


class _LazyHeaders:
    """The header block, found on first use (a template without `%m %s %f` never scans)."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._fields: HeaderFields | None = None

    def first(self, name: str) -> str | None:
        if self._fields is None:
            header_end, _ = find_body_start(self._raw)
            self._fields = parse_header_block(self._raw[:header_end])
        value = self._fields.first(name)
        return None if value is None else value.replace("\n", "").strip()


def _clip(text: str | None, limit: int) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[:limit] + "..."


