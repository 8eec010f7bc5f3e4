"""RFC 5464 METADATA: GETMETADATA and SETMETADATA, on a mailbox or (mailbox `""`) the server.

The OX push driver's opt-in (`/private/vendor/vendor.dovecot/http-notify`) is
a server entry set this way by OX App Suite, and Lua scripts read entries a
client wrote here. Values are UTF-8 text; writes produce no push event and no
untagged update, as in Dovecot.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import (
    InvalidMetadataEntryError,
    MetadataValueTooLargeError,
    TooManyMetadataEntriesError,
)
from ..store.mailbox_names import normalize_mailbox_name
from ..store.metadata_entries import ROOTS, depth_below, normalize_prefix
from .command_arguments import MAILBOX_OR_EMPTY
from .command_errors import CommandFailedError
from .command_spec import Argument, CommandSpec, command
from .parser import CommandSyntaxError, Tokenizer
from .responses import mailbox_name, string
from .session_protocol import Session
from .states import AUTHENTICATED

__all__ = ["METADATA_COMMANDS", "MetadataRequest", "getmetadata", "setmetadata"]

#: DEPTH values: how many levels below a requested entry are returned.
_DEPTHS = {"0": 0, "1": 1, "infinity": -1}
#: Entry names that can go on the wire unquoted (RFC 3501 ATOM-CHAR, a subset).
_ATOM_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_/+!#$&'.:;<=>?@^`|~"
)


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    """GETMETADATA's arguments: options and mailbox, then the entries asked for."""

    maxsize: int | None
    #: Levels below each entry to return; -1 is `infinity`.
    depth: int
    mailbox: str
    #: The entry names as sent (checked once the whole command was read).
    items: list[str]


async def getmetadata(conn: Session, request: MetadataRequest) -> str:
    if not request.items:
        raise CommandSyntaxError("GETMETADATA needs at least one entry")
    entries = [_entry_name(item) for item in request.items]
    maxsize, depth = request.maxsize, request.depth
    user = conn.require_user()
    box = normalize_mailbox_name(request.mailbox) if request.mailbox else None
    if box is not None:
        await conn.ensure_inbox(box)

    found: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for entry in entries:
        if depth == 0:
            value = None if entry in ROOTS else await conn.store.get_metadata(user, box, entry)
            candidates = [(entry, value)]
        else:
            below = await conn.store.list_metadata(user, box, entry)
            candidates = [(entry, below.pop(entry, None))]
            candidates += [
                (name, value)
                for name, value in below.items()
                if depth < 0 or depth_below(name, entry) <= depth
            ]
        for index, (name, value) in enumerate(candidates):
            # The requested entry is always answered (NIL if unset); its children only if set.
            if name not in seen and (index == 0 or value is not None):
                seen.add(name)
                found.append((name, value))

    longest_skipped = 0
    pairs: list[bytes] = []
    for name, value in found:
        data = None if value is None else value.encode("utf-8")
        if data is not None and maxsize is not None and len(data) > maxsize:
            longest_skipped = max(longest_skipped, len(data))
            continue
        pairs.append(_astring(name) + b" " + (b"NIL" if data is None else string(data)))
    if pairs:
        where = mailbox_name(box) if box is not None else b'""'
        conn.out.add(b"* METADATA " + where + b" (" + b" ".join(pairs) + b")\r\n")
    if longest_skipped:
        return f"OK [METADATA LONGENTRIES {longest_skipped}] Getmetadata completed."
    return "OK Getmetadata completed."


async def setmetadata(conn: Session, mailbox: str, values: dict[str, str | None]) -> str:
    box = normalize_mailbox_name(mailbox) if mailbox else None
    if box is not None:
        await conn.ensure_inbox(box)
    try:
        await conn.store.set_metadata_entries(conn.require_user(), box, values)
    except MetadataValueTooLargeError as exc:
        raise CommandFailedError(
            f"[METADATA MAXSIZE {exc.limit}] Metadata value of {exc.entry} is too large."
        ) from None
    except TooManyMetadataEntriesError as exc:
        raise CommandFailedError(
            f"[METADATA TOOMANY] Too many metadata entries (at most {exc.limit})."
        ) from None
    return "OK Setmetadata completed."


