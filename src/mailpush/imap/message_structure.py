"""The MIME tree as IMAP shows it: ENVELOPE, BODYSTRUCTURE and BODY[section] bytes.

The tree itself is `mailpush.mime.structure`'s, the one every reader of a
message shares; this module only renders it. Header values are handled as
Latin-1 text, which maps every byte to one character and back, so 8-bit
headers reach the client byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..mime.addresses import ListedAddress, parse_address_list
from ..mime.structure import MimePart, split_content_field
from .responses import string

__all__ = [
    "SectionSpec",
    "part_at",
    "render_envelope",
    "render_body_structure",
    "section_bytes",
]

@dataclass(frozen=True, slots=True)
class SectionSpec:
    """`BODY[1.2.HEADER.FIELDS (From)]` split into part path, kind and field names."""

    path: tuple[int, ...] = ()
    #: "" (whole part), HEADER, TEXT, MIME, HEADER.FIELDS or HEADER.FIELDS.NOT.
    kind: str = ""
    fields: tuple[str, ...] = ()


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
    """An address list as Dovecot renders it: groups, routes and MISSING_* parts kept."""
    if not value or not value.strip():
        return b"NIL"
    text = value.decode("latin-1")
    entries = _simple_addresses(text)
    if entries is None:
        entries = parse_address_list(text)
    if not entries:
        return b"NIL"
    return b"(" + b"".join(_address(entry) for entry in entries) + b")"


def _address(entry: ListedAddress) -> bytes:
    fields = (entry.name, entry.route, entry.mailbox, entry.domain)
    return b"(" + b" ".join(_nstring_text(field) for field in fields) + b")"


def _nstring_text(value: str | None) -> bytes:
    return b"NIL" if value is None else string(value.encode("latin-1"))


def _simple_addresses(text: str) -> list[ListedAddress] | None:
    """The plain forms most mail uses (`a@b`, `Name <a@b>`) without the full parser; None
    when the header needs it."""
    if _NEEDS_FULL_PARSER.search(text) is not None:
        return None
    entries: list[ListedAddress] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        match = _SIMPLE_ADDRESS.match(item)
        if match is None:
            return None
        name = " ".join((match.group(1) or "").split()) or None
        local, _, domain = (match.group(2) or match.group(3)).rpartition("@")
        entries.append(ListedAddress(name, None, local, domain))
    return entries


_NEEDS_FULL_PARSER = re.compile(r'["()\\:;\[\]]')
_SIMPLE_ADDRESS = re.compile(
    r"^(?:([^<>@,]*?)\s*<([^<>\s,@]+@[^<>\s,@]+)>|([^<>\s,@]+@[^<>\s,@]+))$"
)


# --- BODYSTRUCTURE -----------------------------------------------------------------


def render_body_structure(entity: MimePart, extended: bool) -> bytes:
    """BODYSTRUCTURE (`extended`) or BODY for the message whose top entity is given."""
    if entity.is_multipart:
        children = entity.children or [
            _empty_part(entity)
        ]
        out = b"".join(render_body_structure(c, extended) for c in children)
        out = b"(" + out + b" " + string(entity.subtype.encode("latin-1"))
        if extended:
            out += b" " + _params(entity.params) + b" " + _extension(entity, with_md5=False)
        return out + b")"
    body_size = entity.body_end - entity.body_start
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


def _empty_part(multipart: MimePart) -> MimePart:
    """The one empty text/plain part a multipart without parts is shown with."""
    at = multipart.body_start
    return MimePart(multipart.raw, at, at, at, multipart.body_end)


def _extension(entity: MimePart, with_md5: bool) -> bytes:
    parts: list[bytes] = []
    if with_md5:
        parts.append(_nstring_field(entity.field("content-md5")))
    disposition = entity.field("content-disposition")
    if disposition:
        kind, params = split_content_field(disposition)
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


def part_at(message: MimePart, path: tuple[int, ...]) -> MimePart | None:
    """The part a section path names (BODY[] and BINARY[] walk alike), or None."""
    entity = message
    for depth, number in enumerate(path):
        if depth > 0 and entity.message is not None:
            entity = entity.message
        if entity.children:
            if number > len(entity.children):
                return None
            entity = entity.children[number - 1]
        elif number != 1:
            return None
    return entity


def section_bytes(message: MimePart, spec: SectionSpec) -> bytes | None:
    """The bytes `BODY[spec]` returns, or None when the part does not exist."""
    entity = part_at(message, spec.path)
    if entity is None:
        return None
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
