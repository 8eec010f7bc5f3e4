"""Mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB,
STATUS and APPEND. Each translates the command into store calls and the store's
answer (or refusal) into IMAP responses; `MAILBOX_COMMANDS` declares them.
"""

from __future__ import annotations

import asyncio
import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import MailboxNotFoundError, StoreFullError, TooManyMailboxesError
from ..store import MailboxInfo, NewMessage
from ..store import flags as F
from ..store.mailbox_names import INBOX, SEPARATOR, parent_names
from .binary_append import BinaryAppendMessage
from .catenate import CatenatedMessage, catenate_follows, parse_catenate
from .command_arguments import MAILBOX
from .command_errors import CommandFailedError, store_error_text
from .command_spec import Argument, CommandSpec, command, optional
from .condstore import QresyncParameters, SelectParameters, parse_select_parameters
from .list_pattern import ListPattern
from .literal_spool import SpooledLiteral, message_argument
from .parser import CommandSyntaxError, Tokenizer
from .responses import format_flags, mailbox_name
from .sequence_set import format_uid_ranges
from .session import MailboxView
from .session_protocol import Session
from .states import AUTHENTICATED
from .status_response import status_items, write_status

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DATE_TIME = re.compile(
    r"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
)
#: LIST and LSUB give other connections a turn after this many mailboxes.
_LIST_SLICE = 64
_SYSTEM_FLAGS = {name.lower(): bit for bit, name in F.FLAG_NAMES if bit != F.RECENT}


async def select(conn: Session, name: str, parameters: SelectParameters | None) -> str:
    return await _open(conn, name, readonly=False, parameters=parameters)


async def examine(conn: Session, name: str, parameters: SelectParameters | None) -> str:
    return await _open(conn, name, readonly=True, parameters=parameters)


async def _open(
    conn: Session, name: str, readonly: bool, parameters: SelectParameters | None
) -> str:
    user = conn.require_user()
    if conn.view is not None:
        # Dovecot closes the selected mailbox first, whatever follows (RFC 7162 §3.2.11).
        conn.unselect()
        conn.out.line("* OK [CLOSED] Previous mailbox closed.")
    qresync = None
    if parameters is not None:
        if parameters.unknown is not None:
            raise CommandSyntaxError("Unknown FETCH modifier")  # Dovecot's words
        if parameters.qresync is not None and not conn.qresync:
            raise CommandSyntaxError("QRESYNC not enabled")
        if parameters.condstore:
            conn.enable_condstore()
        qresync = parameters.qresync
    await conn.ensure_inbox(name)
    conn.begin_select()
    view: MailboxView | None = None
    try:
        snapshot = await conn.store.snapshot(user, name)
        status, infos = snapshot.status, snapshot.messages
        view = MailboxView(
            status.mailbox, status.uidvalidity, readonly, infos, status.keywords,
            status.highestmodseq,
        )  # fmt: skip
        if readonly:
            view.recent.update(info.uid for info in infos if info.recent)
        else:
            try:
                last_uid = infos[-1].uid if infos else 0
                view.recent.update(await conn.store.take_recent(user, name, last_uid))
            except StoreFullError:
                # Claiming \Recent is a write; a full disk must not stop a SELECT.
                view.recent.update(info.uid for info in infos if info.recent)
    finally:
        conn.finish_select(view)
    first_unseen = next((i + 1 for i, info in enumerate(infos) if not info.flags & F.SEEN), None)
    conn.write_flags_lines(view)
    conn.out.line(f"* {len(infos)} EXISTS")
    conn.out.line(f"* {len(view.recent)} RECENT")
    view.recent_reported = len(view.recent)
    if first_unseen is not None:
        conn.out.line(f"* OK [UNSEEN {first_unseen}] First unseen.")
    conn.out.line(f"* OK [UIDVALIDITY {status.uidvalidity}] UIDs valid")
    conn.out.line(f"* OK [UIDNEXT {status.uidnext}] Predicted next UID")
    if conn.condstore:
        conn.out.line(f"* OK [HIGHESTMODSEQ {status.highestmodseq}] Highest")
    if qresync is not None and qresync.uidvalidity == status.uidvalidity:
        await _resynchronise(conn, view, qresync, status.uidnext - 1)
    access = "READ-ONLY" if readonly else "READ-WRITE"
    return f"OK [{access}] {'Examine' if readonly else 'Select'} completed."


