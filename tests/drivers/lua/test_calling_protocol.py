"""The calling protocol of Dovecot's Lua driver, driver against a real store.

Dovecot's protocol is summarised in docs/dovecot-reference.md#the-lua-calling-protocol.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from mailpush.drivers.lua.engine import state_cache
from mailpush.errors import PermanentDriverError, RetryableDriverError
from mailpush.events import PushEvent
from tests.support.http_receiver import HttpReceiver

from .conftest import FIXTURES, DriverFactory
from .protocol_helpers import lua_list, message_new, run, transaction

RECORDER = (FIXTURES / "recorder.lua").read_text()


async def calls(driver: object, user: str = "alice") -> list[str]:
    state = await driver.state_for(user)  # type: ignore[attr-defined]
    return lua_list(state.runtime.globals[b"CALLS"])


async def test_events_run_between_begin_and_end_with_the_context_begin_returned(
    make_driver: DriverFactory,
) -> None:
    driver = await make_driver(RECORDER)
    flags = PushEvent("FlagsSet", "INBOX", uid=1, uid_validity=7, flags=("\\Seen",))
    assert await run(driver, transaction("alice", message_new(), flags, service="imap"))
    assert await calls(driver) == [
        "script_init ",
        "begin alice imap",
        "message_new 2 MessageNew INBOX 1",
        "flags_set 2 FlagsSet INBOX 1",
        "end 2 true",
    ]


async def test_a_script_without_event_handlers_is_never_called(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailpush.drivers.lua")
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) CALLS[#CALLS + 1] = "begin" end
        function dovecot_lua_notify_end_txn(ctx) CALLS[#CALLS + 1] = "end" end
    """)
    assert not await run(driver, transaction("alice", message_new()))
    assert await calls(driver) == []
    assert "lua: alice: No event handlers found in script" in caplog.messages


