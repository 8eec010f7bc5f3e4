"""The Date header as epoch seconds and zone minutes, parsed like lib-mail's message_date_parse().

The grammar is Dovecot's forgiving one, not RFC 5322's: the weekday is any
three-letter word followed by a comma, "." may separate the time fields,
the year may have two digits (70-99 → 19xx, else 20xx), the zone is
`±hhmm` without range checks (`+1345` → 825), a zone name (UT, GMT, EST,
EDT... or a military letter), or missing; an unknown zone counts as UTC.
Anything else makes the whole date unusable, and the caller then reports
0/0 like Dovecot's storage does.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

from mailpush.mime.rfc822_chars import atext_end

__all__ = ["MessageDate", "parse_date"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_TIME_SEPARATORS = (":", ".")
_US_ZONES = {"E": -5 * 60, "C": -6 * 60, "M": -7 * 60, "P": -8 * 60}


@dataclass(frozen=True, slots=True)
class MessageDate:
    """`timestamp` is UTC epoch seconds; `tz_minutes` the sender's offset east of UTC."""

    timestamp: int
    tz_minutes: int


def parse_date(value: str | None) -> MessageDate | None:
    """Parse a Date header value; None when absent or unusable. Never raises."""
    if value is None:
        return None
    try:
        return _DateTokens(value).parse()
    except Exception:  # a parser bug must not fail a delivery
        return None


class _DateTokens:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> MessageDate | None:
        self.skip_cfws()
        token = self.next_token()
        if not token:
            return None
        if len(token) == 3:  # weekday, never checked beyond its length
            if self.peek() != ",":
                return None
            self.pos += 1
            self.skip_cfws()
            token = self.next_token()
            if not token:
                return None
        if not 1 <= len(token) <= 2 or not token.isdigit() or not token.isascii():
            return None
        day = int(token)

        token = self.next_token()
        if token is None or len(token) < 3:
            return None
        month = _MONTHS.index(token[:3].lower()) + 1 if token[:3].lower() in _MONTHS else 0
        if month == 0:
            return None

        token = self.next_token()
        if token is None or len(token) not in (2, 4) or not _is_digits(token):
            return None
        year = int(token)
        if len(token) == 2:
            year += 2000 if year < 70 else 1900
        elif year < 1900:
            return None

        token = self.next_token()
        if token is None or not 1 <= len(token) <= 2 or not _is_digits(token):
            return None
        hour = int(token)
        if self.peek() not in _TIME_SEPARATORS or self.at_end():
            return None
        minute = self.time_field()
        if minute is None:
            return None
        second = 0
        if not self.at_end() and self.peek() in _TIME_SEPARATORS:
            field = self.time_field()
            if field is None:
                return None
            second = field

        if self.at_end():
            tz = 0
        else:
            token = self.next_token()
            if token is None:
                return None
            tz = _zone_offset(token)

        stamp = _utc_timestamp(year, month, day, hour, minute, second)
        if stamp is None:
            return None
        return MessageDate(stamp - tz * 60, tz)

    def time_field(self) -> int | None:
        """At a `:` or `.`: the two-digit minute or second after it, or None."""
        self.pos += 1
        self.skip_cfws()
        token = self.next_token()
        if token is None or len(token) != 2 or not _is_digits(token):
            return None
        return int(token)

    def next_token(self) -> str | None:
        """An atom (possibly empty at the end of input); None where no atom can start."""
        if self.at_end():
            return ""
        start = self.pos
        end = atext_end(self.text, start)
        if end == start:
            return None
        self.pos = end
        token = self.text[start:end]
        self.skip_cfws()
        return token

    def skip_cfws(self) -> None:
        text = self.text
        depth = 0
        while self.pos < len(text):
            char = text[self.pos]
            if depth:
                if char == "\\":
                    self.pos += 1
                elif char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
            elif char == "(":
                depth = 1
            elif char not in " \t\r\n":
                return
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)


def _is_digits(token: str) -> bool:
    return token.isascii() and token.isdigit()


def _zone_offset(token: str) -> int:
    """lib-mail's parse_timezone(): unknown zones are UTC rather than an error."""
    if len(token) == 5 and token[0] in "+-" and _is_digits(token[1:]):
        offset = int(token[1:3]) * 60 + int(token[3:5])
        return offset if token[0] == "+" else -offset
    if len(token) == 1:
        # Military zones, read the way RFC 822 meant rather than as "unknown".
        letter = token.upper()
        raw = ord(token)
        if letter < "J":
            return (raw - ord("A") + 1) * 60
        if letter == "J":
            return 0
        if letter <= "M":
            return (raw - ord("A")) * 60
        if letter < "Z":
            return (ord("M") - raw) * 60
        return 0
    if len(token) == 2 and token.upper() == "UT":
        return 0
    if len(token) == 3 and token[2] == "T":
        base = _US_ZONES.get(token[0].upper())
        if base is None:
            return 0
        kind = token[1].upper()
        if kind == "D":
            return base + 60
        if kind == "S":
            return base
    return 0


def _utc_timestamp(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> int | None:
    # utc_mktime() only accepts a broken-down time that really exists; a leap
    # second is read as :59.
    if second == 60:
        second = 59
    if hour > 23 or minute > 59 or second > 59:
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
