"""Everything push events need from a message, extracted once at save time.

The store calls `summarize` when a message is saved and keeps the result
with the message, so that events (and drivers, long after the save) never
re-read the body. The fields and their edge cases follow what Dovecot
2.3.19's push-notification plugin puts in MessageNew/MessageAppend events
(docs/dovecot-reference.md#message-fields).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailpush.mime.addresses import parse_first_address
from mailpush.mime.calendar import has_calendar
from mailpush.mime.dates import parse_date
from mailpush.mime.headers import decode_encoded_words
from mailpush.mime.snippet import body_snippet
from mailpush.mime.structure import parse_structure

__all__ = ["MessageSummary", "summarize"]


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """The push-relevant facts of one message.

    Header values are the first occurrence, raw (not decoded, folds kept as
    "\\n" + the continuation's leading blanks) unless the field says
    otherwise; invalid UTF-8 is replaced by U+FFFD.
    """

    from_: str  # raw first From: value, "" if absent
    to: str  # raw first To: value, "" if absent
    from_address: str  # first address only; "" if none or a group
    from_display_name: str  # RFC 2047-decoded; a comment stands in for a missing phrase
    to_address: str
    to_display_name: str
    subject: str | None  # RFC 2047-decoded; None without a Subject header
    subject_raw: str | None  # raw value, as the OX driver sends it
    date: int  # UTC epoch seconds from Date:, 0 if missing or unparsable
    tz: int  # zone offset in minutes (+0200 -> 120), 0 if missing or unparsable
    message_id: str | None  # raw, angle brackets kept
    snippet: str  # at most 200 characters of the first text part
    has_calendar: bool  # a calendar invitation is attached (see mime.calendar)


def summarize(raw: bytes) -> MessageSummary:
    """Parse a raw message (as received) into its summary; never raises on bad input."""
    root = parse_structure(raw)
    headers = root.headers
    from_raw = headers.first("From")
    to_raw = headers.first("To")
    sender = parse_first_address(from_raw)
    recipient = parse_first_address(to_raw)
    subject_raw = headers.first("Subject")
    parsed_date = parse_date(headers.first("Date"))
    return MessageSummary(
        from_=from_raw or "",
        to=to_raw or "",
        from_address=sender.address,
        from_display_name=sender.display_name,
        to_address=recipient.address,
        to_display_name=recipient.display_name,
        subject=None if subject_raw is None else decode_encoded_words(subject_raw),
        subject_raw=subject_raw,
        date=parsed_date.timestamp if parsed_date else 0,
        tz=parsed_date.tz_minutes if parsed_date else 0,
        message_id=headers.first("Message-ID"),
        snippet=body_snippet(raw, root),
        has_calendar=has_calendar(root),
    )
