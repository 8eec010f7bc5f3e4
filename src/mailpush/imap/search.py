"""SEARCH: the key grammar of RFC 3501 compiled into one predicate per command.

Keys that only need flags, numbers or metadata are answered from the
session's view and the store's message list; header and body keys read the
raw message and decode it (RFC 2047 words, transfer encodings, charsets)
before comparing case-insensitively, so `SUBJECT café` finds an encoded
subject. FROM, TO, CC and BCC compare with the parsed addresses, written as
Dovecot writes them (`Name <user@domain>`, groups as `name: a, b;`), so
`FROM user@domain.org` finds `<user (comment)@ (comment) domain.org>`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..mime.addresses import format_address_list, parse_address_list
from ..mime.charsets import decode_text
from ..mime.dates import parse_date
from ..mime.headers import decode_encoded_words, find_body_start, split_header_fields
from ..mime.structure import MimePart, parse_structure
from ..mime.transfer import decode_transfer, is_known_transfer_encoding
from ..store import MessageInfo
from ..store import flags as F
from .parser import CommandSyntaxError, Tokenizer
from .search_key import search_key
from .sequence_set import Membership, SequenceSet

__all__ = ["SearchContext", "SearchProgram", "UnsupportedCharsetError", "parse_search"]

SUPPORTED_CHARSETS = ("UTF-8", "US-ASCII")
_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}


class UnsupportedCharsetError(Exception):
    """SEARCH CHARSET names a charset we do not search in: `NO [BADCHARSET]`."""


@dataclass(slots=True)
class SearchContext:
    """One message as the predicate sees it."""

    seq: int
    uid: int
    flags: int
    keywords: tuple[str, ...]
    recent: bool
    info: MessageInfo | None
    raw: bytes | None
    #: Highest sequence number and UID of the view, for `*`.
    max_seq: int
    max_uid: int
    _headers: list[tuple[str, str]] | None = None
    _body: str | None = None
    _addresses: dict[str, list[str]] | None = None

    def headers(self) -> list[tuple[str, str]]:
        if self._headers is None:
            raw = self.raw or b""
            end = find_body_start(raw)[1]
            self._headers = [(n, _decode_header(v)) for n, v in split_header_fields(raw[:end])]
        return self._headers

    def address_texts(self, field: str) -> list[str]:
        """Each `field` header's addresses as text, parsed before RFC 2047 decoding (a
        decoded name may hold a comma)."""
        if self._addresses is None:
            self._addresses = {}
            raw = self.raw or b""
            end = find_body_start(raw)[1]
            for name, value in split_header_fields(raw[:end]):
                if name in _ADDRESS_FIELDS:
                    text = value.decode("latin-1") if not value.isascii() else value.decode()
                    written = _decode_header(
                        format_address_list(parse_address_list(text)).encode("latin-1")
                    )
                    self._addresses.setdefault(name, []).append(written)
        return self._addresses.get(field, [])

    def body_text(self) -> str:
        if self._body is None:
            self._body = search_key(_body_text(self.raw or b""))
        return self._body


Predicate = Callable[[SearchContext], bool]


@dataclass(frozen=True, slots=True)
class SearchProgram:
    predicate: Predicate
    needs_raw: bool
    needs_info: bool
    #: Keys in the program: what evaluating it against one message costs, roughly.
    keys: int = 1
    #: A MODSEQ key (RFC 7162): CONDSTORE is enabled and the answer ends `(MODSEQ n)`.
    uses_modseq: bool = False
    #: A flag, keyword or MODSEQ key: an UPDATE search runs again when flags change.
    reads_flags: bool = False
    #: A sequence-number key: an UPDATE search keeps the numbering it first ran with.
    uses_seq: bool = False


def parse_search(tokens: Tokenizer) -> SearchProgram:
    """`[CHARSET x] key...`; every key must hold (implicit AND)."""
    if tokens.data[tokens.pos : tokens.pos + 8].upper() == b"CHARSET ":
        tokens.pos += 8
        charset = tokens.astring().decode("ascii", "replace").upper()
        if charset not in SUPPORTED_CHARSETS:
            raise UnsupportedCharsetError(charset)
        tokens.space()
    needs = _Needs()
    keys = [_key(tokens, needs)]
    while tokens.skip_space():
        keys.append(_key(tokens, needs))
    tokens.end()
    return SearchProgram(
        _all_of(keys), needs.raw, needs.info, needs.keys, needs.modseq, needs.flags, needs.seq
    )


class _Needs:
    __slots__ = ("raw", "info", "keys", "modseq", "flags", "seq")

    def __init__(self) -> None:
        self.raw = False
        self.info = False
        self.keys = 0
        self.modseq = False
        self.flags = False
        self.seq = False


def _all_of(keys: list[Predicate]) -> Predicate:
    if len(keys) == 1:
        return keys[0]
    return lambda ctx: all(key(ctx) for key in keys)


def _flag(bit: int, present: bool) -> Predicate:
    if present:
        return lambda ctx: bool(ctx.flags & bit)
    return lambda ctx: not ctx.flags & bit


_FLAG_KEYS: dict[str, Predicate] = {
    "ANSWERED": _flag(F.ANSWERED, True),
    "DELETED": _flag(F.DELETED, True),
    "DRAFT": _flag(F.DRAFT, True),
    "FLAGGED": _flag(F.FLAGGED, True),
    "SEEN": _flag(F.SEEN, True),
    "UNANSWERED": _flag(F.ANSWERED, False),
    "UNDELETED": _flag(F.DELETED, False),
    "UNDRAFT": _flag(F.DRAFT, False),
    "UNFLAGGED": _flag(F.FLAGGED, False),
    "UNSEEN": _flag(F.SEEN, False),
    "ALL": lambda ctx: True,
    "RECENT": lambda ctx: ctx.recent,
    "OLD": lambda ctx: not ctx.recent,
    "NEW": lambda ctx: ctx.recent and not ctx.flags & F.SEEN,
}
_ADDRESS_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_ADDRESS_FIELDS = frozenset(("bcc", "cc", "from", "to"))


def _key(tokens: Tokenizer, needs: _Needs) -> Predicate:
    needs.keys += 1
    if tokens.open_paren():
        keys = [_key(tokens, needs)]
        while not tokens.close_paren():
            tokens.space()
            keys.append(_key(tokens, needs))
        return _all_of(keys)
    char = tokens.peek()
    if char is not None and (0x30 <= char <= 0x39 or char in (0x2A, 0x24)):
        needs.seq = True
        return _in_sequence(tokens.sequence_set(), by_uid=False)
    name = tokens.atom("search key").upper()
    if name in _FLAG_KEYS:
        needs.flags = needs.flags or name != "ALL"
        return _FLAG_KEYS[name]
    if name == "NOT":
        tokens.space()
        with tokens.nested():
            inner = _key(tokens, needs)
        return lambda ctx: not inner(ctx)
    if name == "OR":
        tokens.space()
        with tokens.nested():
            left = _key(tokens, needs)
            tokens.space()
            right = _key(tokens, needs)
        return lambda ctx: left(ctx) or right(ctx)
    if name == "UID":
        tokens.space()
        return _in_sequence(tokens.sequence_set(), by_uid=True)
    if name in ("KEYWORD", "UNKEYWORD"):
        tokens.space()
        keyword = tokens.flag().lower()
        has = name == "KEYWORD"
        needs.flags = True
        return lambda ctx: any(k.lower() == keyword for k in ctx.keywords) == has
    if name == "MODSEQ":
        # `MODSEQ ["/flags/\\seen" all] n`: the entry only narrows which flag's modseq
        # counts; mailpush keeps one per message, as Dovecot answers (it ignores it too).
        tokens.space()
        if tokens.peek_is(b'"'):
            tokens.quoted()
            tokens.space()
            tokens.atom("entry type")
            tokens.space()
        modseq = tokens.number("modseq")
        needs.info = True
        needs.modseq = True
        needs.flags = True
        return lambda ctx: ctx.info is not None and ctx.info.modseq >= modseq
    if name in ("LARGER", "SMALLER"):
        tokens.space()
        size = tokens.number("size")
        needs.info = True
        if name == "LARGER":
            return lambda ctx: ctx.info is not None and ctx.info.size > size
        return lambda ctx: ctx.info is not None and ctx.info.size < size
    if name in ("BEFORE", "ON", "SINCE"):
        tokens.space()
        day = _date(tokens)
        needs.info = True
        return _date_compare(name, day, _internal_day)
    if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        tokens.space()
        day = _date(tokens)
        needs.raw = True
        return _date_compare(name[4:], day, _sent_day)
    if name in _ADDRESS_KEYS:
        tokens.space()
        needle = _needle(tokens)
        needs.raw = True
        if name == "SUBJECT":
            return _header_contains("subject", needle)
        return _address_contains(_ADDRESS_KEYS[name], needle)
    if name == "HEADER":
        tokens.space()
        field = tokens.astring().decode("latin-1").lower()
        tokens.space()
        needle = _needle(tokens)
        needs.raw = True
        return _header_contains(field, needle)
    if name == "BODY":
        tokens.space()
        needle = _needle(tokens)
        needs.raw = True
        return lambda ctx: needle in ctx.body_text()
    if name == "TEXT":
        tokens.space()
        needle = _needle(tokens)
        needs.raw = True
        return lambda ctx: needle in ctx.body_text() or any(
            needle in search_key(f"{n}: {v}") for n, v in ctx.headers()
        )
    raise CommandSyntaxError(f"Unknown search key {name}")


def _needle(tokens: Tokenizer) -> str:
    raw = tokens.astring()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Dovecot's answer too: a string that is not UTF-8 cannot be searched for.
        raise CommandSyntaxError("Invalid search key") from None
    return search_key(text)


def _in_sequence(numbers: SequenceSet, by_uid: bool) -> Predicate:
    """Membership by bisection; the ranges are merged once per `*` value, not per message."""
    if numbers.saved:
        return lambda ctx: False
    tests: dict[int, Membership] = {}

    def check(ctx: SearchContext) -> bool:
        top = ctx.max_uid if by_uid else ctx.max_seq
        test = tests.get(top)
        if test is None:
            test = tests[top] = numbers.membership(top)
        return test.contains(ctx.uid if by_uid else ctx.seq)

    return check


def _address_contains(field: str, needle: str) -> Predicate:
    def check(ctx: SearchContext) -> bool:
        return any(needle in search_key(text) for text in ctx.address_texts(field))

    return check


def _header_contains(field: str, needle: str) -> Predicate:
    def check(ctx: SearchContext) -> bool:
        for name, value in ctx.headers():
            if name == field and (not needle or needle in search_key(value)):
                return True
        return False

    return check


def _date(tokens: Tokenizer) -> int:
    """A search date as days since the epoch."""
    text = tokens.astring().decode("ascii", "replace")
    match = _DATE.match(text)
    month = _MONTHS.get(match.group(2).lower()) if match else None
    if match is None or month is None:
        raise CommandSyntaxError(f"Invalid search date {text!r}")
    try:
        return calendar.timegm((int(match.group(3)), month, int(match.group(1)), 0, 0, 0)) // 86400
    except (ValueError, OverflowError) as exc:
        raise CommandSyntaxError(f"Invalid search date {text!r}") from exc


def _date_compare(how: str, day: int, day_of: Callable[[SearchContext], int | None]) -> Predicate:
    def check(ctx: SearchContext) -> bool:
        value = day_of(ctx)
        if value is None:
            return False
        if how == "BEFORE":
            return value < day
        if how == "ON":
            return value == day
        return value >= day

    return check


def _internal_day(ctx: SearchContext) -> int | None:
    if ctx.info is None:
        return None
    return (ctx.info.internal_date + ctx.info.internal_tz * 60) // 86400


def _sent_day(ctx: SearchContext) -> int | None:
    """The Date header's day in its own zone; RFC 3501 ignores time and zone here."""
    for name, value in ctx.headers():
        if name == "date":
            parsed = parse_date(value)
            if parsed is None:
                return None
            return (parsed.timestamp + parsed.tz_minutes * 60) // 86400
    return None