# --- arguments -------------------------------------------------------------------------


def _metadata_request(tokens: Tokenizer, conn: Session) -> MetadataRequest:
    maxsize: int | None = None
    depth = 0
    if tokens.peek_is(b"("):
        maxsize, depth = _options(_string_list(tokens))
        tokens.space()
    mailbox = tokens.mailbox()
    tokens.space()
    if tokens.peek_is(b"("):
        items = _string_list(tokens)
        if tokens.skip_space():
            # RFC 5464's examples put the options after the mailbox; accept both.
            maxsize, depth = _options(items)
            items = _entry_list(tokens)
    else:
        items = [tokens.astring_text()]
    return MetadataRequest(maxsize, depth, mailbox, items)


def _entry_values(tokens: Tokenizer, conn: Session) -> dict[str, str | None]:
    """SETMETADATA's `(entry value ...)`: names are checked, values decoded, as they come."""
    if not tokens.open_paren():
        raise CommandSyntaxError("Expected a parenthesised list of entries and values")
    values: dict[str, str | None] = {}
    while True:
        entry = _entry_name(tokens.astring_text())
        if entry in ROOTS:
            raise CommandSyntaxError(f"Invalid entry name {entry}: name an entry below it")
        tokens.space()
        raw = tokens.nstring_or_nil()
        if raw is None:
            values[entry] = None
        else:
            try:
                values[entry] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise CommandFailedError(
                    f"Value of {entry} is not UTF-8 text; binary values are not supported."
                ) from None
        if tokens.close_paren():
            return values
        tokens.space()


def _string_list(tokens: Tokenizer) -> list[str]:
    """`(a "b" c)`: a parenthesised list of astrings (options or entry names)."""
    return tokens.paren_list(tokens.astring_text)


def _entry_list(tokens: Tokenizer) -> list[str]:
    if tokens.peek_is(b"("):
        return _string_list(tokens)
    return [tokens.astring_text()]


def _options(items: list[str]) -> tuple[int | None, int]:
    """(MAXSIZE, DEPTH) of a GETMETADATA option list; DEPTH infinity is -1."""
    if len(items) % 2:
        raise CommandSyntaxError("Each GETMETADATA option needs a value")
    maxsize: int | None = None
    depth = 0
    for name, value in zip(items[::2], items[1::2], strict=True):
        option = name.upper()
        if option == "MAXSIZE":
            if not value.isdigit() or int(value) > 0xFFFFFFFF:
                raise CommandSyntaxError(f"Invalid MAXSIZE {value!r}")
            maxsize = int(value)
        elif option == "DEPTH":
            if value.lower() not in _DEPTHS:
                raise CommandSyntaxError(f"Invalid DEPTH {value!r}: use 0, 1 or infinity")
            depth = _DEPTHS[value.lower()]
        else:
            raise CommandSyntaxError(f"Unknown GETMETADATA option {name}")
    return maxsize, depth


def _entry_name(text: str) -> str:
    """A canonical entry name; RFC 5464 wants BAD for one it does not allow."""
    try:
        return normalize_prefix(text)
    except InvalidMetadataEntryError as exc:
        raise CommandSyntaxError(f"Invalid entry name {text!r}: {exc.reason}") from None


def _astring(text: str) -> bytes:
    if text and all(char in _ATOM_SAFE for char in text):
        return text.encode("ascii")
    return string(text.encode("utf-8"))


_REQUEST = Argument("getmetadata-arguments", _metadata_request)
_ENTRY_VALUES = Argument("entry-values", _entry_values)

METADATA_COMMANDS: tuple[CommandSpec, ...] = (
    command("GETMETADATA", AUTHENTICATED, getmetadata, _REQUEST),
    command("SETMETADATA", AUTHENTICATED, setmetadata, MAILBOX_OR_EMPTY, _ENTRY_VALUES),
)
