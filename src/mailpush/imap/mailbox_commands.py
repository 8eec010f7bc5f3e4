"""Mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB,
STATUS and APPEND. Each translates the command into store calls and the store's
answer (or refusal) into IMAP responses.
"""

from __future__ import annotations

import calendar
import re

from ..errors import MailboxNotFoundError
from ..store import MailboxInfo, NewMessage
from ..store import flags as F
from ..store.mailbox_names import INBOX, SEPARATOR, parent_names
from .connection import CommandFailedError, ImapConnection, State, store_error_text
from .parser import Command, CommandSyntaxError, Tokenizer
from .responses import mailbox_name
from .sequence_set import format_uid_ranges
from .session import MailboxView

_STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DATE_TIME = re.compile(
    r"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
)
_SYSTEM_FLAGS = {name.lower(): bit for bit, name in F.FLAG_NAMES if bit != F.RECENT}


async def select(conn: ImapConnection, command: Command) -> str:
    return await _open(conn, command, readonly=False)


async def examine(conn: ImapConnection, command: Command) -> str:
    return await _open(conn, command, readonly=True)


async def _open(conn: ImapConnection, command: Command, readonly: bool) -> str:
    tokens = command.args
    tokens.space()
    name = _mailbox_arg(tokens)
    tokens.end()
    user = _user(conn)
    conn.begin_select()
    view: MailboxView | None = None
    try:
        status = await conn.store.status(user, name)
        infos = await conn.store.messages(user, name)
        view = MailboxView(status.mailbox, status.uidvalidity, readonly, infos, status.keywords)
        if readonly:
            view.recent.update(info.uid for info in infos if info.recent)
        else:
            view.recent.update(await conn.store.take_recent(user, name))
    finally:
        conn.finish_select(view)
    first_unseen = next((i + 1 for i, info in enumerate(infos) if not info.flags & F.SEEN), None)
    conn.write_flags_lines(view)
    conn.out.line(f"* {len(infos)} EXISTS")
    conn.out.line(f"* {len(view.recent)} RECENT")
    if first_unseen is not None:
        conn.out.line(f"* OK [UNSEEN {first_unseen}] First unseen.")
    conn.out.line(f"* OK [UIDVALIDITY {status.uidvalidity}] UIDs valid")
    conn.out.line(f"* OK [UIDNEXT {status.uidnext}] Predicted next UID")
    access = "READ-ONLY" if readonly else "READ-WRITE"
    return f"OK [{access}] {'Examine' if readonly else 'Select'} completed."


