"""The MIME tree of a raw message as IMAP sees it: ENVELOPE, BODYSTRUCTURE, sections.

Parsing works on byte offsets into the raw message and never decodes a body,
so malformed MIME, 8-bit headers and huge attachments cost a few `bytes.find`
calls. Header values are handled as Latin-1 text, which maps every byte to
one character and back, so 8-bit headers reach the client byte for byte.
Nesting is capped: a hostile message cannot make the tree explode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..mime.addresses import split_address_list
from .responses import string

__all__ = [
    "MimeEntity",
    "SectionSpec",
    "parse_message",
    "parse_header_fields",
    "render_envelope",
    "render_body_structure",
    "section_bytes",
]

MAX_DEPTH = 30
MAX_PARTS = 5_000

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LINE_SPLIT = re.compile(rb"\r?\n")
_PARAM = re.compile(rb';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', re.S)
_GROUP = re.compile(r'^\s*([^:"<>@,]*):(.*?);?\s*$', re.S)


@dataclass(slots=True)
class MimeEntity:
    """One part: where its header and body lie in `raw`, and what it contains."""

    raw: bytes
    header_start: int
    #: End of the header including the blank line that closes it.
    header_end: int
    body_end: int
    main_type: str = "text"
    subtype: str = "plain"
    params: list[tuple[bytes, bytes]] = field(default_factory=list)
    children: list[MimeEntity] = field(default_factory=list)
    #: For message/rfc822: the encapsulated message.
    message: MimeEntity | None = None
    _fields: list[tuple[str, bytes]] | None = None

    @property
    def header(self) -> bytes:
        return self.raw[self.header_start : self.header_end]

    @property
    def body(self) -> bytes:
        return self.raw[self.header_end : self.body_end]

    @property
    def fields(self) -> list[tuple[str, bytes]]:
        """(lower-cased name, unfolded value) pairs, in order."""
        if self._fields is None:
            self._fields = parse_header_fields(self.header)
        return self._fields

    def field(self, name: str) -> bytes | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    @property
    def is_multipart(self) -> bool:
        return self.main_type == "multipart"


@dataclass(frozen=True, slots=True)
class SectionSpec:
    """`BODY[1.2.HEADER.FIELDS (From)]` split into part path, kind and field names."""

    path: tuple[int, ...] = ()
    #: "" (whole part), HEADER, TEXT, MIME, HEADER.FIELDS or HEADER.FIELDS.NOT.
    kind: str = ""
    fields: tuple[str, ...] = ()


def parse_message(raw: bytes) -> MimeEntity:
    """The MIME tree of a whole message; never raises on malformed input."""
    budget = [MAX_PARTS]
    return _parse_entity(raw, 0, len(raw), "text", "plain", 0, budget)


def header_end_offset(raw: bytes, start: int, end: int) -> int:
    """Where the header starting at `start` ends, blank line included."""
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2
    if raw.startswith(b"\n", start) and start + 1 <= end:
        return start + 1
    match = _HEADER_END.search(raw, start, end)
    return end if match is None else match.end()


def parse_header_fields(header: bytes) -> list[tuple[str, bytes]]:
    """Unfolded header fields; lines without a colon are skipped, as MUAs do."""
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


# --- ENVELOPE -------------------------------------------------------------------

_ENVELOPE_FIELDS = (
    "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc",
    "in-reply-to", "message-id",
)  # fmt: skip


def render_envelope(fields: list[tuple[str, bytes]]) -> bytes:
    """ENVELOPE from header fields; Sender and Reply-To default to From (RFC 3501)."""
    found: dict[str, bytes] = {}
    for name, value in fields:
        if name in _ENVELOPE_SET and name not in found:
            found[name] = value
    from_ = _addresses(found.get("from"))
    sender = found.get("sender")
    reply_to = found.get("reply-to")
    parts = [
        _nstring_field(found.get("date")),
        _nstring_field(found.get("subject")),
        from_,
        _addresses(sender) if sender else from_,
        _addresses(reply_to) if reply_to else from_,
        _addresses(found.get("to")),
        _addresses(found.get("cc")),
        _addresses(found.get("bcc")),
        _nstring_field(found.get("in-reply-to")),
        _nstring_field(found.get("message-id")),
    ]
    return b"(" + b" ".join(parts) + b")"


_ENVELOPE_SET = frozenset(_ENVELOPE_FIELDS)


def _nstring_field(value: bytes | None) -> bytes:
    return b"NIL" if not value else string(value)


def _addresses(value: bytes | None) -> bytes:
    if not value or not value.strip():
        return b"NIL"
    text = value.decode("latin-1")
    rendered: list[bytes] = []
    group = _GROUP.match(text) if ":" in text and "<" not in text.partition(":")[0] else None
    if group is not None and "@" not in group.group(1):
        rendered.append(b"(NIL NIL " + string(group.group(1).strip().encode("latin-1")) + b" NIL)")
        rendered.extend(_address_list(group.group(2)))
        rendered.append(b"(NIL NIL NIL NIL)")
    else:
        rendered.extend(_address_list(text))
    if not rendered:
        return b"NIL"
    return b"(" + b"".join(rendered) + b")"


def _address_list(text: str) -> list[bytes]:
    out: list[bytes] = []
    for name, address in _split_addresses(text):
        if not name and not address:
            continue
        local, at, domain = address.rpartition("@")
        if not at:
            local, domain = address, ""
        out.append(
            b"("
            + (string(name.encode("latin-1")) if name else b"NIL")
            + b" NIL "
            + string((local or "MISSING_MAILBOX").encode("latin-1"))
            + b" "
            + string((domain or "MISSING_DOMAIN").encode("latin-1"))
            + b")"
        )
    return out


def _split_addresses(text: str) -> list[tuple[str, str]]:
    """(display name, address) pairs; a fast path for the plain forms most mail uses."""
    if _NEEDS_FULL_PARSER.search(text) is None:
        pairs: list[tuple[str, str]] = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            match = _SIMPLE_ADDRESS.match(item)
            if match is None:
                return split_address_list([text])
            pairs.append((match.group(1) or "", match.group(2) or match.group(3)))
        return pairs
    return split_address_list([text])


_NEEDS_FULL_PARSER = re.compile(r'["()\\:;\[\]]')
_SIMPLE_ADDRESS = re.compile(
    r"^(?:([^<>@,]*?)\s*<([^<>\s,]+@[^<>\s,]+)>|([^<>\s,]+@[^<>\s,]+))$"
)


# --- BODYSTRUCTURE -----------------------------------------------------------------


def render_body_structure(entity: MimeEntity, extended: bool) -> bytes:
    """BODYSTRUCTURE (`extended`) or BODY for the message whose top entity is given."""
    if entity.is_multipart:
        children = entity.children or [
            MimeEntity(entity.raw, entity.header_end, entity.header_end, entity.body_end)
        ]
        out = b"".join(render_body_structure(c, extended) for c in children)
        out = b"(" + out + b" " + string(entity.subtype.encode("latin-1"))
        if extended:
            out += b" " + _params(entity.params) + b" " + _extension(entity, with_md5=False)
        return out + b")"
    body_size = entity.body_end - entity.header_end
    encoding = entity.field("content-transfer-encoding")
    params = entity.params
    if entity.main_type == "text" and not any(k.lower() == b"charset" for k, _ in params):
        params = [(b"charset", b"us-ascii"), *params]
    items = [
        string(entity.main_type.encode("latin-1")),
        string(entity.subtype.encode("latin-1")),
        _params(params),
        _nstring_field(entity.field("content-id")),
        _nstring_field(entity.field("content-description")),
        string(encoding.strip().lower() if encoding else b"7bit"),
        str(body_size).encode(),
    ]
    if entity.main_type == "message" and entity.subtype == "rfc822" and entity.message:
        inner = entity.message
        items.append(render_envelope(inner.fields))
        items.append(render_body_structure(inner, extended))
        items.append(str(_line_count(entity.body)).encode())
    elif entity.main_type == "text":
        items.append(str(_line_count(entity.body)).encode())
    if extended:
        items.append(_extension(entity, with_md5=True))
    return b"(" + b" ".join(items) + b")"


def _extension(entity: MimeEntity, with_md5: bool) -> bytes:
    parts: list[bytes] = []
    if with_md5:
        parts.append(_nstring_field(entity.field("content-md5")))
    disposition = entity.field("content-disposition")
    if disposition:
        kind, params = _split_content_field(disposition)
        parts.append(b"(" + string(kind.lower()) + b" " + _params(params) + b")")
    else:
        parts.append(b"NIL")
    language = entity.field("content-language")
    parts.append(string(language.strip()) if language else b"NIL")
    parts.append(_nstring_field(entity.field("content-location")))
    return b" ".join(parts)


def _params(params: list[tuple[bytes, bytes]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(string(k.lower()) + b" " + string(v) for k, v in params) + b")"


def _line_count(body: bytes) -> int:
    if not body:
        return 0
    return body.count(b"\n") + (0 if body.endswith(b"\n") else 1)


# --- sections ----------------------------------------------------------------------


def section_bytes(message: MimeEntity, spec: SectionSpec) -> bytes | None:
    """The bytes `BODY[spec]` returns, or None when the part does not exist."""
    entity: MimeEntity | None = message
    for depth, number in enumerate(spec.path):
        assert entity is not None
        if depth > 0 and entity.message is not None:
            entity = entity.message
        if entity.children:
            if number > len(entity.children):
                return None
            entity = entity.children[number - 1]
        elif number != 1:
            return None
    assert entity is not None
    kind = spec.kind
    if not kind:
        if not spec.path:
            return message.raw
        return entity.body
    if kind == "MIME":
        return entity.header
    if spec.path:
        # HEADER/TEXT of a part address the message encapsulated in it.
        if entity.message is None:
            return None
        entity = entity.message
    if kind == "TEXT":
        return entity.body
    if kind == "HEADER":
        return entity.header
    wanted = {name.lower() for name in spec.fields}
    keep = kind == "HEADER.FIELDS"
    return _filter_header(entity.header, wanted, keep)


def _filter_header(header: bytes, wanted: set[str], keep: bool) -> bytes:
    lines = header.split(b"\n")
    out: list[bytes] = []
    include = False
    for line in lines:
        if not line or line in (b"\r",):
            continue
        if line[:1] in (b" ", b"\t"):
            if include:
                out.append(line + b"\n")
            continue
        name = line.split(b":", 1)[0].strip().decode("latin-1").lower()
        include = (name in wanted) == keep and b":" in line
        if include:
            out.append(line + b"\n")
    text = b"".join(out)
    # Normalise bare LF to CRLF: clients parse the result as an RFC 5322 header.
    text = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return text + b"\r\n"


# --- parsing -------------------------------------------------------------------------


def _parse_entity(
    raw: bytes,
    start: int,
    end: int,
    default_type: str,
    default_subtype: str,
    depth: int,
    budget: list[int],
) -> MimeEntity:
    budget[0] -= 1
    header_end = header_end_offset(raw, start, end)
    entity = MimeEntity(raw, start, header_end, end, default_type, default_subtype)
    content_type = entity.field("content-type")
    if content_type:
        value, params = _split_content_field(content_type)
        main, slash, sub = value.decode("latin-1").lower().partition("/")
        if slash and main and sub:
            entity.main_type, entity.subtype = main.strip(), sub.strip()
        entity.params = params
    if depth >= MAX_DEPTH or budget[0] <= 0:
        if entity.is_multipart or entity.main_type == "message":
            entity.main_type, entity.subtype = "application", "octet-stream"
        return entity
    if entity.is_multipart:
        boundary = next((v for k, v in entity.params if k.lower() == b"boundary"), None)
        if boundary:
            child_type = ("message", "rfc822") if entity.subtype == "digest" else ("text", "plain")
            for child_start, child_end in _split_multipart(raw, header_end, end, boundary):
                if budget[0] <= 0:
                    break
                entity.children.append(
                    _parse_entity(raw, child_start, child_end, *child_type, depth + 1, budget)
                )
    elif entity.main_type == "message" and entity.subtype in ("rfc822", "global"):
        entity.message = _parse_entity(raw, header_end, end, "text", "plain", depth + 1, budget)
    return entity


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


def _split_content_field(value: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    main, _, rest = value.partition(b";")
    params: list[tuple[bytes, bytes]] = []
    for match in _PARAM.finditer(b";" + rest):
        name, raw_value = match.group(1), match.group(2)
        if raw_value.startswith(b'"') and raw_value.endswith(b'"') and len(raw_value) >= 2:
            raw_value = re.sub(rb"\\(.)", rb"\1", raw_value[1:-1], flags=re.S)
        params.append((name, raw_value))
    return main.strip(), params