async def test_begin_and_end_run_even_when_no_event_of_the_transaction_has_a_handler(
    make_driver: DriverFactory,
) -> None:
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) CALLS[#CALLS + 1] = "begin" end
        function dovecot_lua_notify_end_txn(ctx) CALLS[#CALLS + 1] = "end" end
        function dovecot_lua_notify_event_message_new(ctx, e) CALLS[#CALLS + 1] = "new" end
    """)
    assert await run(driver, transaction("alice", PushEvent("MailboxCreate", "Work")))
    assert await calls(driver) == ["begin", "end"]


async def test_handlers_are_looked_up_again_for_every_transaction(
    make_driver: DriverFactory,
) -> None:
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_end_txn(ctx)
          function dovecot_lua_notify_event_mailbox_create(ctx, e)
            CALLS[#CALLS + 1] = "create " .. e.mailbox
          end
        end
        function dovecot_lua_notify_event_message_new(ctx, e) end
    """)
    await run(driver, transaction("alice", PushEvent("MailboxCreate", "First")))
    await run(driver, transaction("alice", PushEvent("MailboxCreate", "Second")))
    assert await calls(driver) == ["create Second"]


async def test_a_missing_begin_txn_is_logged_for_every_transaction(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("function dovecot_lua_notify_event_message_new(ctx, e) end")
    assert not await run(driver, transaction("alice", message_new()))
    assert not await run(driver, transaction("alice", message_new(2)))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["lua: alice: Missing function dovecot_lua_notify_begin_txn"] * 2


async def test_a_missing_end_txn_is_logged_and_the_events_still_run(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) CALLS[#CALLS + 1] = "new" end
    """)
    assert await run(driver, transaction("alice", message_new()))
    assert await calls(driver) == ["new"]
    assert "lua: alice: Missing function dovecot_lua_notify_end_txn" in caplog.messages


@pytest.mark.parametrize("returned", ["", "return 0", "return nil", "return true"])
async def test_script_init_returning_nothing_or_zero_is_success(
    make_driver: DriverFactory, returned: str
) -> None:
    driver = await make_driver(RECORDER.replace(
        'record("script_init " .. table.concat(keys, ","))',
        f'record("script_init") {returned}',
    ))
    assert await run(driver, transaction("alice", message_new()))


async def test_script_init_returning_a_non_zero_number_disables_the_driver_for_the_user(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver(RECORDER.replace(
        'record("script_init " .. table.concat(keys, ","))', "return -1"
    ))
    assert not await run(driver, transaction("alice", message_new()))
    assert not await run(driver, transaction("alice", message_new(2)))
    assert await calls(driver) == []
    disabled = [m for m in caplog.messages if "disabled" in m]
    assert disabled == [
        "lua: alice: the lua driver is disabled for this user: script_init() returned -1"
        " (return nothing or 0 on success)"
    ]


async def test_script_init_failing_disables_the_driver_and_names_the_line(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("""
        function script_init()
          error("no configuration")
        end
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) end
    """)
    assert not await run(driver, transaction("alice", message_new()))
    failure = next(m for m in caplog.messages if "script_init() failed" in m)
    assert f"{driver.script.path}:3: no configuration" in failure
    assert "stack traceback" in failure


async def test_top_level_code_failing_disables_the_driver_and_says_why(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("""
        local re = require "lpeg"
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) end
    """)
    assert not await run(driver, transaction("alice", message_new()))
    failure = next(m for m in caplog.messages if "failed" in m)
    assert failure.startswith(f"lua: alice: the top-level code of {driver.script.path} failed: ")
    assert f"{driver.script.path}:2: module 'lpeg' not found" in failure


async def test_script_init_receives_lua_settings_of_a_2_4_block_expanded_per_user(
    make_driver: DriverFactory,
) -> None:
    driver = await make_driver(
        RECORDER, subsections={"lua_settings": {"url": "http://push/%u", "mode": "fast"}},
        syntax="2.4",
    )
    await run(driver, transaction("bob@example.org", message_new()))
    assert (await calls(driver, "bob@example.org"))[0] == (
        "script_init mode=fast,url=http://push/bob@example.org"
    )


async def test_each_user_has_a_state_that_lives_across_transactions(
    make_driver: DriverFactory,
) -> None:
    driver = await make_driver(RECORDER)
    await run(driver, transaction("alice", message_new(1)))
    await run(driver, transaction("bob", message_new(1)))
    await run(driver, transaction("alice", message_new(2)))
    alice, bob = await calls(driver, "alice"), await calls(driver, "bob")
    assert alice.count("script_init ") == 1
    assert [c for c in alice if c.startswith("message_new")] == [
        "message_new 2 MessageNew INBOX 1", "message_new 5 MessageNew INBOX 2"
    ]
    assert [c for c in bob if c.startswith("message_new")] == ["message_new 2 MessageNew INBOX 1"]


async def test_script_deinit_runs_when_a_state_is_evicted_and_at_close(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    driver = await make_driver(
        RECORDER.replace('record("script_deinit")', 'dovecot.i_info("deinit")'),
        options={"lua_max_states": "1"},
    )
    await run(driver, transaction("alice", message_new()))
    await run(driver, transaction("bob", message_new()))
    await driver.close()
    deinits = [r.getMessage() for r in caplog.records if r.getMessage().endswith("deinit")]
    assert deinits == ["lua: alice: deinit", "lua: bob: deinit"]


async def test_a_state_unused_for_the_idle_timeout_is_closed(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    driver = await make_driver(
        RECORDER.replace('record("script_deinit")', 'dovecot.i_info("deinit")'),
        options={"lua_state_idle_timeout": "200ms"},
    )
    await run(driver, transaction("alice", message_new()))
    await asyncio.sleep(0.3)
    await run(driver, transaction("bob", message_new()))
    await asyncio.sleep(0.05)
    assert "lua: alice: deinit" in caplog.messages
    assert "lua: bob: deinit" not in caplog.messages


async def test_an_error_in_begin_txn_skips_the_transaction(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) error("refused") end
        function dovecot_lua_notify_event_message_new(ctx, e) CALLS[#CALLS + 1] = "new" end
        function dovecot_lua_notify_end_txn(ctx) CALLS[#CALLS + 1] = "end" end
    """)
    assert not await run(driver, transaction("alice", message_new()))
    assert await calls(driver) == []
    assert any("dovecot_lua_notify_begin_txn(alice) failed" in m for m in caplog.messages)


async def test_an_error_in_one_handler_leaves_the_other_events_and_end_txn_running(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e)
          if e.uid == 1 then
            local missing = nil
            return missing.field
          end
          CALLS[#CALLS + 1] = "new " .. e.uid
        end
        function dovecot_lua_notify_end_txn(ctx, success) CALLS[#CALLS + 1] = "end" end
    """)
    assert await run(driver, transaction("alice", message_new(1), message_new(2)))
    assert await calls(driver) == ["new 2", "end"]
    (failure,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.startswith(
        "lua: alice: dovecot_lua_notify_event_message_new(ctx, event[name=MessageNew,"
        "mailbox=INBOX,uid=1]) failed: "
        f"{driver.script.path}:7: attempt to index a nil value (local 'missing')"
    )
    assert "stack traceback:" in failure


async def test_a_script_can_ask_for_a_retry_of_the_whole_transaction(
    make_driver: DriverFactory,
) -> None:
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) end
        function dovecot_lua_notify_end_txn(ctx, success)
          CALLS[#CALLS + 1] = "end"
          mailpush.retry_later("endpoint said 503")
        end
    """)
    with pytest.raises(RetryableDriverError, match="asked for retry later: endpoint said 503"):
        await run(driver, transaction("alice", message_new()))
    assert await calls(driver) == ["end"]


async def test_a_script_can_turn_a_transaction_into_a_dead_letter(
    make_driver: DriverFactory,
) -> None:
    driver = await make_driver("""
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e)
          mailpush.dead_letter("cannot encode " .. e.subject)
        end
        function dovecot_lua_notify_end_txn(ctx, success) end
    """)
    with pytest.raises(PermanentDriverError, match="dead letter: cannot encode Grüße"):
        await run(driver, transaction("alice", message_new()))


DEINIT_DROPS_CLIENT = """
    local client
    function script_init() client = dovecot.http.client({}) end
    function script_deinit() client = nil; dovecot.i_info("script_deinit") end
    function dovecot_lua_notify_begin_txn(user)
      return {ep = user:plugin_getenv("push_lua_url"), user = user.username}
    end
    function dovecot_lua_notify_event_message_new(ctx, event) end
    function dovecot_lua_notify_end_txn(ctx)
      local request = client:request({url = ctx.ep, method = "POST"})
      request:set_payload(ctx.user)
      request:submit()
      dovecot.i_info("posted")
    end
"""


async def test_a_state_is_never_closed_to_make_room_while_its_transaction_runs(
    make_driver: DriverFactory, endpoint: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    driver = await make_driver(
        DEINIT_DROPS_CLIENT, options={"lua_max_states": "1"}, plugin={"push_lua_url": endpoint.url}
    )
    users = ["alice", "bob", "carol"]
    await asyncio.gather(*(run(driver, transaction(user, message_new())) for user in users))
    await asyncio.sleep(0.05)
    assert sorted(r.body.decode() for r in endpoint.received) == users
    messages = caplog.messages
    for user in users[:2]:
        posted = messages.index(f"lua: {user}: posted")
        assert posted < messages.index(f"lua: {user}: script_deinit")
    assert not any("failed" in m for m in messages)


async def test_a_script_that_failed_to_load_is_loaded_again_after_the_back_off(
    make_driver: DriverFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A passing failure of script_init (an endpoint not up yet) must not silence the
    user until the next restart."""
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    monkeypatch.setattr(state_cache, "DISABLED_RETRY", 0.3)
    ready = tmp_path / "ready"
    driver = await make_driver(RECORDER.replace(
        "function script_init(settings)\n",
        f'function script_init(settings)\n  assert(io.open("{ready}"), "not ready yet")\n',
    ))
    assert not await run(driver, transaction("alice", message_new(1)))
    assert not await run(driver, transaction("alice", message_new(2)))
    skips = [m for m in caplog.messages if "skipped" in m]
    assert len(skips) == 1  # one line per 10 s, not one per transaction
    assert skips[0].startswith("lua: alice: transaction txn-")
    assert "the lua driver is disabled for this user (script_init() failed); the script" \
           " is loaded again 0.3s after it failed" in skips[0]
    ready.write_text("")
    assert not await run(driver, transaction("alice", message_new(3)))  # still backing off
    await asyncio.sleep(0.3)
    assert await run(driver, transaction("alice", message_new(4)))
    assert any(m.startswith("lua: alice: loading the script again (it failed 0.")
               for m in caplog.messages)
    assert (await calls(driver))[1:3] == ["begin alice lmtp", "message_new 2 MessageNew INBOX 4"]


OOM_REPORTED_WITH_POSITION = """
    TRANSACTIONS = 0
    function dovecot_lua_notify_begin_txn(user)
      TRANSACTIONS = TRANSACTIONS + 1
      return {}
    end
    function dovecot_lua_notify_end_txn(ctx) end
    function dovecot_lua_notify_event_message_new(ctx, event)
      if event.uid ~= 1 then return end
      local ok, problem = pcall(function()
        local hoard = {}
        for i = 1, 1e9 do hoard[i] = string.rep("x", 4096) .. i end
      end)
      error(problem)  -- "script.lua:12: not enough memory"
    end
"""


async def test_a_state_that_ran_out_of_memory_is_replaced_even_if_the_script_reraised_it(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver(OOM_REPORTED_WITH_POSITION, options={"lua_max_memory": "8M"})
    await run(driver, transaction("alice", message_new(1)))
    assert any("not enough memory" in m for m in caplog.messages)
    await run(driver, transaction("alice", message_new(2)))
    state = await driver.state_for("alice")
    assert state.runtime.globals[b"TRANSACTIONS"] == 1  # a fresh state
    assert state.in_use == 0


async def test_past_lua_txn_timeout_handlers_are_skipped_and_end_txn_still_runs(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await make_driver("""
        CALLS = {}
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, event)
          CALLS[#CALLS + 1] = "new " .. event.uid
          while true do end
        end
        function dovecot_lua_notify_end_txn(ctx, success)
          CALLS[#CALLS + 1] = "end " .. tostring(success)
        end
    """, options={"lua_txn_timeout": "300ms", "lua_max_instructions": "0"})
    txn = transaction("alice", message_new(1), message_new(2), message_new(3))
    assert await run(driver, txn)
    assert await calls(driver) == ["new 1", "end true"]
    # lua_txn_timeout is per event: three events have 0.9 s.
    aborted = next(m for m in caplog.messages if "uid=1]) failed" in m)
    assert "aborted: the transaction took longer than 0.9s (3 events × 0.3s," in aborted
    skipped = next(m for m in caplog.messages if "skipped" in m)
    assert skipped.startswith(
        f"lua: alice: transaction {txn.id} took longer than 0.9s (lua_txn_timeout):"
        " 2 handler call(s) skipped: dovecot_lua_notify_event_message_new(ctx,"
        " event[name=MessageNew,mailbox=INBOX,uid=2]), ")
