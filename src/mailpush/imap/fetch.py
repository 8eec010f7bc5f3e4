"""FETCH: reading the item list a client asks for and rendering one message's answer.

Parsing a message is only paid for when an item needs the raw bytes
(ENVELOPE, BODY..., RFC822...); FLAGS and UID come from the session's view
and INTERNALDATE/RFC822.SIZE from the store's metadata. ENVELOPE and
BODYSTRUCTURE are immutable per message, so their rendered form is kept in
a shared `StructureCache`. A plan that `parses` (structure, a part, a header)
is rendered off the event loop by `heavy_work`; BODY[] and RFC822 are the
stored bytes as they are and are rendered in place.

A message the store no longer has (another session expunged it while this
one still shows it) is answered with Dovecot's NIL form of each item that
needs the store: `NIL` for a section, an envelope of NILs, an empty
text/plain body structure, size 0 and the 1970 date.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from ..mime.structure import MimePart, parse_structure
from ..store import MessageInfo
from .binary_fetch import UnknownCteError, render_binary
from .message_structure import (
    SectionSpec,
    render_body_structure,
    render_envelope,
    section_bytes,
)
from .parser import CommandSyntaxError, Tokenizer
from .responses import format_flags, format_internal_date

__all__ = [
    "FetchItem", "FetchPlan", "StructureCache", "parse_fetch_items", "render_fetch",
    "with_modseq",
]  # fmt: skip

_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE = frozenset(
    {"FLAGS", "UID", "ENVELOPE", "INTERNALDATE", "RFC822.SIZE", "BODYSTRUCTURE", "BODY",
     "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ"}
)
_NEEDS_RAW = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822", "RFC822.HEADER",
                        "BINARY", "BINARY.SIZE",
                        "RFC822.TEXT", "SECTION"})
_ITEM_NAME_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
_SECTION_KINDS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")
_PARSED = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822.HEADER", "RFC822.TEXT",
                     "BINARY", "BINARY.SIZE"})
_WHOLE = SectionSpec()
#: Dovecot 2.3.19's answers for items of an expunged message (imap-fetch.c, `nil_reply`).
_BODY_NIL = b'"text" "plain" NIL NIL NIL "7bit" 0 0'
_NIL_REPLIES = {
    "ENVELOPE": b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
    "BODY": b"(" + _BODY_NIL + b")",
    "BODYSTRUCTURE": b"(" + _BODY_NIL + b" NIL NIL NIL NIL)",
    "INTERNALDATE": b'"01-Jan-1970 00:00:00 +0000"',
    "RFC822.SIZE": b"0",
}


@dataclass(frozen=True, slots=True)
class FetchItem:
    #: FLAGS, UID, ENVELOPE, ..., or SECTION for `BODY[...]`/`BODY.PEEK[...]`.
    name: str
    section: SectionSpec | None = None
    #: How the item is named in the answer (`BODY[HEADER.FIELDS (From)]`).
    label: bytes = b""
    partial: tuple[int, int] | None = None
    peek: bool = False


@dataclass(frozen=True, slots=True)
class FetchPlan:
    items: tuple[FetchItem, ...]
    needs_raw: bool
    needs_info: bool
    #: Whether fetching sets `\\Seen` (BODY[...] without PEEK, RFC822, RFC822.TEXT).
    sets_seen: bool
    #: Whether only ENVELOPE/BODYSTRUCTURE need the raw bytes (a cache can answer).
    structure_only: bool
    #: Whether answering parses the message (structure, a part, a header): work whose
    #: cost the client controls, run off the event loop. BODY[] and RFC822 only copy.
    parses: bool = False

    @property
    def has_modseq(self) -> bool:
        """Whether MODSEQ is asked for: a CONDSTORE-enabling FETCH (RFC 7162 §3.1)."""
        return any(item.name == "MODSEQ" for item in self.items)


def parse_fetch_items(tokens: Tokenizer, uid_command: bool) -> FetchPlan:
    """The FETCH item list: a macro, one item, or a parenthesised list."""
    items: list[FetchItem] = []
    if tokens.open_paren():
        while True:
            items.extend(_item(tokens))
            if tokens.close_paren():
                break
            tokens.space()
    else:
        items.extend(_item(tokens))
    if uid_command and not any(item.name == "UID" for item in items):
        items.insert(0, FetchItem("UID"))
    names = {item.name for item in items}
    needs_raw = bool(names & _NEEDS_RAW)
    sets_seen = any(
        (item.name in ("SECTION", "BINARY") and not item.peek)
        or item.name in ("RFC822", "RFC822.TEXT")
        for item in items
    )
    structure_only = needs_raw and names <= {
        "ENVELOPE", "BODYSTRUCTURE", "BODY", "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE",
    }
    parses = any(
        item.name in _PARSED or (item.name == "SECTION" and item.section != _WHOLE)
        for item in items
    )
    return FetchPlan(
        tuple(items),
        needs_raw,
        bool(names & {"INTERNALDATE", "RFC822.SIZE"}),
        sets_seen,
        structure_only,
        parses,
    )


def with_modseq(plan: FetchPlan) -> FetchPlan:
    """FETCH ... (CHANGEDSINCE n): MODSEQ is answered too, last unless asked for."""
    if plan.has_modseq:
        return plan
    return replace(plan, items=(*plan.items, FetchItem("MODSEQ")))


def _item(tokens: Tokenizer) -> list[FetchItem]:
    start = tokens.pos
    name = tokens.run_of(_ITEM_NAME_CHARS, "fetch item").upper()
    if name in _MACROS:
        return [FetchItem(n) for n in _MACROS[name]]
    if name in ("BODY", "BODY.PEEK") and tokens.peek_is(b"["):
        return [_section_item(tokens, peek=name == "BODY.PEEK", start=start)]
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE") and tokens.peek_is(b"["):
        return [_binary_item(name, _section_item(tokens, peek=name != "BINARY", start=start))]
    if name.startswith("BINARY"):
        raise CommandSyntaxError("Invalid BINARY[..] parameter: Missing '['.")
    if name not in _SIMPLE:
        raise CommandSyntaxError(f"Unknown FETCH item {name}")
    return [FetchItem(name)]


def _section_item(tokens: Tokenizer, peek: bool, start: int) -> FetchItem:
    tokens.expect(b"[")
    section_start = tokens.pos
    path: list[int] = []
    kind = ""
    fields: tuple[str, ...] = ()
    while tokens.peek() is not None and 0x30 <= (tokens.peek() or 0) <= 0x39:
        path.append(tokens.nz_number("section part"))
        if not tokens.peek_is(b"."):
            break
        tokens.pos += 1
    if not tokens.peek_is(b"]"):
        upper = tokens.data[tokens.pos : tokens.pos + 17].upper()
        for candidate in _SECTION_KINDS:
            if upper.startswith(candidate.encode()):
                kind = candidate
                tokens.pos += len(candidate)
                break
        else:
            raise CommandSyntaxError("Invalid BODY[] section")
        if kind == "MIME" and not path:
            raise CommandSyntaxError("BODY[MIME] needs a part number")
        if kind.startswith("HEADER.FIELDS"):
            tokens.space()
            if not tokens.open_paren():
                raise CommandSyntaxError("HEADER.FIELDS needs a parenthesised list")
            names: list[str] = []
            while True:
                names.append(tokens.astring().decode("latin-1"))
                if tokens.close_paren():
                    break
                tokens.space()
            fields = tuple(names)
    section_text = tokens.data[section_start : tokens.pos]
    tokens.expect(b"]")
    partial = None
    label = b"BODY[" + section_text.upper() + b"]"
    if fields:
        head, _, _ = section_text.partition(b"(")
        label = b"BODY[" + head.upper() + b"(" + " ".join(fields).encode("latin-1") + b")]"
    if tokens.peek_is(b"<"):
        tokens.pos += 1
        offset = tokens.number("partial offset")
        tokens.expect(b".")
        length = tokens.nz_number("partial length")
        tokens.expect(b">")
        partial = (offset, length)
        label += b"<%d>" % offset
    return FetchItem("SECTION", SectionSpec(tuple(path), kind, fields), label, partial, peek)


def _binary_item(name: str, section: FetchItem) -> FetchItem:
    """BINARY[...] (RFC 3516) from its BODY[...] twin: same section grammar, other label.

    BINARY.SIZE takes no partial (Dovecot ignores one); the others are labelled
    `BINARY[...]<offset>` like BODY.
    """
    if name == "BINARY.SIZE":
        label = section.label
        if section.partial is not None:
            label = label[: label.rindex(b"<")]
        label = b"BINARY.SIZE" + label[len(b"BODY") :]
        return replace(section, name=name, label=label, partial=None, peek=True)
    return replace(section, name="BINARY", label=b"BINARY" + section.label[len(b"BODY") :])


class StructureCache:
    """Rendered ENVELOPE and BODYSTRUCTURE per message; messages never change."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str, int, int], tuple[bytes, bytes, bytes]] = (
            OrderedDict()
        )

    def get(self, key: tuple[str, str, int, int]) -> tuple[bytes, bytes, bytes] | None:
        return self._entries.get(key)

    def put(self, key: tuple[str, str, int, int], value: tuple[bytes, bytes, bytes]) -> None:
        self._entries[key] = value
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)


