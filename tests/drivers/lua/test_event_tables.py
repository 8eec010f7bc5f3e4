"""Event tables: Dovecot's fields and types, plus the documented spellings.

Dovecot's fields: docs/dovecot-reference.md#event-table-fields; the extra
spellings: docs/migrating-from-dovecot.md#lua-push-scripts.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailpush.events import MessageData, PushEvent

from .conftest import DriverFactory
from .protocol_helpers import MESSAGE, lua_list, message_new, run, transaction

#: Stores each event table and a description of each field's Lua type.
INSPECTOR = """
    SEEN = {}
    local function describe(value)
      if math.type ~= nil and type(value) == "number" then return math.type(value) end
      return type(value)
    end
    function dovecot_lua_notify_begin_txn(user) return {} end
    function dovecot_lua_notify_end_txn(ctx) end
    for _, name in ipairs({ "message_new", "message_append", "message_read", "message_trash",
      "message_expunge", "flags_set", "flags_clear", "mailbox_create", "mailbox_delete",
      "mailbox_rename", "mailbox_subscribe", "mailbox_unsubscribe" }) do
      _G["dovecot_lua_notify_event_" .. name] = function(ctx, event)
        local types = {}
        for key, value in pairs(event) do types[key] = describe(value) end
        SEEN[event.name] = { event = event, types = types }
      end
    end