async def create(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    name = _mailbox_arg(tokens)
    tokens.end()
    # A trailing separator only says the mailbox will hold children (RFC 3501 §6.3.3).
    name = name.rstrip(SEPARATOR) or name
    await conn.store.create_mailbox(_user(conn), name)
    return "OK Create completed."


async def delete(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    name = _mailbox_arg(tokens)
    tokens.end()
    if name.upper() == INBOX:
        raise CommandFailedError("INBOX can't be deleted.")
    if conn.view is not None and conn.view.name == _canonical(name):
        conn.unselect()  # Dovecot closes a selected mailbox before deleting it
    await conn.store.delete_mailbox(_user(conn), name)
    return "OK Delete completed."


async def rename(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    old = _mailbox_arg(tokens)
    tokens.space()
    new = _mailbox_arg(tokens)
    tokens.end()
    await conn.store.rename_mailbox(_user(conn), old, new.rstrip(SEPARATOR) or new)
    return "OK Rename completed."


async def subscribe(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    name = _mailbox_arg(tokens)
    tokens.end()
    user = _user(conn)
    try:
        await conn.store.mailbox(user, name)
    except MailboxNotFoundError as exc:
        raise CommandFailedError(f"Mailbox doesn't exist: {exc.name}") from None
    await conn.store.subscribe(user, name)
    return "OK Subscribe completed."


async def unsubscribe(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    name = _mailbox_arg(tokens)
    tokens.end()
    await conn.store.unsubscribe(_user(conn), name)
    return "OK Unsubscribe completed."


async def list_mailboxes(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    if tokens.peek_is(b"("):
        raise CommandSyntaxError("LIST-EXTENDED selection options are not supported")
    reference = tokens.list_mailbox() if not tokens.peek_is(b'""') else _empty(tokens)
    tokens.space()
    pattern = tokens.list_mailbox() if not tokens.peek_is(b'""') else _empty(tokens)
    tokens.end()
    if not pattern:
        conn.out.line(f'* LIST (\\Noselect) "{SEPARATOR}" ""')
        return "OK List completed."
    user = _user(conn)
    boxes = await conn.store.list_mailboxes(user)
    matcher = _pattern(reference + pattern)
    names = {box.name for box in boxes}
    for box in boxes:
        if matcher.match(box.name):
            attributes = _attributes(box, names)
            conn.out.add(
                b"* LIST (" + attributes.encode() + b') "/" ' + mailbox_name(box.name) + b"\r\n"
            )
    return "OK List completed."


async def lsub(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    reference = tokens.list_mailbox() if not tokens.peek_is(b'""') else _empty(tokens)
    tokens.space()
    pattern = tokens.list_mailbox() if not tokens.peek_is(b'""') else _empty(tokens)
    tokens.end()
    if not pattern:
        conn.out.line(f'* LSUB (\\Noselect) "{SEPARATOR}" ""')
        return "OK Lsub completed."
    subscribed = await conn.store.subscriptions(_user(conn))
    matcher = _pattern(reference + pattern)
    shown: dict[str, str] = {}
    for name in subscribed:
        if matcher.match(name):
            shown[name] = ""
        for parent in parent_names(name):
            # `%` matching a parent of a subscription lists it as \Noselect (RFC 3501 §6.3.9).
            if parent not in shown and parent not in subscribed and matcher.match(parent):
                shown[parent] = "\\Noselect"
    for name in sorted(shown, key=lambda n: (n != INBOX, n)):
        conn.out.add(
            b"* LSUB (" + shown[name].encode() + b') "/" ' + mailbox_name(name) + b"\r\n"
        )
    return "OK Lsub completed."


async def status(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    name = _mailbox_arg(tokens)
    tokens.space()
    items = [item.upper() for item in tokens.atom_list()]
    tokens.end()
    for item in items:
        if item not in _STATUS_ITEMS:
            raise CommandSyntaxError(f"Invalid status item {item}")
    result = await conn.store.status(_user(conn), name)
    values = {
        "MESSAGES": result.messages,
        "RECENT": result.recent,
        "UIDNEXT": result.uidnext,
        "UIDVALIDITY": result.uidvalidity,
        "UNSEEN": result.unseen,
    }
    if conn.view is not None and conn.view.name == result.mailbox:
        values["RECENT"] = len(conn.view.recent) + result.recent
    text = " ".join(f"{item} {values[item]}" for item in items)
    conn.out.add(b"* STATUS " + mailbox_name(result.mailbox) + f" ({text})\r\n".encode())
    return "OK Status completed."


async def append(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    name = _mailbox_arg(tokens)
    messages: list[NewMessage] = []
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
        raw = tokens.string()
        if not raw:
            raise CommandFailedError("Can't save a zero byte message.")
        messages.append(
            NewMessage(raw, flags, keywords, date[0] if date else None, date[1] if date else 0)
        )
    tokens.end()
    if not messages:
        raise CommandSyntaxError("APPEND needs a message")
    try:
        saved = await conn.store.append(_user(conn), name, messages)
    except MailboxNotFoundError as exc:
        raise CommandFailedError(store_error_text(exc, trycreate=True)) from None
    uids = format_uid_ranges([m.uid for m in saved.messages])
    return f"OK [APPENDUID {saved.uidvalidity} {uids}] Append completed."


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


def _user(conn: ImapConnection) -> str:
    assert conn.user is not None and conn.state is not State.NOT_AUTHENTICATED
    return conn.user


def _mailbox_arg(tokens: Tokenizer) -> str:
    name = tokens.mailbox()
    if not name:
        raise CommandFailedError("[CANNOT] Empty mailbox name.")
    return name


def _canonical(name: str) -> str:
    levels = name.split(SEPARATOR)
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return SEPARATOR.join(levels)


def _empty(tokens: Tokenizer) -> str:
    tokens.pos += 2
    return ""


def _pattern(pattern: str) -> re.Pattern[str]:
    """A LIST pattern as a regex: `*` spans levels, `%` stays within one."""
    if pattern[:5].upper() == INBOX and (len(pattern) == 5 or pattern[5] == SEPARATOR):
        pattern = INBOX + pattern[5:]
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(f"[^{re.escape(SEPARATOR)}]*")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.S)


def _attributes(box: MailboxInfo, names: set[str]) -> str:
    attributes: list[str] = []
    if not box.selectable:
        attributes.append("\\Noselect")
    prefix = box.name + SEPARATOR
    has_children = any(other.startswith(prefix) for other in names)
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
    "append", "create", "delete", "examine", "list_mailboxes", "lsub", "parse_store_flags",
    "rename", "select", "status", "subscribe", "unsubscribe",
]  # fmt: skip
