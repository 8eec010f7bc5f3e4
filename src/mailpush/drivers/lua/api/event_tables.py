"""`PushEvent` → the Lua table a `dovecot_lua_notify_event_*` handler receives.

Fields and their nil-or-"" rules are Dovecot's
(docs/dovecot-reference.md#event-table-fields,
docs/dovecot-reference.md#message-fields): `from`/`to` and the address parts
are `""` when absent, `subject` and `message_id` nil. Where Dovecot's
documentation and code disagree both spellings are there: `keywords` and
`keywords_set`/`keywords_clear`, `flags` as an array of names that also
answers `&` (see `lib/events.lua`), and a `user` field. Numbers are Lua
integers (Dovecot pushes floats).
"""

from __future__ import annotations

from typing import Any

from ....events import PushEvent
from ....store.flags import FLAG_NAMES
from ..lua_strings import lua_bytes

__all__ = ["event_table", "handler_name"]

_FLAG_BITS = {name: bit for bit, name in FLAG_NAMES}


def handler_name(event_name: str) -> str:
    """`MessageNew` → `dovecot_lua_notify_event_message_new`."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in event_name).lstrip("_")
    return f"dovecot_lua_notify_event_{snake}"


def event_table(lua: Any, events: Any, user: Any, event: PushEvent) -> Any:
    """The handler's event table, built by `lib/events.lua` constructors."""
    mailbox = event.mailbox.encode()
    if event.is_mailbox_event:
        old = event.mailbox_old.encode() if event.mailbox_old is not None else None
        return events.mailbox_event(event.name.encode(), user, mailbox, old)
    name = event.name
    if name == "FlagsSet":
        return events.flags_set_event(
            user, mailbox, event.uid, event.uid_validity, _mask(event.flags),
            _array(lua, event.keywords),
        )
    if name == "FlagsClear":
        return events.flags_clear_event(
            user, mailbox, event.uid, event.uid_validity, _mask(event.flags),
            _array(lua, event.keywords), _mask(event.flags_old),
            _array(lua, event.keywords_old),
        )
    data = event.message
    if data is None or name not in ("MessageNew", "MessageAppend"):
        return events.message_event(name.encode(), user, mailbox, event.uid, event.uid_validity)
    return events.saved_event(
        name.encode(), user, mailbox, event.uid, event.uid_validity,
        _mask(event.flags), _array(lua, event.keywords), data.date, data.tz,
        lua_bytes(data.from_), lua_bytes(data.to), lua_bytes(data.from_address),
        lua_bytes(data.from_display_name), lua_bytes(data.to_address),
        lua_bytes(data.to_display_name), _optional(data.subject), lua_bytes(data.snippet),
        _optional(data.message_id),
    )


def _array(lua: Any, names: tuple[str, ...]) -> Any:
    """A Lua array of `names`, or None (the Lua side makes `{}`: one call into Lua less)."""
    if not names:
        return None
    return lua.table(*(lua_bytes(name) for name in names))


def _mask(flags: tuple[str, ...]) -> int:
    mask = 0
    for name in flags:
        mask |= _FLAG_BITS.get(name, 0)
    return mask


def _optional(value: str | None) -> bytes | None:
    return None if value is None else lua_bytes(value)
