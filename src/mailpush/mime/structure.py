"""The MIME tree of a raw message, found without decoding any body: one parse for all readers.

Push fields (snippet, calendar), IMAP (ENVELOPE, BODYSTRUCTURE, BODY[section],
SEARCH) and Sieve `body` tests all walk this tree, so they agree on where a
part starts and ends. Each part records where its header and body sit in the
raw bytes; bodies are only sliced later, by whoever needs them (the snippet
reads a few KB of one text part). The boundary search is a byte scan, so a
20 MB base64 attachment costs a `bytes.find`, not a decode.

Two views of a part's type are kept because two consumers need them:
`content_type` is the forgiving, RFC 2231-decoded reading the push fields
use; `main_type`/`subtype`/`params` are the strict reading IMAP renders
(Dovecot's: a Content-Type without `type/subtype` is ignored, parameters go
out byte for byte). The strict one decides the shape of the tree.

Boundaries follow lib-mail's message-parser, checked against Dovecot 2.3.19:
a delimiter line starts with `--boundary` (prefix match), the line break
before it belongs to it, a part of an outer multipart ends at the outer
delimiter even when an inner one was never closed, and a delimiter line at
the very end opens one last, empty part. Nesting and part counts are capped
like Dovecot's parser settings: a multipart or message/* part at nesting
depth `MAX_DEPTH` (the message itself is depth 0), or past `MAX_PARTS`, is
not split and reads as application/octet-stream, so hostile input cannot
make the tree explode.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailpush.mime.charsets import decode_text
from mailpush.mime.headers import (
    HeaderFields,
    find_body_start,
    parse_header_block,
    split_header_fields,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "ContentField",
    "MimePart",
    "parse_content_field",
    "parse_structure",
    "split_content_field",
]

#: Dovecot 2.3.19 BODYSTRUCTURE splits a multipart 98 levels below the message, not 99.
MAX_DEPTH = 99
MAX_PARTS = 10_000

_SECTION = re.compile(r"^(?P<name>[^*]+)\*(?P<index>\d+)(?P<ext>\*?)$")
_PARAM = re.compile(rb';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', re.S)
_QUOTED_PAIR = re.compile(rb"\\(.)", re.S)
# A part's header always starts the string or follows a line break, so `^` finds field starts.
_CONTENT_TYPE = re.compile(rb"^content-type[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_LINE_BREAK = re.compile(rb"\r?\n")


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


@dataclass(slots=True, eq=False)
class MimePart:
    """One entity of the message; offsets index `raw`, the bytes given to parse_structure.

    `header_end` is where the header block stops, `body_start` where the
    body begins (after the empty line); `children` are the parts of a
    multipart, `message` the message a message/rfc822 (or /global) part
    encapsulates.
    """

    raw: bytes
    header_start: int
    header_end: int
    body_start: int
    body_end: int
    #: The strict type IMAP shows; text/plain (or the multipart's default) when unusable.
    main_type: str = "text"
    subtype: str = "plain"
    #: Content-Type parameters as sent: (name, unquoted value) in order.
    params: list[tuple[bytes, bytes]] = field(default_factory=list)
    children: list[MimePart] = field(default_factory=list)
    message: MimePart | None = None
    default_type: str = "text/plain"
    _headers: HeaderFields | None = None
    _content_type: ContentField | None = None
    _content_type_read: bool = False
    _fields: list[tuple[str, bytes]] | None = None

    @property
    def headers(self) -> HeaderFields:
        """Single-field lookups with Dovecot's folding (see mime.headers), for the push fields."""
        if self._headers is None:
            self._headers = parse_header_block(self.raw[self.header_start : self.header_end])
        return self._headers

    @property
    def content_type(self) -> ContentField | None:
        """The forgiving reading; None when the part has no Content-Type header.

        A part of a multipart/digest without the header reads as message/rfc822.
        """
        if not self._content_type_read:
            found = parse_content_field(self.headers.first("Content-Type"))
            if found is None and self.default_type != "text/plain":
                found = ContentField(self.default_type)
            self._content_type = found
            self._content_type_read = True
        return self._content_type

    @property
    def disposition(self) -> ContentField | None:
        return parse_content_field(self.headers.first("Content-Disposition"))

    @property
    def effective_type(self) -> str:
        """The type the body is read as: text/plain when the header is missing."""
        content_type = self.content_type
        if content_type is None or not content_type.value:
            return "text/plain"
        return content_type.value

    @property
    def transfer_encoding(self) -> str:
        value = self.headers.first("Content-Transfer-Encoding")
        return (value or "").strip().lower()

    @property
    def charset(self) -> str | None:
        content_type = self.content_type
        if content_type is None:
            return None
        return content_type.params.get("charset")

    @property
    def header(self) -> bytes:
        """The header block with the empty line that closes it."""
        return self.raw[self.header_start : self.body_start]

    @property
    def body(self) -> bytes:
        return self.raw[self.body_start : self.body_end]

    @property
    def is_multipart(self) -> bool:
        return self.main_type == "multipart"

    @property
    def fields(self) -> list[tuple[str, bytes]]:
        """(lowercased name, unfolded value) pairs in order, for readers of every field."""
        if self._fields is None:
            self._fields = split_header_fields(self.header)
        return self._fields

    def field(self, name: str) -> bytes | None:
        """The first field called `name` (lowercased), unfolded; None if absent."""
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def walk_breadth_first(self) -> Iterator[MimePart]:
        queue = [self]
        while queue:
            part = queue.pop(0)
            yield part
            queue.extend(part.children)
            if part.message is not None:
                queue.append(part.message)

    def leaves(self) -> Iterator[MimePart]:
        """Parts that are neither split multiparts nor encapsulating messages, in message order."""
        stack = [self]
        while stack:
            part = stack.pop()
            if part.message is not None:
                stack.append(part.message)
            elif part.children:
                stack.extend(reversed(part.children))
            else:
                yield part


