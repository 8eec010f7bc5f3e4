"""Rendering IMAP data (strings, flags, dates, names) and writing whole responses.

`ResponseBuffer` collects every line of a response (or of a FETCH batch) and
hands it to the transport in one write, so a client never sees one response
spread over many small TCP segments.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Protocol

from ..store import flags as F
from .mutf7 import encode_mutf7

__all__ = [
    "ResponseBuffer",
    "Transport",
    "format_flags",
    "format_internal_date",
    "mailbox_name",
    "nstring",
    "string",
]

#: Flush a response being built once it holds this much (big FETCH answers).
FLUSH_THRESHOLD = 256 * 1024

_NOT_QUOTABLE = re.compile(rb"[^\x01-\x09\x0b\x0c\x0e-\x7f]")
_QUOTED_SPECIALS = re.compile(rb'["\\\\]')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...


class ResponseBuffer:
    """Bytes waiting to be sent; `flush` hands them over in a single write."""

    __slots__ = ("_parts", "_size", "_transport")

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._parts: list[bytes] = []
        self._size = 0

    def set_transport(self, transport: Transport) -> None:
        self._transport = transport

    def add(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)

    def line(self, text: str) -> None:
        """One response line from ASCII text; CRLF is appended."""
        data = text.encode("utf-8") + b"\r\n"
        self._parts.append(data)
        self._size += len(data)

    @property
    def size(self) -> int:
        return self._size

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            self._transport.write(data)

    def discard(self) -> None:
        self._parts.clear()
        self._size = 0


def string(value: bytes) -> bytes:
    """A quoted string when the bytes allow it (7-bit, no CR/LF/NUL), else a literal."""
    if _NOT_QUOTABLE.search(value) is None:
        if _QUOTED_SPECIALS.search(value) is not None:
            value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + value + b'"'
    return b"{%d}\r\n%s" % (len(value), value)


def nstring(value: bytes | None) -> bytes:
    return b"NIL" if value is None else string(value)


def mailbox_name(name: str) -> bytes:
    """A mailbox name in modified UTF-7, quoted when it is not a plain atom."""
    wire = encode_mutf7(name).encode("ascii")
    if wire and all(c in _ATOM_SAFE for c in wire):
        return wire
    return string(wire)


_ATOM_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/&+!")


def format_flags(mask: int, keywords: Iterable[str], recent: bool = False) -> str:
    """`(\\Seen \\Recent $Label)`: system flags in Dovecot's order, then keywords."""
    names = [name for bit, name in F.FLAG_NAMES if mask & bit and bit != F.RECENT]
    if recent:
        names.append("\\Recent")
    names.extend(keywords)
    return "(" + " ".join(names) + ")"


def format_internal_date(epoch: int, tz_minutes: int) -> str:
    """`"17-Jul-1996 02:44:25 -0700"`; `tz_minutes` is the offset east of UTC."""
    tm = time.gmtime(epoch + tz_minutes * 60)
    sign = "-" if tz_minutes < 0 else "+"
    offset = abs(tz_minutes)
    return (
        f'"{tm.tm_mday:02d}-{_MONTHS[tm.tm_mon - 1]}-{tm.tm_year:04d} '
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} "
        f'{sign}{offset // 60:02d}{offset % 60:02d}"'
    )