def structure_of(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(ENVELOPE, BODY, BODYSTRUCTURE) rendered from the raw message."""
    entity = parse_structure(raw)
    return (
        render_envelope(entity.fields),
        render_body_structure(entity, extended=False),
        render_body_structure(entity, extended=True),
    )


def render_fetch(
    plan: FetchPlan,
    seq: int,
    uid: int,
    flags: tuple[int, tuple[str, ...]],
    recent: bool,
    info: MessageInfo | None,
    raw: bytes | None,
    structure: tuple[bytes, bytes, bytes] | None,
    include_flags: bool,
    modseq: int = 0,
) -> bytes:
    """One `* seq FETCH (...)` line; `include_flags` adds FLAGS after an implicit \\Seen.

    Without `info` or `raw` (the message is gone from the store) the items
    that need them get their NIL forms.
    """
    parts: list[bytes] = []
    entity: MimePart | None = None
    flags_done = False
    for item in plan.items:
        name = item.name
        if name == "UID":
            parts.append(b"UID %d" % uid)
        elif name == "FLAGS":
            parts.append(b"FLAGS " + format_flags(flags[0], flags[1], recent).encode())
            flags_done = True
        elif name == "MODSEQ":
            parts.append(b"MODSEQ (%d)" % modseq)
        elif name in ("INTERNALDATE", "RFC822.SIZE") and info is None:
            parts.append(name.encode() + b" " + _NIL_REPLIES[name])
        elif name == "INTERNALDATE":
            assert info is not None
            date = format_internal_date(info.internal_date, info.internal_tz)
            parts.append(b"INTERNALDATE " + date.encode())
        elif name == "RFC822.SIZE":
            assert info is not None
            parts.append(b"RFC822.SIZE %d" % info.size)
        elif name in ("ENVELOPE", "BODY", "BODYSTRUCTURE"):
            if structure is None and raw is not None:
                structure = structure_of(raw)
            index = {"ENVELOPE": 0, "BODY": 1, "BODYSTRUCTURE": 2}[name]
            value = _NIL_REPLIES[name] if structure is None else structure[index]
            parts.append(name.encode() + b" " + value)
        elif name in ("BINARY", "BINARY.SIZE"):
            assert item.section is not None
            if raw is None:
                parts.append(item.label + (b" NIL" if name == "BINARY" else b" 0"))
                continue
            if entity is None:
                entity = parse_structure(raw)
            size_only = name == "BINARY.SIZE"
            try:
                parts.append(
                    render_binary(entity, item.section, item.label, item.partial, size_only)
                )
            except UnknownCteError:
                # Dovecot ends the line with what it has (the UID when nothing), then NO.
                done = b" ".join(parts) if parts else b"UID %d" % uid
                raise UnknownCteError((b"* %d FETCH (" % seq + done + b")\r\n",)) from None
        elif raw is None:
            parts.append((item.label if name == "SECTION" else name.encode()) + b" NIL")
        else:
            if name in ("SECTION", "RFC822") and item.section in (None, _WHOLE):
                data: bytes | None = raw  # the whole message: nothing to parse
                label = item.label if name == "SECTION" else b"RFC822"
            elif name == "SECTION":
                assert item.section is not None
                if entity is None:
                    entity = parse_structure(raw)
                data = section_bytes(entity, item.section)
                label = item.label
            else:
                if entity is None:
                    entity = parse_structure(raw)
                spec = {
                    "RFC822.HEADER": SectionSpec((), "HEADER"),
                    "RFC822.TEXT": SectionSpec((), "TEXT"),
                }[name]
                data = section_bytes(entity, spec)
                label = name.encode()
            if data is not None and item.partial is not None:
                offset, length = item.partial
                data = data[offset : offset + length]
            if data is None:
                parts.append(label + b" NIL")
            else:
                if b"\x00" in data:
                    # A literal holds no NUL (RFC 3501 CHAR8; APPEND ~{n} can store one):
                    # Dovecot sends 0x80 in its place. BINARY sends it as it is.
                    data = data.replace(b"\x00", b"\x80")
                parts.append(label + b" {%d}\r\n" % len(data) + data)
    if include_flags and not flags_done:
        parts.append(b"FLAGS " + format_flags(flags[0], flags[1], recent).encode())
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