"""


async def seen(make_driver: DriverFactory, *events: PushEvent, version: str = "5.4",
               script: str = INSPECTOR) -> Any:
    driver = await make_driver(script, options={"lua_version": version})
    await run(driver, transaction("alice", *events))
    state = await driver.state_for("alice")
    return state.runtime.globals[b"SEEN"]


def fields(entry: Any) -> dict[str, Any]:
    return {key.decode(): value.decode() for key, value in entry[b"types"].items()}


async def test_message_new_has_every_field_with_dovecots_types(
    make_driver: DriverFactory,
) -> None:
    entry = (await seen(make_driver, message_new(uid=42)))[b"MessageNew"]
    event = entry[b"event"]
    assert fields(entry) == {
        "name": "string", "user": "table", "mailbox": "string", "uid": "integer",
        "uid_validity": "integer", "flags": "table", "keywords": "table", "date": "integer",
        "tz": "integer", "from": "string", "to": "string", "from_address": "string",
        "from_display_name": "string", "to_address": "string", "to_display_name": "string",
        "subject": "string", "snippet": "string", "message_id": "string",
    }
    assert event[b"uid"] == 42
    assert event[b"uid_validity"] == 1795395289
    assert event[b"date"] == 1672646400
    assert event[b"tz"] == 120
    assert event[b"from"] == b'"Alice Example" <alice@example.org>'
    assert event[b"from_display_name"] == b"Alice Example"
    assert event[b"subject"] == "Grüße".encode()
    assert event[b"message_id"] == b"<m.1@example.org>"
    assert event[b"snippet"] == b"Hello Bob"


async def test_absent_headers_give_empty_strings_and_no_subject_or_message_id(
    make_driver: DriverFactory,
) -> None:
    bare = MessageData("", "", "", "", "", "", None, None, 0, 0, None, "", 10, False)
    entry = (await seen(make_driver, message_new(message=bare)))[b"MessageNew"]
    event = entry[b"event"]
    assert "subject" not in fields(entry) and "message_id" not in fields(entry)
    for key in (b"from", b"to", b"from_address", b"from_display_name", b"to_address",
                b"to_display_name", b"snippet"):
        assert event[key] == b""
    assert (event[b"date"], event[b"tz"]) == (0, 0)


async def test_the_user_field_is_the_mail_user_object(make_driver: DriverFactory) -> None:
    script = INSPECTOR + """
        function dovecot_lua_notify_event_message_read(ctx, event)
          SEEN.user = tostring(event.user) .. " " .. event.user.username
        end
    """
    table = await seen(
        make_driver, PushEvent("MessageRead", "INBOX", uid=3, uid_validity=9), script=script
    )
    assert table[b"user"] == b"alice alice"


async def test_flags_set_carries_flag_names_that_also_work_as_a_bitmask(
    make_driver: DriverFactory,
) -> None:
    script = INSPECTOR + """
        function dovecot_lua_notify_event_flags_set(ctx, event)
          SEEN.names = table.concat(event.flags, " ")
          SEEN.seen = event.flags & 8
          SEEN.mask = event.flags | 0
          SEEN.has_seen = dovecot.has_flag(event.flags, 8)
          SEEN.has_deleted = dovecot.has_flag(event.flags, 4)
          SEEN.positive = event.flags > 0
          SEEN.same_keywords = rawequal(event.keywords, event.keywords_set)
          SEEN.keywords = table.concat(event.keywords_set, " ")
        end
    """
    event = PushEvent("FlagsSet", "INBOX", uid=3, uid_validity=9,
                      flags=("\\Flagged", "\\Seen"), keywords=("$Label1", "Work"))
    table = await seen(make_driver, event, script=script)
    assert table[b"names"] == b"\\Flagged \\Seen"
    assert (table[b"seen"], table[b"mask"]) == (8, 10)
    assert (table[b"has_seen"], table[b"has_deleted"], table[b"positive"]) == (True, False, True)
    assert table[b"same_keywords"] is True
    assert table[b"keywords"] == b"$Label1 Work"


async def test_flags_clear_has_old_flags_and_keywords_under_both_names(
    make_driver: DriverFactory,
) -> None:
    event = PushEvent(
        "FlagsClear", "INBOX", uid=3, uid_validity=9, flags=("\\Deleted",),
        keywords=("$Label1",), flags_old=("\\Deleted", "\\Recent"),
        keywords_old=("$Label1", "Important"),
    )
    entry = (await seen(make_driver, event))[b"FlagsClear"]
    table = entry[b"event"]
    assert lua_list(table[b"flags"]) == ["\\Deleted"]
    assert lua_list(table[b"keywords_clear"]) == ["$Label1"]
    assert lua_list(table[b"flags_old"]) == ["\\Deleted", "\\Recent"]
    assert lua_list(table[b"keywords_old"]) == ["$Label1", "Important"]
    assert set(fields(entry)) == {
        "name", "user", "mailbox", "uid", "uid_validity", "flags", "keywords",
        "keywords_clear", "flags_old", "keywords_old",
    }


@pytest.mark.parametrize("name", ["MessageRead", "MessageTrash", "MessageExpunge"])
async def test_simple_message_events_carry_mailbox_uid_and_uidvalidity(
    make_driver: DriverFactory, name: str
) -> None:
    event = PushEvent(name, "Archive/2024", uid=7, uid_validity=9)  # type: ignore[arg-type]
    entry = (await seen(make_driver, event))[name.encode()]
    assert set(fields(entry)) == {"name", "user", "mailbox", "uid", "uid_validity"}
    assert entry[b"event"][b"mailbox"] == b"Archive/2024"


async def test_mailbox_rename_names_the_new_mailbox_and_the_old_one(
    make_driver: DriverFactory,
) -> None:
    event = PushEvent("MailboxRename", "Work Renamed", mailbox_old="Work")
    entry = (await seen(make_driver, event))[b"MailboxRename"]
    assert entry[b"event"][b"mailbox"] == b"Work Renamed"
    assert entry[b"event"][b"mailbox_old"] == b"Work"
    assert set(fields(entry)) == {"name", "user", "mailbox", "mailbox_old"}


@pytest.mark.parametrize("name", [
    "MailboxCreate", "MailboxDelete", "MailboxSubscribe", "MailboxUnsubscribe"
])
async def test_other_mailbox_events_carry_only_the_mailbox(
    make_driver: DriverFactory, name: str
) -> None:
    entry = (await seen(make_driver, PushEvent(name, "Entwürfe")))[name.encode()]  # type: ignore[arg-type]
    assert set(fields(entry)) == {"name", "user", "mailbox"}
    assert entry[b"event"][b"mailbox"] == "Entwürfe".encode()


async def test_message_append_has_the_same_fields_as_message_new(
    make_driver: DriverFactory,
) -> None:
    append = PushEvent("MessageAppend", "Sent", uid=5, uid_validity=9, flags=("\\Seen",),
                       keywords=("$Label2",), message=MESSAGE)
    table = await seen(make_driver, append, message_new())
    assert fields(table[b"MessageAppend"]) == fields(table[b"MessageNew"])
    assert lua_list(table[b"MessageAppend"][b"event"][b"flags"]) == ["\\Seen"]


LEGACY_FLAGS = """
    RESULT = {}
    function dovecot_lua_notify_begin_txn(user) return {} end
    function dovecot_lua_notify_end_txn(ctx) end
    function dovecot_lua_notify_event_flags_set(ctx, event)
      RESULT.has_seen = dovecot.has_flag(event.flags, 8)
      RESULT.set = dovecot.set_flag(event.flags, 1)
      RESULT.cleared = dovecot.clear_flag(event.flags, 8)
      local lib = bit or bit32
      if lib then RESULT.band = lib.band(event.flags, 8) end
    end