async def _resynchronise(
    conn: Session, view: MailboxView, qresync: QresyncParameters, top_uid: int
) -> None:
    """SELECT (QRESYNC ...): the UIDs expunged since the client's modseq, then the
    messages changed since, as Dovecot answers (`UID FLAGS MODSEQ`); both only among
    the client's known UIDs when it sent them."""
    changes = await conn.store.changes_since(conn.require_user(), view.name, qresync.modseq)
    known = qresync.known_uids
    vanished = [
        uid for uid in changes.expunged if known is None or known.contains_uid(uid, top_uid)
    ]
    if vanished:
        conn.out.line(f"* VANISHED (EARLIER) {format_uid_ranges(vanished)}")
    for info in changes.messages:
        if known is not None and not known.contains_uid(info.uid, top_uid):
            continue  # Dovecot reports changes of the known UIDs only
        seq = view.seq_of(info.uid)
        if seq is None:
            continue  # arrived after SELECT read the mailbox: EXISTS announces it
        flags, keywords = view.flag_state(info.uid)
        text = format_flags(flags, keywords, info.uid in view.recent)
        modseq = view.modseq_of(info.uid)
        conn.out.line(f"* {seq} FETCH (UID {info.uid} FLAGS {text} MODSEQ ({modseq}))")


async def create(conn: Session, name: str) -> str:
    # A trailing separator only says the mailbox will hold children (RFC 3501 §6.3.3).
    name = name.rstrip(SEPARATOR) or name
    try:
        await conn.store.create_mailbox(conn.require_user(), name)
    except TooManyMailboxesError:
        raise CommandFailedError("[LIMIT] Maximum number of mailboxes reached") from None
    return "OK Create completed."


async def delete(conn: Session, name: str) -> str:
    if name.upper() == INBOX:
        raise CommandFailedError("INBOX can't be deleted.")
    if conn.view is not None and conn.view.name == _canonical(name):
        conn.unselect()  # Dovecot closes a selected mailbox before deleting it
    await conn.store.delete_mailbox(conn.require_user(), name)
    return "OK Delete completed."


async def rename(conn: Session, old: str, new: str) -> str:
    # INBOX exists for the client even before its first use creates it (Dovecot's
    # mailbox_exists()): it can be renamed, and nothing can be renamed onto it.
    new = new.rstrip(SEPARATOR) or new
    if new.upper() == INBOX:
        raise CommandFailedError("[ALREADYEXISTS] Target mailbox already exists")
    await conn.ensure_inbox(old)
    await conn.store.rename_mailbox(conn.require_user(), old, new)
    return "OK Rename completed."


async def subscribe(conn: Session, name: str) -> str:
    user = conn.require_user()
    await conn.ensure_inbox(name)  # INBOX always exists for the client, as in Dovecot
    try:
        await conn.store.mailbox(user, name)
    except MailboxNotFoundError as exc:
        raise CommandFailedError(f"Mailbox doesn't exist: {exc.name}") from None
    await conn.store.subscribe(user, name)
    return "OK Subscribe completed."


async def unsubscribe(conn: Session, name: str) -> str:
    await conn.store.unsubscribe(conn.require_user(), name)
    return "OK Unsubscribe completed."


