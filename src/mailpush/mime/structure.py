"""The MIME tree of a raw message, found without decoding any body.

Each part records where its header and body sit in the raw bytes, plus the
parsed Content-Type and Content-Disposition; bodies are only sliced later,
by whoever needs them (the snippet reads a few KB of one text part). The
boundary search is a byte scan, so a 20 MB base64 attachment costs a
`bytes.find`, not a decode.

Boundaries follow lib-mail's message-parser: a delimiter line starts with
`--boundary` (prefix match), the line break before it belongs to it, and a
part of an outer multipart ends at the outer delimiter even when an inner
one was never closed. Nesting and part counts are capped like Dovecot's
parser settings, so hostile input cannot make the tree explode.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailpush.mime.charsets import decode_text
from mailpush.mime.headers import HeaderFields, find_body_start, parse_header_block

__all__ = ["ContentField", "MimePart", "parse_content_field", "parse_structure"]

MAX_NESTING = 100
MAX_PARTS = 10_000

_SECTION = re.compile(r"^(?P<name>[^*]+)\*(?P<index>\d+)(?P<ext>\*?)$")


@dataclass(frozen=True, slots=True)
class ContentField:
    """A parsed Content-Type or Content-Disposition value.

    `value` is the lowercased `type/subtype` (or disposition type);
    `params` has lowercased names and RFC 2231-decoded values.
    """

    value: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def main_type(self) -> str:
        return self.value.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.value.partition("/")[2]


@dataclass(slots=True)
class MimePart:
    """One entity of the message; offsets index the raw bytes given to parse_structure."""

    headers: HeaderFields
    content_type: ContentField | None  # None when the part has no Content-Type header
    disposition: ContentField | None
    header_start: int
    body_start: int
    body_end: int
    children: list[MimePart] = field(default_factory=list)

    @property
    def effective_type(self) -> str:
        """The type the body is read as: text/plain when the header is missing."""
        if self.content_type is None or not self.content_type.value:
            return "text/plain"
        return self.content_type.value

    @property
    def transfer_encoding(self) -> str:
        value = self.headers.first("Content-Transfer-Encoding")
        return (value or "").strip().lower()

    @property
    def charset(self) -> str | None:
        if self.content_type is None:
            return None
        return self.content_type.params.get("charset")

    def walk_breadth_first(self) -> Iterator[MimePart]:
        queue = [self]
        while queue:
            part = queue.pop(0)
            yield part
            queue.extend(part.children)


def parse_structure(raw: bytes) -> MimePart:
    """Build the MIME tree of a whole message; never raises."""
    budget = [MAX_PARTS]
    return _parse_entity(raw, 0, len(raw), "text/plain", 0, budget)


def parse_content_field(value: str | None) -> ContentField | None:
    """Parse `type/subtype; name=value; ...`, tolerating junk the way a mail reader must."""
    if value is None:
        return None
    text = value.replace("\n", " ")
    head, _, rest = text.partition(";")
    main = head.strip().lower()
    main = "".join(main.split())
    return ContentField(main, _parse_params(rest))


def _parse_entity(
    raw: bytes, start: int, end: int, default_type: str, depth: int, budget: list[int]
) -> MimePart:
    budget[0] -= 1
    header_end, body_start = find_body_start(raw, start, end)
    headers = parse_header_block(raw[start:header_end])
    content_type = parse_content_field(headers.first("Content-Type"))
    if content_type is None and default_type != "text/plain":
        content_type = ContentField(default_type)
    part = MimePart(
        headers=headers,
        content_type=content_type,
        disposition=parse_content_field(headers.first("Content-Disposition")),
        header_start=start,
        body_start=body_start,
        body_end=end,
    )
    if depth >= MAX_NESTING or budget[0] <= 0 or content_type is None:
        return part
    if content_type.main_type == "multipart":
        boundary = content_type.params.get("boundary")
        if boundary:
            child_default = "message/rfc822" if content_type.subtype == "digest" else "text/plain"
            for child_start, child_end in _split_multipart(raw, body_start, end, boundary):
                if budget[0] <= 0:
                    break
                part.children.append(
                    _parse_entity(raw, child_start, child_end, child_default, depth + 1, budget)
                )
    elif content_type.value == "message/rfc822" and body_start < end:
        part.children.append(_parse_entity(raw, body_start, end, "text/plain", depth + 1, budget))
    return part


def _split_multipart(raw: bytes, start: int, end: int, boundary: str) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each body part between delimiter lines."""
    delimiter = b"--" + boundary.encode("utf-8", errors="replace")
    # Positions of delimiter lines: (line_start, after_line_break_before_it).
    current: int | None = None
    pos = start
    while pos < end:
        if raw.startswith(delimiter, pos, end) and (pos == start or raw[pos - 1] == 0x0A):
            found = pos
        else:
            hit = raw.find(b"\n" + delimiter, pos, end)
            if hit < 0:
                break
            found = hit + 1
        if current is not None:
            part_end = found - 1  # the LF before the delimiter belongs to it
            if part_end > current and raw[part_end - 1] == 0x0D:
                part_end -= 1
            yield current, max(current, part_end)
        line_end = raw.find(b"\n", found, end)
        after = found + len(delimiter)
        if raw.startswith(b"--", after, end):
            return  # close delimiter; the epilogue is not a part
        if line_end < 0:
            return
        current = line_end + 1
        pos = current
    if current is not None and current < end:
        yield current, end  # unterminated last part runs to the end, as in Dovecot