"""


@pytest.mark.parametrize("version", ["5.1", "5.2", "5.3", "5.5", "luajit", "luajit2.0"])
async def test_flag_helpers_accept_flag_names_in_every_lua_version(
    make_driver: DriverFactory, version: str
) -> None:
    event = PushEvent("FlagsSet", "INBOX", uid=3, uid_validity=9, flags=("\\Flagged", "\\Seen"))
    driver = await make_driver(LEGACY_FLAGS, options={"lua_version": version})
    await run(driver, transaction("alice", event))
    result = (await driver.state_for("alice")).runtime.globals[b"RESULT"]
    assert result[b"has_seen"] is True
    assert (result[b"set"], result[b"cleared"]) == (11, 2)
    if version in ("5.2", "luajit", "luajit2.0"):
        assert result[b"band"] == 8


ARITHMETIC_FLAGS = """
    RESULT = {}
    function dovecot_lua_notify_begin_txn(user) return {} end
    function dovecot_lua_notify_end_txn(ctx) end
    function dovecot_lua_notify_event_flags_set(ctx, event)
      local flags = event.flags
      RESULT.seen = flags % 16 >= 8
      RESULT.draft = flags % 32 >= 16
      RESULT.sum = flags + 1
      RESULT.half = math.floor(flags / 2)
      RESULT.shown = "flags=" .. flags
      RESULT.shown_after = flags .. " set"
      RESULT.text = tostring(flags)
      RESULT.number = tonumber(flags)
      RESULT.formatted = string.format("%d/%s", flags, flags)
      RESULT.method = ("%d"):format(flags)
      RESULT.equal_zero = flags == 0
      RESULT.names = table.concat(flags, " ")
      RESULT.plain = tonumber("12")
    end
"""


@pytest.mark.parametrize("version", ["5.1", "5.2", "5.3", "5.4", "5.5", "luajit", "luajit2.0"])
async def test_flags_work_as_a_number_in_arithmetic_concatenation_and_formatting(
    make_driver: DriverFactory, version: str
) -> None:
    """What scripts written against the documented bitmask do, in every Lua version."""
    event = PushEvent("FlagsSet", "INBOX", uid=3, uid_validity=9, flags=("\\Flagged", "\\Seen"))
    driver = await make_driver(ARITHMETIC_FLAGS, options={"lua_version": version})
    await run(driver, transaction("alice", event))
    result = (await driver.state_for("alice")).runtime.globals[b"RESULT"]
    assert (result[b"seen"], result[b"draft"]) == (True, False)
    assert (result[b"sum"], result[b"half"]) == (11, 5)
    assert (result[b"shown"], result[b"shown_after"]) == (b"flags=10", b"10 set")
    assert (result[b"text"], result[b"number"]) == (b"10", 10)
    assert (result[b"formatted"], result[b"method"]) == (b"10/10", b"10")
    assert result[b"equal_zero"] is False  # a table is never == a number: documented
    assert result[b"names"] == b"\\Flagged \\Seen"
    assert result[b"plain"] == 12
