"""APPEND ... CATENATE (RFC 4469): a message composed of literals and IMAP URLs, as Dovecot 2.3.

    APPEND box [flags] [date] CATENATE (TEXT {n} / URL "/box;UIDVALIDITY=v/;UID=u/;SECTION=s")

Only relative URLs name a source (`/mailbox[;UIDVALIDITY=v]/;UID=u`, or
`;UID=u` in the selected mailbox), each optionally followed by
`/;SECTION=...` and `/;PARTIAL=offset[.length]`, so a URL can only read the
logged-in user's own mail; an absolute URL (`imap://...`), another scheme or
anything the grammar does not allow is `NO [BADURL url] reason` in
Dovecot's words (its imap-msgpart-url.c and imap-url.c), and so is a
mailbox, UIDVALIDITY or UID that does not match.

TEXT literals are read like any APPEND literal: they count towards
APPENDLIMIT while the command is read, and big ones go to the spool
(literal_spool.py). The composed message is built when the APPEND runs, one
part at a time, and refused with `NO [TOOBIG]` as soon as it outgrows
APPENDLIMIT, so at most APPENDLIMIT plus one source message is held. The
section of a source message is cut out of it in a worker thread: the
message's size is the client's choice.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from dataclasses import dataclass

from ..errors import MailboxNotFoundError, MessageNotFoundError, UnknownUserError
from ..mime.structure import parse_structure
from ..store import NewMessage
from ..store.mailbox_names import INBOX
from .binary_append import stored_form
from .command_errors import CommandFailedError
from .fetch import parse_fetch_items
from .literal_spool import SpooledLiteral, message_argument
from .message_structure import SectionSpec, section_bytes
from .parser import CommandSyntaxError, Tokenizer
from .session_protocol import Session

__all__ = ["CatenatedMessage", "catenate_follows", "parse_catenate"]

_TOO_BIG = "[TOOBIG] Composed message grows too big."
_NUMBER = re.compile(r"[0-9]{1,10}\Z")
_PARTIAL = re.compile(r"([0-9]{1,10})(?:\.([1-9][0-9]{0,9}))?\Z")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


class BadUrlError(Exception):
    """A CATENATE URL that names nothing readable; the text follows `[BADURL url]`."""


@dataclass(frozen=True, slots=True)
class MessageUrl:
    """A parsed relative IMAP URL: which message, which part of it."""

    #: None: the selected mailbox (`;UID=n`).
    mailbox: str | None
    uidvalidity: int | None
    uid: int
    section: SectionSpec | None
    partial: tuple[int, int | None] | None


class CatenatedMessage:
    """One APPEND message given as CATENATE parts; `load` composes it."""

    def __init__(
        self,
        session: Session,
        parts: list[bytes | SpooledLiteral | str],
        flags: int,
        keywords: tuple[str, ...],
        date: tuple[int, int] | None,
        binary: bool = False,
    ) -> None:
        self._session = session
        #: The first part was a literal8: stored as a binary APPEND is (binary_append.py).
        self.binary = binary
        #: TEXT literals (bytes, or spooled) and URLs (str), in order.
        self.parts = parts
        self.flags = flags
        self.keywords = keywords
        self.date = date

    async def load(self) -> NewMessage:
        """The composed message; CommandFailedError for a bad URL or an oversized result."""
        session = self._session
        limit = session.options.max_literal_size
        pieces: list[bytes] = []
        total = 0
        for part in self.parts:
            if isinstance(part, str):
                data = await _read_url(session, part)
            elif isinstance(part, SpooledLiteral):
                data = await part.read()
            else:
                data = part
            total += len(data)
            if total > limit:
                raise CommandFailedError(_TOO_BIG)
            pieces.append(data)
        date = self.date
        raw = b"".join(pieces)
        if self.binary:
            raw = await stored_form(raw)
        return NewMessage(
            raw, self.flags, self.keywords,
            date[0] if date else None, date[1] if date else 0,
        )  # fmt: skip


def catenate_follows(tokens: Tokenizer) -> bool:
    return tokens.data[tokens.pos : tokens.pos + 9].upper() == b"CATENATE "


def parse_catenate(
    tokens: Tokenizer,
    session: Session,
    flags: int,
    keywords: tuple[str, ...],
    date: tuple[int, int] | None,
) -> CatenatedMessage:
    """`CATENATE (part ...)` at the tokenizer; the parts are resolved by `load`."""
    tokens.pos += len(b"CATENATE ")
    if not tokens.open_paren():
        raise CommandSyntaxError("Invalid arguments.")
    if tokens.close_paren():
        raise CommandSyntaxError("Empty CATENATE list.")
    parts: list[bytes | SpooledLiteral | str] = []
    first_is_binary = False
    while True:
        kind = tokens.data[tokens.pos : tokens.pos + 5].upper()
        if kind == b"TEXT ":
            tokens.pos += 5
            literal8 = tokens.peek_is(b"~{")
            if not (tokens.peek_is(b"{") or literal8):
                raise CommandSyntaxError("Invalid arguments.")
            if not parts:
                first_is_binary = literal8
            elif literal8 and not first_is_binary:
                raise CommandFailedError(
                    "[UNKNOWN-CTE] Binary input allowed only when the first part is binary."
                )
            parts.append(message_argument(tokens, session.spooled))
        elif kind[:4] == b"URL ":
            tokens.pos += 4
            try:
                url = tokens.astring()
            except CommandSyntaxError:
                raise CommandSyntaxError("Invalid arguments.") from None
            parts.append(url.decode("utf-8", "replace"))
        else:
            raise CommandSyntaxError("Invalid arguments.")
        if tokens.close_paren():
            break
        tokens.space()
    return CatenatedMessage(session, parts, flags, keywords, date, first_is_binary)


async def _read_url(session: Session, url: str) -> bytes:
    try:
        parsed = parse_message_url(url)
        return await _read_message_part(session, parsed)
    except BadUrlError as exc:
        raise CommandFailedError(f"[BADURL {url}] {exc}.") from None


def parse_message_url(url: str) -> MessageUrl:
    """A relative IMAP message URL (RFC 5092 `imessagepart`), in Dovecot's error words."""
    if url.startswith("//") or url[:7].lower() == "imap://":
        raise BadUrlError("Invalid IMAP URL: Relative URL required")
    if _SCHEME.match(url):
        raise BadUrlError("Invalid IMAP URL: Not an IMAP URL")
    mailbox: str | None = None
    uidvalidity: int | None = None
    segments = url.split("/")
    if url.startswith("/"):
        # /mailbox[;UIDVALIDITY=n]/;UID=n/...
        head = segments[1] if len(segments) > 1 else ""
        name, _, validity = head.partition(";")
        if not name:
            raise BadUrlError("Mailbox-relative IMAP URL, but no mailbox selected")
        mailbox = _decode(name)
        if validity:
            key, _, value = validity.partition("=")
            if key.upper() != "UIDVALIDITY":
                raise BadUrlError("Invalid IMAP URL: Encountered stray ';' in mailbox reference")
            uidvalidity = _number(value)
        rest = segments[2:]
    else:
        rest = segments
    if not rest or not rest[0][:5].upper() == ";UID=":
        raise BadUrlError("Invalid messagepart IMAP URL")
    uid_text, _, extension = rest[0][5:].partition(";")
    if extension:
        raise BadUrlError(f"Invalid IMAP URL: Unrecognized IMAP URL extension: ;{extension}")
    uid = _number(uid_text)
    if uid == 0:
        raise BadUrlError("Invalid IMAP URL: UID cannot be zero")
    section: SectionSpec | None = None
    partial: tuple[int, int | None] | None = None
    for segment in rest[1:]:
        upper = segment.upper()
        if upper.startswith(";SECTION=") and section is None and partial is None:
            text, _, extension = segment[9:].partition(";")
            if extension:
                raise BadUrlError(
                    f"Invalid IMAP URL: Unrecognized IMAP URL extension: ;{extension}"
                )
            section = _section(_decode(text))
        elif upper.startswith(";PARTIAL=") and partial is None:
            match = _PARTIAL.match(segment[9:])
            if match is None:
                value = segment[9:].split(".")[0]
                raise BadUrlError(f"Invalid IMAP URL: Value '{value}' is not a valid IMAP number")
            length = match.group(2)
            partial = (int(match.group(1)), int(length) if length else None)
        else:
            raise BadUrlError(f"Invalid IMAP URL: Unexpected IMAP URL path segment: `{segment}'")
    return MessageUrl(mailbox, uidvalidity, uid, section, partial)