async def list_mailboxes(conn: Session, reference: str | None, pattern: str | None) -> str:
    """LIST: one pass over the user's mailboxes, O(n log n) in their number.

    `\\HasChildren` comes from the set of every listed name's ancestors, built
    once, and patterns are matched in linear time (`ListPattern`), so neither
    10,000 mailboxes nor a pattern of many `*` holds the event loop for long.
    """
    if pattern == "":
        conn.out.line(f'* LIST (\\Noselect) "{SEPARATOR}" ""')
        return "OK List completed."
    if reference is None or pattern is None:
        return "OK List completed."  # not modified UTF-7: no name can match (as Dovecot)
    user = conn.require_user()
    boxes = _with_inbox(await conn.store.list_mailboxes(user))
    matcher = ListPattern(reference + pattern)
    parents = _ancestors(box.name for box in boxes)
    for index, box in enumerate(boxes):
        if index % _LIST_SLICE == _LIST_SLICE - 1:
            await asyncio.sleep(0)  # let other connections run between slices
        if matcher.matches(box.name):
            attributes = _attributes(box, box.name in parents)
            conn.out.add(
                b"* LIST (" + attributes.encode() + b') "/" ' + mailbox_name(box.name) + b"\r\n"
            )
    return "OK List completed."


async def lsub(conn: Session, reference: str | None, pattern: str | None) -> str:
    if pattern == "":
        conn.out.line(f'* LSUB (\\Noselect) "{SEPARATOR}" ""')
        return "OK Lsub completed."
    if reference is None or pattern is None:
        return "OK Lsub completed."  # not modified UTF-7: no name can match (as Dovecot)
    subscribed = await conn.store.subscriptions(conn.require_user())
    matcher = ListPattern(reference + pattern)
    subscribed_names = set(subscribed)
    shown: dict[str, str] = {}
    parents_tried: set[str] = set()
    for index, name in enumerate(subscribed):
        if index % _LIST_SLICE == _LIST_SLICE - 1:
            await asyncio.sleep(0)  # let other connections run between slices
        if matcher.matches(name):
            shown[name] = ""
        for parent in parent_names(name):
            if parent in parents_tried or parent in subscribed_names:
                continue
            parents_tried.add(parent)
            # `%` matching a parent of a subscription lists it as \Noselect (RFC 3501 §6.3.9).
            if matcher.matches(parent):
                shown[parent] = "\\Noselect"
    for name in sorted(shown, key=lambda n: (n != INBOX, n)):
        conn.out.add(
            b"* LSUB (" + shown[name].encode() + b') "/" ' + mailbox_name(name) + b"\r\n"
        )
    return "OK Lsub completed."


async def status(conn: Session, name: str, items: list[str]) -> str:
    # Items go out in Dovecot's order, not the request's (status_response.py).
    await write_status(conn, name, status_items(items))
    return "OK Status completed."


async def append(conn: Session, name: str, appended: AppendedMessages) -> str:
    messages = appended.messages
    if appended.empty_follows:
        await _refuse_empty_message(conn, name, accepted=bool(messages))
    if not messages:
        raise CommandSyntaxError("APPEND needs a message")
    in_memory = [m for m in messages if isinstance(m, NewMessage)]
    try:
        await conn.ensure_inbox(name)
        if any(isinstance(m, CatenatedMessage) for m in messages):
            # A missing target is TRYCREATE before any URL is judged, as in Dovecot.
            await conn.store.mailbox(conn.require_user(), name)
        if len(in_memory) == len(messages):
            saved = await conn.store.append(conn.require_user(), name, in_memory)
        else:
            # Spooled literals come into memory one command at a time (see literal_spool).
            async with conn.append_spool.loading():
                loaded = [m if isinstance(m, NewMessage) else await m.load() for m in messages]
                saved = await conn.store.append(conn.require_user(), name, loaded)
    except MailboxNotFoundError as exc:
        raise CommandFailedError(store_error_text(exc, trycreate=True)) from None
    uids = format_uid_ranges([m.uid for m in saved.messages])
    return f"OK [APPENDUID {saved.uidvalidity} {uids}] Append completed."


