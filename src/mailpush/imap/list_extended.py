"""LIST with LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819), answered as Dovecot 2.3 does.

    LIST [(selection options)] reference (pattern | (pattern ...)) [RETURN (return options)]

A LIST with none of the extended parts is the plain RFC 3501 LIST of
`mailbox_commands.list_mailboxes`, unchanged. Any extended part (even an
empty `()`) switches to Dovecot's extended answers (its cmd-list.c), which
differ from plain LIST in three ways: child flags only with `RETURN
(CHILDREN)`, special-use flags only with SPECIAL-USE (as selection or
return option), and a name that exists only as a parent, or is subscribed
without existing, is `\\NonExistent` rather than `\\Noselect`.

Selection options: SUBSCRIBED (only subscribed names, which may not exist;
implies RETURN SUBSCRIBED), SPECIAL-USE (only mailboxes with a special use;
implies RETURN SPECIAL-USE), RECURSIVEMATCH (with one of those: a name
matching a pattern is also listed when a descendant meets the selection but
matches no pattern, and any listed name with such a descendant carries
`("CHILDINFO" (...))`), REMOTE (accepted; there are no remote mailboxes).
Return options: SUBSCRIBED, CHILDREN, SPECIAL-USE and STATUS (items), the
last answering one `* STATUS` after each listed mailbox that exists and,
with SUBSCRIBED selection, is itself subscribed.

Each pattern is matched by `ListPattern` (linear time) and the loop hands
the event loop back every 64 mailboxes, as plain LIST does, so neither many
mailboxes nor many patterns hold other connections up for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import MailboxNotFoundError
from ..store import MailboxInfo
from ..store.mailbox_names import INBOX, parent_names
from .command_spec import Argument, CommandSpec, command
from .list_pattern import ListPattern
from .mailbox_commands import _ancestors, _with_inbox, list_mailboxes
from .parser import CommandSyntaxError, Tokenizer
from .responses import mailbox_name
from .session_protocol import Session
from .states import AUTHENTICATED
from .status_response import status_items, write_status

__all__ = ["LIST_COMMANDS", "ListRequest", "list_command"]

#: Give other connections a turn after this many mailboxes (as plain LIST).
LIST_SLICE = 64

_SELECTION_OPTIONS = frozenset({"SUBSCRIBED", "RECURSIVEMATCH", "SPECIAL-USE", "REMOTE"})


@dataclass(frozen=True, slots=True)
class ListRequest:
    """One LIST command as read; `patterns` holds None for a pattern no name can match."""

    reference: str | None
    patterns: tuple[str | None, ...]
    #: Whether any LIST-EXTENDED syntax was used (selection list, pattern list, RETURN).
    extended: bool = False
    select_subscribed: bool = False
    select_special_use: bool = False
    recursive_match: bool = False
    return_subscribed: bool = False
    return_children: bool = False
    return_special_use: bool = False
    #: LIST-STATUS items, in Dovecot's order; empty without RETURN (STATUS ...).
    status_items: tuple[str, ...] = ()


async def list_command(conn: Session, request: ListRequest) -> str:
    if not request.extended:
        return await list_mailboxes(conn, request.reference, request.patterns[0])
    await _list_extended(conn, request)
    return "OK List completed."


# --- the extended listing --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Listed:
    name: str
    exists: bool
    subscribed: bool
    special_use: str | None
    #: CHILDINFO: what a descendant meets of the selection (RECURSIVEMATCH only).
    child_info: tuple[str, ...]


async def _list_extended(conn: Session, request: ListRequest) -> None:
    user = conn.require_user()
    if request.reference is None:
        return  # not modified UTF-7: no name can match (as Dovecot)
    matchers = [
        ListPattern(request.reference + pattern)
        for pattern in request.patterns
        if pattern is not None and request.reference + pattern != ""
    ]
    if not matchers:
        return
    boxes = _with_inbox(await conn.store.list_mailboxes(user))
    existing = {box.name: box for box in boxes}
    wants_subscriptions = request.select_subscribed or request.return_subscribed
    subscribed = set(await conn.store.subscriptions(user)) if wants_subscriptions else set()
    listed = await _select(request, matchers, existing, subscribed)
    parents = _ancestors(existing) if request.return_children else set()
    for index, entry in enumerate(listed):
        if index % LIST_SLICE == LIST_SLICE - 1:
            await asyncio.sleep(0)  # let other connections run between slices
        line = _list_line(request, entry, entry.name in parents)
        conn.out.add(line)
        if request.status_items and entry.exists:
            if not request.select_subscribed or entry.subscribed:
                try:
                    await write_status(conn, entry.name, request.status_items)
                except MailboxNotFoundError:
                    pass  # deleted by another session since it was listed


async def _select(
    request: ListRequest,
    matchers: list[ListPattern],
    existing: dict[str, MailboxInfo],
    subscribed: set[str],
) -> list[_Listed]:
    """The names to list, in the store's order (INBOX first, then by name)."""

    def matches(name: str) -> bool:
        return any(matcher.matches(name) for matcher in matchers)

    def special_use(name: str) -> str | None:
        box = existing.get(name)
        return box.special_use if box is not None and box.selectable else None

    filtering = request.select_subscribed or request.select_special_use
    if not filtering:
        candidates: Iterable[str] = existing
    else:
        candidates = subscribed if request.select_subscribed else existing

    def meets_selection(name: str) -> bool:
        if request.select_subscribed and name not in subscribed:
            return False
        return not request.select_special_use or special_use(name) is not None

    chosen: set[str] = set()
    # A parent listed for, or annotated with, a descendant that meets the selection.
    child_info: set[str] = set()
    for index, name in enumerate(sorted(candidates, key=_store_order)):
        if index % LIST_SLICE == LIST_SLICE - 1:
            await asyncio.sleep(0)
        if filtering and not meets_selection(name):
            continue
        own_match = matches(name)
        if own_match:
            chosen.add(name)
        if not (filtering and request.recursive_match):
            continue
        for parent in parent_names(name):
            child_info.add(parent)
            if not own_match and parent not in chosen and matches(parent):
                chosen.add(parent)
    # What a descendant meets: each selection criterion, one CHILDINFO each (as Dovecot).
    info = ("SUBSCRIBED",) * request.select_subscribed + ("SPECIAL-USE",) * (
        request.select_special_use
    )
    listed = []
    for name in sorted(chosen, key=_store_order):
        box = existing.get(name)
        listed.append(
            _Listed(
                name=name,
                exists=box is not None and box.selectable,
                subscribed=name in subscribed,
                special_use=special_use(name),
                child_info=info if name in child_info else (),
            )
        )
    return listed


