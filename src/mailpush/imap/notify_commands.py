"""The NOTIFY command (RFC 5465): `NOTIFY NONE` and `NOTIFY SET [STATUS] (filter events)...`.

Read and checked as Dovecot 2.3.19's cmd-notify.c reads it: BAD
`Invalid arguments.` for what does not fit the grammar, BAD with Dovecot's
words for the selected mailbox's rules (MessageNew and MessageExpunge
together; FlagChange only with them), `NO [BADEVENT ...]` for the events
mailpush does not report (notify.py), and `NO [NOTIFICATIONOVERFLOW]` for
more than `MAX_NAMES_PER_FILTER` names in one filter group. The session
keeps what was set (connection.py, notify_watch.py); `NOTIFY SET STATUS`
answers a `* STATUS` for each covered mailbox first, except the selected
one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..store.mailbox_names import is_inside, normalize_mailbox_name
from .command_errors import CommandFailedError
from .command_spec import Argument, CommandSpec, command
from .fetch import FetchPlan, parse_fetch_items
from .message_commands import fetch_new_messages
from .notify import (
    EVENT_NAMES,
    MAX_NAMES_PER_FILTER,
    UNSUPPORTED_EVENTS,
    FilterKind,
    MailboxFilter,
    NotifyEvent,
    NotifySettings,
    initial_status_items,
)
from .parser import CommandSyntaxError, Tokenizer
from .session_protocol import Session
from .states import AUTHENTICATED
from .status_response import format_status, status_items

__all__ = ["NOTIFY_COMMANDS", "NotifyRequest", "notify"]

_INVALID = "Invalid arguments."
_EVENTS_BY_NAME = {name.upper(): event for name, event in EVENT_NAMES}
_NEW_OR_EXPUNGE = NotifyEvent.MESSAGE_NEW | NotifyEvent.MESSAGE_EXPUNGE


@dataclass(frozen=True, slots=True)
class NotifyRequest:
    """A NOTIFY command as read: the settings, and how many names its largest group has."""

    settings: NotifySettings
    max_names: int = 0


async def notify(conn: Session, request: NotifyRequest) -> str:
    """Checked in Dovecot's order once the whole command was read (BADEVENT before
    NOTIFICATIONOVERFLOW); the new settings replace the old ones only when accepted."""
    settings = request.settings
    unsupported = settings.used_events & UNSUPPORTED_EVENTS
    if unsupported:
        names = " ".join(name for name, event in EVENT_NAMES if unsupported & event)
        raise CommandFailedError(f"[BADEVENT {names}] Unsupported NOTIFY events.")
    if request.max_names > MAX_NAMES_PER_FILTER:
        raise CommandFailedError("[NOTIFICATIONOVERFLOW] Too many mailbox names")
    fetch: Callable[[list[int]], Awaitable[None]] | None = None
    plan = settings.fetch_plan
    if plan is not None:

        async def fetch(uids: list[int], plan: FetchPlan = plan) -> None:
            await fetch_new_messages(conn, plan, uids)

    covered = await conn.start_notify(settings, fetch)
    if settings.send_status:
        items = status_items(initial_status_items(settings.used_events))
        selected = conn.view.name if conn.view is not None else None
        for status in covered:
            if status.mailbox == selected:
                continue
            if "HIGHESTMODSEQ" in items:
                conn.enable_condstore()  # as Dovecot's STATUS HIGHESTMODSEQ does
            conn.out.add(format_status(status, items))
    return "OK NOTIFY completed."


# --- arguments -------------------------------------------------------------------------


@dataclass(slots=True)
class _Reading:
    """What has been read of a `NOTIFY SET` so far."""

    selected: bool = False
    selected_events: NotifyEvent = NotifyEvent.NONE
    immediate: bool = False
    plan: FetchPlan | None = None
    status: bool = False
    used: NotifyEvent = NotifyEvent.NONE
    #: Names per (kind, events) group, merged as Dovecot merges them.
    groups: dict[tuple[FilterKind, NotifyEvent], list[str]] = field(default_factory=dict)


def _notify_request(tokens: Tokenizer, conn: Session) -> NotifyRequest:
    try:
        tokens.space()
        verb = tokens.atom().upper()
    except CommandSyntaxError:
        raise CommandSyntaxError(_INVALID) from None
    if verb == "NONE":
        tokens.pos = len(tokens.data)  # Dovecot reads nothing after NONE
        return NotifyRequest(NotifySettings())
    if verb != "SET":
        raise CommandSyntaxError(_INVALID)
    reading = _Reading()
    try:
        first = True
        while tokens.skip_space():
            if first and not tokens.peek_is(b"("):
                if tokens.atom().upper() != "STATUS":
                    raise CommandSyntaxError(_INVALID)
                reading.status = True
                first = False
                continue
            first = False
            _event_group(tokens, reading)
    except _RuleBrokenError as exc:
        raise CommandSyntaxError(str(exc)) from None
    except CommandSyntaxError:
        raise CommandSyntaxError(_INVALID) from None
    filters = tuple(
        MailboxFilter(kind, events, tuple(names))
        for (kind, events), names in reading.groups.items()
    )
    settings = NotifySettings(
        filters=filters,
        selected=reading.selected,
        selected_events=reading.selected_events,
        immediate_expunges=reading.immediate,
        fetch_plan=reading.plan,
        send_status=reading.status,
        used_events=reading.used,
    )
    max_names = max((len(names) for names in reading.groups.values()), default=0)
    return NotifyRequest(settings, max_names)


class _RuleBrokenError(Exception):
    """A selected-mailbox rule was broken: BAD with Dovecot's words, not `Invalid arguments.`"""