async def _refuse_empty_message(conn: Session, name: str, *, accepted: bool) -> None:
    """Fail APPEND for a zero-byte message, as Dovecot does.

    Dovecot saves a MULTIAPPEND's messages as they arrive, so when a later
    one is empty its transaction had begun with the first: it is rolled back,
    and the push script sees `begin_txn` and `end_txn(ctx, false)` without
    events (docs/dovecot-reference.md#rolled-back-transactions). That
    rollback is recorded here; an empty first message began nothing.
    """
    if accepted:
        try:
            await conn.ensure_inbox(name)
            await conn.store.record_rollback(conn.require_user(), name)
        except MailboxNotFoundError as exc:
            raise CommandFailedError(store_error_text(exc, trycreate=True)) from None
    raise CommandFailedError("Can't save a zero byte message.")


@dataclass(frozen=True, slots=True)
class AppendedMessages:
    """APPEND's messages, as read from the command."""

    messages: list[NewMessage | SpooledMessage | CatenatedMessage | BinaryAppendMessage]
    #: A zero-byte message came next: the command is refused, and as in Dovecot
    #: nothing after it is read.
    empty_follows: bool


class SpooledMessage:
    """An APPEND message whose literal is in a spool file until it is saved."""

    def __init__(
        self,
        literal: SpooledLiteral,
        flags: int,
        keywords: tuple[str, ...],
        date: tuple[int, int] | None,
    ) -> None:
        self.literal = literal
        self.flags = flags
        self.keywords = keywords
        self.date = date

    async def load(self) -> NewMessage:
        date = self.date
        raw = await self.literal.read()
        return NewMessage(
            raw, self.flags, self.keywords, date[0] if date else None, date[1] if date else 0
        )


# --- arguments ---------------------------------------------------------------------


def _appended_messages(tokens: Tokenizer, conn: Session) -> AppendedMessages:
    """`[flag-list SP] [date-time SP] (literal | CATENATE (...))`, each after a space
    (MULTIAPPEND: several; CATENATE is catenate.py's)."""
    messages: list[NewMessage | SpooledMessage | CatenatedMessage | BinaryAppendMessage] = []
    while tokens.skip_space():
        flags: int = 0
        keywords: tuple[str, ...] = ()
        date: tuple[int, int] | None = None
        if tokens.peek_is(b"("):
            flags, keywords = parse_store_flags(tokens.flag_list())
            tokens.space()
        if tokens.peek_is(b'"'):
            date = _date_time(tokens.quoted())
            tokens.space()
        if catenate_follows(tokens):
            messages.append(parse_catenate(tokens, conn, flags, keywords, date))
            continue
        binary = tokens.peek_is(b"~")
        raw = message_argument(tokens, conn.spooled)
        if binary and raw:
            messages.append(BinaryAppendMessage(raw, flags, keywords, date))
            continue
        if not isinstance(raw, bytes):
            messages.append(SpooledMessage(raw, flags, keywords, date))
            continue
        if not raw:
            tokens.pos = len(tokens.data)
            return AppendedMessages(messages, empty_follows=True)
        messages.append(
            NewMessage(raw, flags, keywords, date[0] if date else None, date[1] if date else 0)
        )
    return AppendedMessages(messages, empty_follows=False)


def _list_pattern(tokens: Tokenizer, conn: Session) -> str | None:
    return tokens.list_pattern()


def _status_items(tokens: Tokenizer, conn: Session) -> list[str]:
    # Unknown items are refused by the handler, once the whole command was read.
    return [item.upper() for item in tokens.atom_list()]


#: LSUB's reference: a `(` is just not a pattern character (LIST is list_extended.py's).
_LSUB_REFERENCE = Argument("reference", _list_pattern)
_LIST_PATTERN = Argument("list-mailbox", _list_pattern)
_STATUS_ITEMS_ARGUMENT = Argument("status-att-list", _status_items)
_MESSAGES = Argument("messages", _appended_messages, "own")

def _select_parameters(tokens: Tokenizer, conn: Session) -> SelectParameters:
    return parse_select_parameters(tokens)


_SELECT_PARAMETERS = optional(Argument("select-params", _select_parameters))