def _list_line(request: ListRequest, entry: _Listed, has_children: bool) -> bytes:
    """`* LIST (attributes) "/" name [extended data]`, attributes in Dovecot's order."""
    attributes: list[str] = []
    if request.return_subscribed and entry.subscribed:
        attributes.append("\\Subscribed")
    if not entry.exists:
        attributes.append("\\NonExistent")
    if request.return_children:
        attributes.append("\\HasChildren" if has_children else "\\HasNoChildren")
    if request.return_special_use and entry.special_use:
        attributes.append(entry.special_use)
    line = b"* LIST (" + " ".join(attributes).encode() + b') "/" ' + mailbox_name(entry.name)
    for criterion in entry.child_info:
        line += f' (CHILDINFO ("{criterion}"))'.encode()
    return line + b"\r\n"


def _store_order(name: str) -> tuple[bool, str]:
    return name != INBOX, name


# --- arguments ---------------------------------------------------------------------------


def _list_request(tokens: Tokenizer, conn: Session) -> ListRequest:
    """`[(options) SP] reference SP (pattern | (patterns)) [SP RETURN SP (options)]`."""
    extended = False
    selection: set[str] = set()
    if tokens.peek_is(b"("):
        extended = True
        selection = set(_option_atoms(tokens))
        unknown = selection - _SELECTION_OPTIONS
        if unknown:
            raise CommandSyntaxError("Unknown select options")
        if "RECURSIVEMATCH" in selection and not selection & {"SUBSCRIBED", "SPECIAL-USE"}:
            raise CommandSyntaxError("RECURSIVEMATCH must not be the only selection.")
        tokens.space()
    reference = tokens.list_pattern()
    tokens.space()
    patterns: list[str | None] = []
    if tokens.open_paren():
        extended = True
        if not tokens.close_paren():
            while True:
                patterns.append(tokens.list_pattern())
                if tokens.close_paren():
                    break
                tokens.space()
    else:
        patterns.append(tokens.list_pattern())
    returned: set[str] = set()
    status_items: tuple[str, ...] = ()
    if tokens.skip_space():
        if not _at_return(tokens):
            raise CommandSyntaxError("Extra arguments.")
        extended = True
        returned, status_items = _return_options(tokens)
    return ListRequest(
        reference=reference,
        patterns=tuple(patterns),
        extended=extended,
        select_subscribed="SUBSCRIBED" in selection,
        select_special_use="SPECIAL-USE" in selection,
        recursive_match="RECURSIVEMATCH" in selection,
        return_subscribed="SUBSCRIBED" in selection or "SUBSCRIBED" in returned,
        return_children="CHILDREN" in returned,
        return_special_use="SPECIAL-USE" in selection or "SPECIAL-USE" in returned,
        status_items=status_items,
    )


def _at_return(tokens: Tokenizer) -> bool:
    """Whether `RETURN (` follows (consumed up to the parenthesis)."""
    start = tokens.pos
    if tokens.data[start : start + 8].upper() == b"RETURN (":
        tokens.pos += 7
        return True
    return False


def _return_options(tokens: Tokenizer) -> tuple[set[str], tuple[str, ...]]:
    options: set[str] = set()
    status: tuple[str, ...] = ()
    tokens.open_paren()
    if tokens.close_paren():
        return options, ()
    while True:
        option = _option_atom(tokens)
        if option in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
            options.add(option)
        elif option == "STATUS" and tokens.peek_is(b" ("):
            tokens.space()
            items = [item.upper() for item in tokens.atom_list()]
            if not items:
                raise CommandSyntaxError("Empty status list.")
            status = status_items((*status, *items))
        else:
            raise CommandSyntaxError("Unknown return options")
        if tokens.close_paren():
            break
        tokens.space()
    return options, status


def _option_atoms(tokens: Tokenizer) -> list[str]:
    tokens.open_paren()
    options: list[str] = []
    if tokens.close_paren():
        return options
    while True:
        options.append(_option_atom(tokens))
        if tokens.close_paren():
            return options
        tokens.space()


def _option_atom(tokens: Tokenizer) -> str:
    if tokens.peek() in (ord('"'), ord("{"), ord("~"), ord("(")):
        raise CommandSyntaxError("List options contains non-atoms.")
    return tokens.atom("list option").upper()


_LIST_REQUEST = Argument("list-arguments", _list_request)

LIST_COMMANDS: tuple[CommandSpec, ...] = (
    command("LIST", AUTHENTICATED, list_command, _LIST_REQUEST),
)