def parse_structure(raw: bytes) -> MimePart:
    """Build the MIME tree of a whole message; never raises."""
    budget = [MAX_PARTS]
    return _parse_entity(raw, 0, len(raw), "text", "plain", 0, budget)


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
    raw: bytes,
    start: int,
    end: int,
    default_type: str,
    default_subtype: str,
    depth: int,
    budget: list[int],
) -> MimePart:
    budget[0] -= 1
    header_end, body_start = find_body_start(raw, start, end)
    part = MimePart(
        raw,
        start,
        header_end,
        body_start,
        end,
        default_type,
        default_subtype,
        default_type=f"{default_type}/{default_subtype}",
    )
    found = _CONTENT_TYPE.search(raw, start, header_end)
    if found is not None:
        # Unfolded and trimmed exactly as `MimePart.fields` would give it, without
        # splitting every header line of every part.
        content_type = _LINE_BREAK.sub(b"", found.group(1)).strip()
        value, part.params = split_content_field(content_type)
        main, slash, sub = value.decode("latin-1").lower().partition("/")
        if slash and main and sub:
            part.main_type, part.subtype = main.strip(), sub.strip()
    if depth >= MAX_DEPTH or budget[0] <= 0:
        if part.is_multipart or part.main_type == "message":
            part.main_type, part.subtype = "application", "octet-stream"
        return part
    if part.is_multipart:
        boundary = _boundary(part)
        if boundary:
            child_type = ("message", "rfc822") if part.subtype == "digest" else ("text", "plain")
            for child_start, child_end in _split_multipart(raw, body_start, end, boundary):
                if budget[0] <= 0:
                    break
                part.children.append(
                    _parse_entity(raw, child_start, child_end, *child_type, depth + 1, budget)
                )
    elif part.main_type == "message" and part.subtype in ("rfc822", "global"):
        part.message = _parse_entity(raw, body_start, end, "text", "plain", depth + 1, budget)
    return part


def _boundary(part: MimePart) -> bytes | None:
    for name, value in part.params:
        if name.lower() == b"boundary":
            return value
    # Only an RFC 2231 `boundary*0=` form is left; Dovecot decodes it too.
    content_type = part.content_type
    decoded = content_type.params.get("boundary") if content_type is not None else None
    return decoded.encode("utf-8", errors="replace") if decoded else None


def _split_multipart(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Body ranges between `--boundary` lines; the line break before a delimiter is its own."""
    delimiter = b"--" + boundary
    spans: list[tuple[int, int]] = []
    part_start: int | None = None
    pos = start
    while pos <= end:
        if raw.startswith(delimiter, pos) and (pos == start or raw[pos - 1] == 0x0A):
            found = pos
        else:
            found = raw.find(b"\n" + delimiter, pos, end)
            if found < 0:
                break
            found += 1
        line_break = found - 1
        if line_break >= start and raw[line_break] == 0x0A:
            if line_break - 1 >= start and raw[line_break - 1] == 0x0D:
                line_break -= 1
        else:
            line_break = found
        if part_start is not None:
            spans.append((part_start, max(part_start, line_break)))
        after = found + len(delimiter)
        if raw.startswith(b"--", after):
            return spans
        eol = raw.find(b"\n", after, end)
        if eol < 0:
            return spans
        part_start = eol + 1
        pos = part_start
    if part_start is not None and part_start <= end:
        spans.append((part_start, end))
    return spans


def split_content_field(value: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """`type/subtype; a=b` as sent: the value and (name, unquoted value) pairs, bytes kept."""
    main, _, rest = value.partition(b";")
    params: list[tuple[bytes, bytes]] = []
    for match in _PARAM.finditer(b";" + rest):
        name, raw_value = match.group(1), match.group(2)
        if raw_value.startswith(b'"') and raw_value.endswith(b'"') and len(raw_value) >= 2:
            raw_value = _QUOTED_PAIR.sub(rb"\1", raw_value[1:-1])
        params.append((name, raw_value))
    return main.strip(), params


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