def _event_group(tokens: Tokenizer, reading: _Reading) -> None:
    """`(filter-mailboxes events)`."""
    if not tokens.open_paren():
        raise CommandSyntaxError(_INVALID)
    kind = tokens.atom().upper()
    tokens.space()
    if kind in ("SELECTED", "SELECTED-DELAYED"):
        if reading.selected:
            raise _RuleBrokenError("Duplicate selected filter")
        reading.selected = True
        reading.immediate = kind == "SELECTED"
        _selected_events(tokens, reading)
    else:
        names: list[str] = []
        if kind in ("SUBTREE", "MAILBOXES"):
            names = _mailboxes(tokens)
            tokens.space()
        elif kind not in ("INBOXES", "PERSONAL", "SUBSCRIBED"):
            raise CommandSyntaxError(_INVALID)
        events = _events(tokens, reading)
        if events:
            _add_filter(reading, kind, names, events)
        while tokens.skip_space():
            _skip_value(tokens)  # Dovecot reads no further than the events
    if not tokens.close_paren():
        raise CommandSyntaxError(_INVALID)


def _selected_events(tokens: Tokenizer, reading: _Reading) -> None:
    if not tokens.peek_is(b"("):
        if tokens.atom().upper() != "NONE":
            raise CommandSyntaxError(_INVALID)
        return
    tokens.open_paren()
    events = NotifyEvent.NONE
    while True:
        event = _event(tokens)
        events |= event
        if event is NotifyEvent.MESSAGE_NEW and tokens.peek_is(b" ("):
            tokens.space()
            if tokens.peek_is(b"()"):
                raise CommandSyntaxError(_INVALID)  # at least one attribute
            try:
                reading.plan = parse_fetch_items(tokens, uid_command=False)
            except CommandSyntaxError as exc:
                raise _RuleBrokenError(f"Invalid fetch-att list: {exc}") from None
        if tokens.close_paren():
            break
        tokens.space()
    reading.selected_events |= events
    reading.used |= events
    if events & _NEW_OR_EXPUNGE and events & _NEW_OR_EXPUNGE != _NEW_OR_EXPUNGE:
        raise _RuleBrokenError("MessageNew and MessageExpunge must be together")
    if events & (NotifyEvent.FLAG_CHANGE | NotifyEvent.ANNOTATION_CHANGE) and not (
        events & NotifyEvent.MESSAGE_EXPUNGE
    ):
        raise _RuleBrokenError("FlagChange requires MessageNew and MessageExpunge")


def _events(tokens: Tokenizer, reading: _Reading) -> NotifyEvent:
    """`NONE` or `(event ...)` for a group of mailboxes (NONE: the group says nothing)."""
    if not tokens.peek_is(b"("):
        if tokens.atom().upper() != "NONE":
            raise CommandSyntaxError(_INVALID)
        return NotifyEvent.NONE
    tokens.open_paren()
    events = NotifyEvent.NONE
    while True:
        events |= _event(tokens)
        if tokens.close_paren():
            break
        tokens.space()
    reading.used |= events
    return events


def _skip_value(tokens: Tokenizer) -> None:
    """One value of any kind: a string, a parenthesised list, or an atom."""
    if tokens.open_paren():
        while not tokens.close_paren():
            _skip_value(tokens)
            tokens.skip_space()
    elif tokens.peek_is(b'"') or tokens.peek_is(b"{"):
        tokens.string()
    else:
        tokens.astring()


def _event(tokens: Tokenizer) -> NotifyEvent:
    event = _EVENTS_BY_NAME.get(tokens.atom().upper())
    if event is None:
        raise CommandSyntaxError(_INVALID)
    return event


def _mailboxes(tokens: Tokenizer) -> list[str]:
    """`one-or-more-mailbox`: a mailbox name or a parenthesised list of at least one."""
    if not tokens.open_paren():
        return [normalize_mailbox_name(tokens.mailbox())]
    names = [normalize_mailbox_name(tokens.mailbox())]
    while not tokens.close_paren():
        tokens.space()
        names.append(normalize_mailbox_name(tokens.mailbox()))
    return names


def _add_filter(reading: _Reading, kind: str, names: list[str], events: NotifyEvent) -> None:
    """Add names to the group of (kind, events), as Dovecot merges them: a name given
    twice counts once, and in a subtree a name inside another is dropped."""
    if kind in ("INBOXES", "PERSONAL"):
        # Every mailbox: Dovecot cannot tell inboxes from other mailboxes either.
        filter_kind, names = FilterKind.SUBTREE, [""]
    elif kind == "SUBSCRIBED":
        filter_kind, names = FilterKind.SUBSCRIBED, [""]
    elif kind == "SUBTREE":
        filter_kind = FilterKind.SUBTREE
    else:
        filter_kind = FilterKind.MAILBOXES
    group = reading.groups.setdefault((filter_kind, events), [])
    for name in names:
        if name in group:
            continue
        if filter_kind is FilterKind.SUBTREE:
            if any(is_inside(name, known) for known in group):
                continue
            group[:] = [known for known in group if not is_inside(known, name)]
        group.append(name)


_NOTIFY_REQUEST = Argument("notify-args", _notify_request, "own")

NOTIFY_COMMANDS: tuple[CommandSpec, ...] = (
    command("NOTIFY", AUTHENTICATED, notify, _NOTIFY_REQUEST),
)