async def _read_message_part(session: Session, url: MessageUrl) -> bytes:
    user = session.require_user()
    mailbox = url.mailbox
    if mailbox is None:
        if session.view is None:
            raise BadUrlError("Mailbox-relative IMAP URL, but no mailbox selected")
        mailbox = session.view.name
    if mailbox.upper() == INBOX:
        mailbox = INBOX
        await session.ensure_inbox(mailbox)
    try:
        info = await session.store.mailbox(user, mailbox)
        if url.uidvalidity is not None and url.uidvalidity != info.uidvalidity:
            raise BadUrlError("Invalid UIDVALIDITY")
        raw = await session.store.raw_message(user, mailbox, url.uid)
    except (MailboxNotFoundError, UnknownUserError):
        raise BadUrlError(f"Mailbox doesn't exist: {mailbox}") from None
    except MessageNotFoundError:
        raise BadUrlError("Message not found") from None
    if url.section is not None:
        raw = await asyncio.to_thread(_cut_section, raw, url.section)
    if url.partial is not None:
        offset, length = url.partial
        raw = raw[offset : None if length is None else offset + length]
    return raw


def _cut_section(raw: bytes, section: SectionSpec) -> bytes:
    return section_bytes(parse_structure(raw), section) or b""


def _section(text: str) -> SectionSpec:
    """`1.MIME`, `TEXT`, `HEADER.FIELDS (Subject)`...: BODY[]'s section grammar."""
    tokens = Tokenizer(f"BODY.PEEK[{text}]".encode())
    try:
        plan = parse_fetch_items(tokens, uid_command=False)
        tokens.end()
    except (CommandSyntaxError, UnicodeEncodeError):
        raise BadUrlError("Invalid section") from None
    section = plan.items[0].section if len(plan.items) == 1 else None
    if section is None:
        raise BadUrlError("Invalid section")
    return section


def _number(text: str) -> int:
    if not _NUMBER.match(text) or int(text) > 0xFFFFFFFF:
        raise BadUrlError(f"Invalid IMAP URL: Value '{text}' is not a valid IMAP number")
    return int(text)


def _decode(text: str) -> str:
    """A %-encoded UTF-8 name (RFC 5092 `enc-mailbox`, `enc-section`)."""
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise BadUrlError("Invalid IMAP URL: Invalid UTF-8 in %-encoding") from None