MAILBOX_COMMANDS: tuple[CommandSpec, ...] = (
    command("SELECT", AUTHENTICATED, select, MAILBOX, _SELECT_PARAMETERS),
    command("EXAMINE", AUTHENTICATED, examine, MAILBOX, _SELECT_PARAMETERS),
    command("CREATE", AUTHENTICATED, create, MAILBOX),
    command("DELETE", AUTHENTICATED, delete, MAILBOX),
    command("RENAME", AUTHENTICATED, rename, MAILBOX, MAILBOX),
    command("SUBSCRIBE", AUTHENTICATED, subscribe, MAILBOX),
    command("UNSUBSCRIBE", AUTHENTICATED, unsubscribe, MAILBOX),
    command("LSUB", AUTHENTICATED, lsub, _LSUB_REFERENCE, _LIST_PATTERN),
    command("STATUS", AUTHENTICATED, status, MAILBOX, _STATUS_ITEMS_ARGUMENT),
    command("APPEND", AUTHENTICATED, append, MAILBOX, _MESSAGES),
)


# --- shared helpers ------------------------------------------------------------------


def parse_store_flags(names: list[str]) -> tuple[int, tuple[str, ...]]:
    """System flags and keywords of a flag list; unknown `\\Flags` are a syntax error."""
    mask = 0
    keywords: list[str] = []
    seen: set[str] = set()
    for name in names:
        if name.startswith("\\"):
            lower = name.lower()
            if lower == "\\recent":
                continue  # the server owns \Recent; setting it is ignored, as Dovecot does
            bit = _SYSTEM_FLAGS.get(lower)
            if bit is None:
                raise CommandSyntaxError(f"Invalid system flag {name}")
            mask |= bit
        elif name.lower() not in seen:
            seen.add(name.lower())
            keywords.append(name)
    return mask, tuple(keywords)


def _with_inbox(boxes: list[MailboxInfo]) -> list[MailboxInfo]:
    """The user's mailboxes with INBOX, which Dovecot lists before its first use creates it."""
    if any(box.name == INBOX and box.selectable for box in boxes):
        return boxes
    others = [box for box in boxes if box.name != INBOX]
    return [MailboxInfo(INBOX, 0, 0, 0, None), *others]


def _canonical(name: str) -> str:
    levels = name.split(SEPARATOR)
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return SEPARATOR.join(levels)


def _ancestors(names: Iterable[str]) -> set[str]:
    """Every name that is an ancestor of one of `names`: those have children."""
    found: set[str] = set()
    for name in names:
        cut = name.rfind(SEPARATOR)
        while cut > 0:
            parent = name[:cut]
            if parent in found:
                break  # its own ancestors were added with it
            found.add(parent)
            cut = name.rfind(SEPARATOR, 0, cut)
    return found


def _attributes(box: MailboxInfo, has_children: bool) -> str:
    attributes: list[str] = []
    if not box.selectable:
        attributes.append("\\Noselect")
    attributes.append("\\HasChildren" if has_children else "\\HasNoChildren")
    if box.special_use:
        attributes.append(box.special_use)
    return " ".join(attributes)


def _date_time(raw: bytes) -> tuple[int, int]:
    """APPEND's date-time: (epoch seconds, zone offset in minutes east of UTC)."""
    text = raw.decode("ascii", "replace")
    match = _DATE_TIME.match(text)
    month = _MONTHS.get(match.group(2).lower()) if match else None
    if match is None or month is None:
        raise CommandSyntaxError(f"Invalid date-time {text!r}")
    day, _, year, hour, minute, second, sign, zh, zm = match.groups()
    try:
        local = calendar.timegm(
            (int(year), month, int(day), int(hour), int(minute), int(second))
        )
    except (ValueError, OverflowError) as exc:
        raise CommandSyntaxError(f"Invalid date-time {text!r}") from exc
    offset = (int(zh) * 60 + int(zm)) * (-1 if sign == "-" else 1)
    return local - offset * 60, offset


__all__ = [
    "MAILBOX_COMMANDS", "AppendedMessages", "append", "create", "delete", "examine",
    "list_mailboxes", "lsub", "parse_store_flags", "rename", "select", "status", "subscribe",
    "unsubscribe",
]  # fmt: skip