def _parse_params(rest: str) -> dict[str, str]:
    params: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    pos = 0
    size = len(rest)
    while pos < size:
        while pos < size and rest[pos] in " \t\r\n;":
            pos += 1
        name_start = pos
        while pos < size and rest[pos] not in "=;":
            pos += 1
        name = rest[name_start:pos].strip().lower()
        if pos >= size or rest[pos] != "=":
            continue
        pos += 1
        while pos < size and rest[pos] in " \t":
            pos += 1
        if pos < size and rest[pos] == '"':
            value, pos = _quoted(rest, pos)
        else:
            value_start = pos
            while pos < size and rest[pos] != ";":
                pos += 1
            value = rest[value_start:pos].strip()
        if not name:
            continue
        section = _SECTION.match(name)
        if section is not None:
            chunks = sections.setdefault(section["name"], {})
            chunks.setdefault(int(section["index"]), (value, bool(section["ext"])))
        elif name.endswith("*"):
            params.setdefault(name[:-1], _decode_2231(value, first=True)[1])
        else:
            params.setdefault(name, value)
    for name, chunks in sections.items():
        charset: str | None = None
        decoded: list[str] = []
        raw_bytes = bytearray()
        for index in sorted(chunks):
            value, extended = chunks[index]
            if extended:
                found_charset, data = _split_2231(value, first=index == 0)
                if index == 0:
                    charset = found_charset
                raw_bytes += data
            else:
                if raw_bytes:
                    decoded.append(decode_text(bytes(raw_bytes), charset))
                    raw_bytes = bytearray()
                decoded.append(value)
        if raw_bytes:
            decoded.append(decode_text(bytes(raw_bytes), charset))
        params.setdefault(name, "".join(decoded))
    return params


def _quoted(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
            continue
        if char == '"':
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    return "".join(out), pos


def _split_2231(value: str, first: bool) -> tuple[str | None, bytes]:
    charset: str | None = None
    if first and value.count("'") >= 2:
        charset, _, rest = value.partition("'")
        _, _, value = rest.partition("'")
    return charset or None, urllib.parse.unquote_to_bytes(value)


def _decode_2231(value: str, first: bool) -> tuple[str | None, str]:
    charset, data = _split_2231(value, first)
    return charset, decode_text(data, charset)
