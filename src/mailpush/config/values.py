"""Turning Dovecot-style value text into Python values.

These parsers are shared by the settings layer and by drivers that read their own
options (`msg_max_size=500kb`, `cache_lifetime=30s`), so that a size or a duration
means the same thing everywhere. They raise `InvalidValueError` (a `ValueError`)
whose message says what was expected; the caller adds the setting name and place.
"""

from __future__ import annotations

import re

from mailpush.errors import InvalidValueError

__all__ = [
    "parse_bool",
    "parse_duration",
    "parse_int",
    "parse_list",
    "parse_size",
]

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
}

_DURATION_UNITS: dict[str, float] = {
    "ms": 0.001,
    "msec": 0.001,
    "msecs": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}

_SIZE_RE = re.compile(r"\s*(\d+)\s*([A-Za-z]*)\s*")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_INT_RE = re.compile(r"\s*[-+]?\d+\s*")
_LIST_SPLIT_RE = re.compile(r"[\s,]+")

_TRUE = frozenset({"yes", "true", "1"})
_FALSE = frozenset({"no", "false", "0"})


def parse_size(text: str) -> int:
    """Bytes from a Dovecot size: a whole number with an optional binary unit.

    Units are b, k/kb, m/mb, g/gb, t/tb in any case (`500kb`, `10M`); a bare
    number is bytes. Dovecot's units are powers of 1024, so `1k` is 1024 bytes.
    """
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise InvalidValueError(
            f"expected a size such as 500kb or 10M (units: b, k, kb, m, mb, g, gb, t, tb), "
            f"got {text!r}"
        )
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_duration(text: str, *, bare_unit: str | None = "s") -> float:
    """Seconds from a Dovecot time: a number with a unit (`30s`, `5 mins`, `100ms`).

    Dovecot itself insists on a unit; mailpush's own settings accept a bare number
    as `bare_unit` (seconds by default). Pass `bare_unit=None` to require a unit,
    as Dovecot does for its settings.
    """
    match = _DURATION_RE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is not None and unit == "" and bare_unit is not None:
        unit = bare_unit
    if match is None or unit not in _DURATION_UNITS:
        raise InvalidValueError(
            f"expected a duration such as 30s, 5m or 100ms "
            f"(units: ms, s, m, h, d, w and their long forms), got {text!r}"
        )
    return float(match.group(1)) * _DURATION_UNITS[unit]


def parse_bool(text: str) -> bool:
    """Dovecot booleans: yes/no, and the true/false/1/0 spellings people also write."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidValueError(f"expected yes or no, got {text!r}")


def parse_int(text: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A decimal integer, optionally bounded; the message names the allowed range."""
    if _INT_RE.fullmatch(text) is None:
        raise InvalidValueError(f"expected a whole number, got {text!r}")
    value = int(text)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else str(minimum)
        high = "" if maximum is None else str(maximum)
        raise InvalidValueError(f"expected a number in {low}..{high}, got {value}")
    return value


def parse_host_port(text: str) -> tuple[str, int] | None:
    """`address:port` (`[::1]:9100` for IPv6); empty means "not configured"."""
    text = text.strip()
    if not text:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise InvalidValueError(f"expected address:port such as 127.0.0.1:9100, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = parse_int(port_text, minimum=0, maximum=65535)
    return host, port


def parse_list(text: str) -> tuple[str, ...]:
    """Words separated by spaces and/or commas (`imap lmtp`, `*, ::`)."""
    return tuple(word for word in _LIST_SPLIT_RE.split(text) if word)
