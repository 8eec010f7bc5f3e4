"""Reading a header block and decoding RFC 2047 words, the way Dovecot does.

A field is found by a byte search of the header block only, so a lookup
costs a scan of the headers, never of the body and never a Python loop
per header line. Values keep their folds: Dovecot
(Maildir) hands out a folded header as `first line + "\\n" + continuation`
with the continuation's leading blanks intact; we store CRLF, so the "\\r"
of each line end is dropped here.

The RFC 2047 decoder is a port of lib-mail's message_header_decode(): an
encoded word is recognised anywhere (not only between blanks), whitespace
that only separates two encoded words is dropped, a malformed word is kept
as text, and an unknown charset falls back to UTF-8.
"""

from __future__ import annotations

import binascii
import re

from mailpush.mime.charsets import decode_text, is_utf8_charset

__all__ = [
    "HeaderFields",
    "decode_encoded_words",
    "find_body_start",
    "parse_header_block",
    "split_header_fields",
]

_EMPTY_LINE = re.compile(rb"\n\r?\n")
_LINE_SPLIT = re.compile(rb"\r?\n")
_LWSP = " \t\r\n"
_BASE64_PREFIX = re.compile(rb"[A-Za-z0-9+/]*")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def find_body_start(data: bytes, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Where the header block of the entity at `start` ends and its body begins.

    Returns `(header_end, body_start)`; without an empty line everything up
    to `end` is header and the body is empty, which is how Dovecot reads a
    message that lacks the separator.
    """
    stop = len(data) if end is None else end
    if data.startswith(b"\n", start, stop):
        return start, start + 1
    if data.startswith(b"\r\n", start, stop):
        return start, start + 2
    match = _EMPTY_LINE.search(data, start, stop)
    if match is None:
        return stop, stop
    return match.start() + 1, match.end()


class HeaderFields:
    """Lookups in one header block, found by byte search rather than by splitting every line.

    A message with megabytes of headers must not cost a Python loop per
    line; a field is located by searching the lowercased block for
    "\\n<name>", then only that field's lines are read.
    """

    __slots__ = ("_block", "_lowered")

    def __init__(self, block: bytes) -> None:
        self._block = block
        self._lowered: bytes | None = None

    def first(self, name: str) -> str | None:
        """The first field called `name` (case-insensitive) as text, or None if absent."""
        raw = self.first_bytes(name)
        return None if raw is None else raw.decode("utf-8", errors="replace")

    def first_bytes(self, name: str) -> bytes | None:
        block = self._block
        if self._lowered is None:
            self._lowered = block.lower()
        lowered = self._lowered
        wanted = name.lower().encode("ascii")
        pos = 0 if lowered.startswith(wanted) else -1
        search_from = 0
        while True:
            if pos < 0:
                hit = lowered.find(b"\n" + wanted, search_from)
                if hit < 0:
                    return None
                pos = hit + 1
            after = pos + len(wanted)
            while after < len(block) and block[after] in (0x20, 0x09):
                after += 1
            if block[after : after + 1] == b":":
                return _field_value(block, after + 1)
            search_from = pos
            pos = -1


def parse_header_block(block: bytes) -> HeaderFields:
    """Wrap a header block (everything before the empty line) for field lookups."""
    return HeaderFields(block)


def split_header_fields(header: bytes) -> list[tuple[str, bytes]]:
    """Every field of a header block in order: (lowercased name, unfolded and trimmed value).

    For readers that walk all fields (ENVELOPE, SEARCH, Sieve) rather than
    look one up. Lines without a colon, and continuation lines with no
    field before them, are skipped as MUAs skip them.
    """
    out: list[tuple[str, bytes]] = []
    name: str | None = None
    value: list[bytes] = []
    for line in _LINE_SPLIT.split(header):
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                value.append(line)
            continue
        if name is not None:
            out.append((name, b"".join(value).strip()))
            name = None
        colon = line.find(b":")
        if colon <= 0:
            continue
        name = line[:colon].strip().decode("latin-1").lower()
        value = [line[colon + 1 :]]
    if name is not None:
        out.append((name, b"".join(value).strip()))
    return out


def _field_value(block: bytes, start: int) -> bytes:
    """The value starting after a colon: its first line plus any continuation lines."""
    lines: list[bytes] = []
    pos = start
    size = len(block)
    while True:
        newline = block.find(b"\n", pos)
        line_end = size if newline < 0 else newline
        line = block[pos:line_end]
        lines.append(line[:-1] if line.endswith(b"\r") else line)
        if newline < 0 or block[newline + 1 : newline + 2] not in (b" ", b"\t"):
            break
        pos = newline + 1
    lines[0] = _first_line_value(lines[0])
    return b"\n".join(lines)


def _first_line_value(rest: bytes) -> bytes:
    # Dovecot drops the blanks after the colon, unless the value is nothing but
    # blanks: then it drops only the first one.
    stripped = rest.lstrip(b" \t")
    if stripped:
        return stripped
    return rest[1:]


def decode_encoded_words(value: str) -> str:
    """RFC 2047-decode a header value to text, the lib-mail way; never raises."""
    out: list[str] = []
    size = len(value)
    start = 0
    pos = value.find("=?")
    while 0 <= pos and pos + 1 < size:
        if pos != start and value[start:pos].strip(_LWSP):
            out.append(value[start:pos])
        decoded = _decode_one_word(value, pos + 2)
        if decoded is None:
            start = pos
            pos = value.find("=?", pos + 2)
            continue
        text, pos = decoded
        out.append(text)
        start = pos
        pos = value.find("=?", pos)
    if start < size:
        out.append(value[start:])
    return "".join(out)


def _decode_one_word(value: str, pos: int) -> tuple[str, int] | None:
    """Decode `charset?X?text?=` starting at `pos`; return (text, end) or None if malformed."""
    marks: list[int] = []
    search = pos
    while len(marks) < 3:
        found = value.find("?", search)
        if found < 0:
            return None
        marks.append(found)
        search = found + 1
    first, second, third = marks
    if value[third + 1 : third + 2] != "=":
        return None
    charset = value[pos:first]
    encoding = value[first + 1 : first + 2]
    payload = value[second + 1 : third].encode("utf-8", errors="replace")
    if encoding in ("q", "Q"):
        data = _q_decode(payload)
    elif encoding in ("b", "B"):
        data = _b_decode(payload)
    else:
        return None
    if is_utf8_charset(charset):
        text = data.decode("utf-8", errors="replace")
    else:
        text = decode_text(data, charset)
    return text, third + 2


def _q_decode(payload: bytes) -> bytes:
    # quoted_printable_q_decode(): "_" is a space, "=XX" a byte, any other
    # "=" is kept as it is.
    out = bytearray()
    i = 0
    size = len(payload)
    while i < size:
        byte = payload[i]
        if byte == 0x5F:  # "_"
            out.append(0x20)
        elif (
            byte == 0x3D
            and i + 2 < size
            and payload[i + 1] in _HEX_DIGITS
            and payload[i + 2] in _HEX_DIGITS
        ):
            out.append(int(payload[i + 1 : i + 3], 16))
            i += 2
        else:
            out.append(byte)
        i += 1
    return bytes(out)


def _b_decode(payload: bytes) -> bytes:
    # Decode what is valid up to the first foreign character (padding
    # included) and keep it, as Dovecot shows "what we got so far".
    match = _BASE64_PREFIX.match(payload)
    chars = match.group(0) if match else b""
    usable = len(chars) - len(chars) % 4
    out = bytearray(_a2b(chars[:usable]))
    tail = chars[usable:]
    if len(tail) >= 2:
        out += _a2b(tail + b"=" * (4 - len(tail)))
    return bytes(out)


def _a2b(chars: bytes) -> bytes:
    try:
        return binascii.a2b_base64(chars)
    except (binascii.Error, ValueError):
        return b""