def _decode_header(value: bytes) -> str:
    text = value.decode("utf-8", "replace") if not value.isascii() else value.decode("ascii")
    return decode_encoded_words(text) if "=?" in text else text


def _body_text(raw: bytes) -> str:
    """The text of every text/* and message/* leaf part, transfer- and charset-decoded.

    The MIME tree is the one BODYSTRUCTURE shows (`parse_structure`), nested
    at most `MAX_DEPTH` deep: a part below that is opaque and its text not
    searched. The `email` package's parser recurses once per level, so a
    message 3,000 multiparts deep (which LMTP accepts) made it raise
    RecursionError and cost the client its connection.
    """
    return "\n".join(
        _part_text(part)
        for part in parse_structure(raw).leaves()
        if part.main_type in ("text", "message")
    )


def _part_text(entity: MimePart) -> str:
    """One leaf's body, transfer- and charset-decoded as the snippet and Sieve decode it.

    An unknown transfer encoding gives no text, as in Dovecot (see mime.transfer).
    """
    name = entity.transfer_encoding
    if not is_known_transfer_encoding(name):
        return ""  # Dovecot does not search a body it cannot decode
    charset: str | None = None
    for key, value in entity.params:
        if key.lower() == b"charset" and value.strip():
            charset = value.decode("latin-1")
            break
    return decode_text(decode_transfer(name, entity.body), charset)
