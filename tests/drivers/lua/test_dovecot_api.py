"""The `dovecot` API a script sees, against a real store and HTTP endpoint.

What Dovecot's API does is summarised in docs/dovecot-reference.md#the-dovecot-api.
"""

from __future__ import annotations

import gc
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mailpush.drivers.lua.api.http_requests import HttpClientSettings
from mailpush.store import NewMessage, SqliteStore
from tests.support.http_receiver import HttpReceiver

from .conftest import DriverFactory
from .protocol_helpers import lua_list, message_new, run, transaction


async def run_handler(
    make_driver: DriverFactory,
    body: str,
    user: str = "alice",
    **driver_args: Any,
) -> Any:
    """Run `body` inside dovecot_lua_notify_event_message_new; return its RESULT table."""
    script = (
        "RESULT = {}\n"
        "function dovecot_lua_notify_begin_txn(user) return {user = user} end\n"
        "function dovecot_lua_notify_end_txn(ctx) end\n"
        "function dovecot_lua_notify_event_message_new(ctx, event)\n"
        f"{textwrap.indent(textwrap.dedent(body), '  ')}\n"
        "end\n"
    )
    driver = await make_driver(script, **driver_args)
    await run(driver, transaction(user, message_new(), service="imap"))
    return (await driver.state_for(user)).runtime.globals[b"RESULT"]


# --- logging and events -------------------------------------------------------------------


async def test_i_functions_log_at_their_level_with_the_user(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mailpush.drivers.lua")
    await run_handler(make_driver, """
        dovecot.i_debug("d") dovecot.i_info("i") dovecot.i_warning("w") dovecot.i_error("e")
    """)
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.getMessage()[-1] in "diwe"]
    assert logged == [("DEBUG", "lua: alice: d"), ("INFO", "lua: alice: i"),
                      ("WARNING", "lua: alice: w"), ("ERROR", "lua: alice: e")]


async def test_event_objects_log_with_prefixes_names_and_fields(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    await run_handler(make_driver, """
        local parent = dovecot.event():append_log_prefix("push: ")
        local e = dovecot.event(parent)
        e:set_name("lua_notify_mail_finished")
        e:add_int("result_code", 200):add_str("mailbox", event.mailbox)
        e:append_log_prefix("mail: ")
        e:log_info("sent")
        e:log_debug("not shown")
        dovecot.event():replace_log_prefix("own: "):log_warning("replaced")
        e:passthrough_event():log_error("passthrough")
    """)
    records = [r for r in caplog.records if "lua: alice:" in r.getMessage()]
    assert [r.getMessage() for r in records] == [
        "lua: alice: push: mail: sent",
        "lua: alice: own: replaced",
        "lua: alice: push: mail: passthrough",
    ]
    sent = records[0]
    assert sent.lua_event == "lua_notify_mail_finished"  # type: ignore[attr-defined]
    assert sent.lua_fields == {"result_code": 200, "mailbox": "INBOX"}  # type: ignore[attr-defined]


async def test_set_flag_clear_flag_and_has_flag_work_on_numbers(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        RESULT.set = dovecot.set_flag(1, 8)
        RESULT.cleared = dovecot.clear_flag(15, 4)
        RESULT.has = dovecot.has_flag(13, 5)
        RESULT.has_not = dovecot.has_flag(9, 6)
    """)
    assert (result[b"set"], result[b"cleared"], result[b"has"], result[b"has_not"]) == (
        9, 11, True, False
    )


async def test_restrict_global_variables_refuses_undeclared_globals(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        dovecot.restrict_global_variables(true)
        local ok, read = pcall(function() return undeclared_thing end)
        local ok2, write = pcall(function() undeclared_value = 1 end)
        function now_allowed() end
        dovecot.restrict_global_variables(false)
        later_value = 2
        RESULT.read = read
        RESULT.write = write
        RESULT.later = later_value
    """)
    assert result[b"read"].endswith(
        b"attempt to write to read undeclared global variable undeclared_thing")
    assert result[b"write"].endswith(
        b"attempt to write to undeclared global variable undeclared_value")
    assert result[b"later"] == 2


async def test_a_script_restricting_globals_at_top_level_still_runs_and_closes(
    make_driver: DriverFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpush.drivers.lua")
    driver = await make_driver("""
        dovecot.restrict_global_variables(true)
        function dovecot_lua_notify_begin_txn(user) return {} end
        function dovecot_lua_notify_event_message_new(ctx, e) dovecot.i_info("new " .. e.uid) end
        function dovecot_lua_notify_end_txn(ctx) end
    """)
    assert await run(driver, transaction("alice", message_new()))
    await driver.close()
    assert "lua: alice: new 1" in caplog.messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_storage_constants_have_dovecots_values(make_driver: DriverFactory) -> None:
    result = await run_handler(make_driver, """
        local s = dovecot.storage
        RESULT.values = {s.STATUS_MESSAGES, s.STATUS_RECENT, s.STATUS_UNSEEN,
          s.STATUS_HIGHESTMODSEQ, s.MAILBOX_FLAG_READONLY, s.MAILBOX_SYNC_FLAG_FAST}
        RESULT.prefix = s.MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER
    """)
    assert lua_list(result[b"values"]) == [1, 2, 16, 128, 1, 4]
    assert result[b"prefix"] == b"vendor/vendor.dovecot/pvt/server/"


async def test_os_exit_is_refused_instead_of_stopping_the_server(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, "RESULT.ok, RESULT.error = pcall(os.exit, 1)")
    assert result[b"ok"] is False
    assert b"os.exit() would stop the whole mail server" in result[b"error"]


async def test_commands_that_would_stop_the_server_while_they_run_are_refused(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        RESULT.execute = select(2, pcall(os.execute, "sleep 5"))
        RESULT.popen = select(2, pcall(io.popen, "sleep 5"))
        RESULT.registry = select(2, pcall(debug.getregistry))
    """)
    assert b"os.execute() would stop the whole mail server while the command runs" in (
        result[b"execute"])
    assert b"io.popen() would stop the whole mail server" in result[b"popen"]
    assert b"debug.getregistry() is not available" in result[b"registry"]


@pytest.mark.parametrize("version", ["luajit", "luajit2.0"])
async def test_luajit_cannot_switch_its_compiler_back_on_under_the_limits(
    make_driver: DriverFactory, version: str
) -> None:
    result = await run_handler(make_driver, """
        RESULT.ok, RESULT.error = pcall(jit.on)
        jit.opt.start(3)
        RESULT.on = jit.status()
        local x = 0
        while true do x = x + 1 end
    """, options={"lua_version": version, "lua_call_timeout": "300ms"})
    assert result[b"ok"] is False
    assert b"jit.on() is not available: compiled code would escape mailpush's limits" in (
        result[b"error"])
    assert result[b"on"] is False


# --- socket.url and package.path -------------------------------------------------------


async def test_socket_url_is_built_in(make_driver: DriverFactory) -> None:
    result = await run_handler(make_driver, """
        local url = require "socket.url"
        RESULT.escaped = url.escape("Grüße & more.")
        RESULT.same = (require "socket.url") == url
    """)
    assert result[b"escaped"] == b"Gr%c3%bc%c3%9fe%20%26%20more%2e"
    assert result[b"same"] is True


async def test_lua_path_lets_scripts_require_the_admins_modules(
    make_driver: DriverFactory, tmp_path: Path
) -> None:
    modules = tmp_path / "lua"
    (modules / "acme").mkdir(parents=True)
    (modules / "acme" / "push.lua").write_text("return { greeting = 'hello from acme' }\n")
    result = await run_handler(
        make_driver, 'RESULT.greeting = require("acme.push").greeting',
        options={"lua_path": str(modules)},
    )
    assert result[b"greeting"] == b"hello from acme"


# --- mail_user ---------------------------------------------------------------------------


async def test_mail_user_has_dovecots_fields(make_driver: DriverFactory) -> None:
    result = await run_handler(make_driver, """
        local user = ctx.user
        RESULT.username = user.username
        RESULT.text = tostring(user)
        RESULT.home = user.home
        RESULT.uid = user.uid
        RESULT.service = user.service
        RESULT.session = user.session_id
        RESULT.anonymous = user.anonymous
        RESULT.same = user == event.user
    """, userdb={"alice": {"home": "/var/mail/alice", "uid": "1001"}})
    assert result[b"username"] == result[b"text"] == b"alice"
    assert result[b"home"] == b"/var/mail/alice"
    assert result[b"uid"] == 1001
    assert result[b"service"] == b"imap"
    assert result[b"session"].startswith(b"txn-")
    assert (result[b"anonymous"], result[b"same"]) == (False, True)


async def test_plugin_getenv_reads_plugin_settings_overridden_by_userdb_fields(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(
        make_driver,
        """
        RESULT.url = ctx.user:plugin_getenv("push_lua_url")
        RESULT.own = ctx.user:plugin_getenv("push_lua_token")
        RESULT.missing = ctx.user:plugin_getenv("no_such_setting")
        """,
        user="bob@example.org",
        plugin={"push_lua_url": "http://push.example/%n", "push_lua_token": "global"},
        userdb={"bob@example.org": {"push_lua_token": "bobs"}},
    )
    assert result[b"url"] == b"http://push.example/bob"
    assert result[b"own"] == b"bobs"
    assert result[b"missing"] is None


async def test_plugin_getenv_falls_back_to_the_2_4_lua_settings(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(
        make_driver,
        """
        RESULT.url = ctx.user:plugin_getenv("push_lua_url")
        RESULT.token = ctx.user:plugin_getenv("push_lua_token")
        """,
        user="bob@example.org",
        plugin={"push_lua_token": "from-plugin"},
        subsections={"lua_settings": {"push_lua_url": "http://push/%n",
                                      "push_lua_token": "from-block"}},
        syntax="2.4",
    )
    assert result[b"url"] == b"http://push/bob"
    assert result[b"token"] == b"from-plugin"


async def test_var_expand_knows_the_users_variables_and_refuses_unknown_ones(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        RESULT.expanded = ctx.user:var_expand("%u|%n|%d|%Lu|%{service}|%%")
        RESULT.ok, RESULT.error = pcall(ctx.user.var_expand, ctx.user, "%{nonsense}")
    """, user="Bob@Example.org")
    assert result[b"expanded"] == b"Bob@Example.org|Bob|Example.org|bob@example.org|imap|%"
    assert result[b"ok"] is False
    assert b"var_expand(%{nonsense}) failed: Unknown variable '%{nonsense}'" in result[b"error"]


# --- mailboxes -------------------------------------------------------------------------


async def test_mailbox_status_reports_the_stores_counts(
    make_driver: DriverFactory, store: SqliteStore
) -> None:
    await store.create_mailbox("alice", "Work")
    await store.append("alice", "Work", [
        NewMessage(b"Subject: a\r\n\r\nx\r\n", flags=0x08),
        NewMessage(b"Subject: b\r\n\r\ny\r\n", keywords=("$Label1",)),
    ])
    result = await run_handler(make_driver, """
        local box = ctx.user:mailbox("Work")
        box:open()
        box:sync()
        local s = dovecot.storage
        RESULT.status = box:status(s.STATUS_MESSAGES, s.STATUS_UNSEEN, s.STATUS_UIDNEXT,
          s.STATUS_KEYWORDS)
        RESULT.partial = box:status(s.STATUS_MESSAGES)
        RESULT.name = box.name .. " " .. box.vname .. " " .. tostring(box)
        box:close()
        box:free()
    """)
    status = result[b"status"]
    assert status[b"mailbox"] == b"Work"
    assert (status[b"messages"], status[b"unseen"], status[b"uidnext"]) == (2, 1, 3)
    assert lua_list(status[b"keywords"]) == ["$Label1"]
    partial = result[b"partial"]
    assert (partial[b"messages"], partial[b"unseen"], partial[b"uidnext"]) == (2, 0, 0)
    assert partial[b"keywords"] is None
    assert result[b"name"] == b"Work Work Work"


async def test_a_missing_mailbox_is_a_lua_error_naming_it(make_driver: DriverFactory) -> None:
    result = await run_handler(make_driver, """
        local box = ctx.user:mailbox("Nope")
        RESULT.sync_ok, RESULT.sync_error = pcall(box.sync, box)
        RESULT.ok, RESULT.error = pcall(box.status, box, dovecot.storage.STATUS_MESSAGES)
    """)
    assert result[b"sync_ok"] is False
    assert b"mailbox_sync(Nope) failed: " in result[b"sync_error"]
    assert result[b"ok"] is False
    assert b"mailbox_get_status(Nope, 1) failed: " in result[b"error"]


# --- METADATA ----------------------------------------------------------------------------


async def test_user_metadata_is_stored_for_imap_to_read(
    make_driver: DriverFactory, store: SqliteStore
) -> None:
    await store.create_mailbox("alice", "INBOX")
    result = await run_handler(make_driver, """
        ctx.user:metadata_set("/private/vendor/acme/last-subject", event.subject)
        ctx.user:metadata_set("/private/vendor/acme/count", 1)
        RESULT.a, RESULT.b, RESULT.c = ctx.user:metadata_get(
          "/private/vendor/acme/count", "/private/missing", "/private/vendor/acme/last-subject")
        RESULT.list = ctx.user:metadata_list("/private/vendor/acme")
        ctx.user:metadata_unset("/private/vendor/acme/count")
        RESULT.after = ctx.user:metadata_get("/private/vendor/acme/count")
        RESULT.ok, RESULT.error = pcall(ctx.user.metadata_get, ctx.user, "vendor/x")
    """)
    assert (result[b"a"], result[b"b"]) == (b"1", None)
    assert result[b"c"] == "Grüße".encode()
    assert dict(result[b"list"].items()) == {
        b"/private/vendor/acme/count": b"1",
        b"/private/vendor/acme/last-subject": "Grüße".encode(),
    }
    assert result[b"after"] is None
    assert result[b"ok"] is False
    assert b"Invalid key prefix, must be /private/ or /shared/" in result[b"error"]
    assert await store.get_metadata("alice", None, "/private/vendor/acme/last-subject") == "Grüße"


async def test_mailbox_metadata_belongs_to_the_mailbox(
    make_driver: DriverFactory, store: SqliteStore
) -> None:
    await store.create_mailbox("alice", "Work")
    await run_handler(make_driver, """
        local box = ctx.user:mailbox("Work")
        box:metadata_set("/shared/comment", "team inbox")
        RESULT.value = box:metadata_get("/shared/comment")
    """)
    assert await store.get_metadata("alice", "Work", "/shared/comment") == "team inbox"
    assert await store.get_metadata("alice", None, "/shared/comment") is None


# --- dovecot.http -------------------------------------------------------------------------


async def test_http_requests_carry_headers_payload_and_basic_auth(
    make_driver: DriverFactory, endpoint: HttpReceiver
) -> None:
    url = endpoint.url.replace("http://", "http://push:s3cret@")
    result = await run_handler(make_driver, f"""
        local client = dovecot.http.client({{user_agent = "acme-push/1", max_attempts = 2}})
        local request = client:request({{url = "{url}", method = "PUT"}})
        request:add_header("X-One", "1")
        request:add_header("X-Two", "2")
        request:remove_header("x-two")
        request:set_payload("payload bytes \\0 included")
        local response = request:submit()
        RESULT.status = response:status()
        RESULT.reason = response:reason()
        RESULT.type = response:header("CONTENT-TYPE")
        RESULT.missing = response:header("X-Nothing")
        RESULT.payload = response:payload()
    """)
    (request,) = endpoint.received
    assert request.method == "PUT"
    assert request.body == b"payload bytes \0 included"
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["x-one"] == "1" and "x-two" not in headers
    assert headers["user-agent"] == "acme-push/1"
    assert headers["authorization"] == "Basic cHVzaDpzM2NyZXQ="
    assert (result[b"status"], result[b"reason"], result[b"payload"]) == (200, b"OK", b"ok")
    assert result[b"type"].startswith(b"text/plain")
    assert result[b"missing"] == b""


async def test_connection_failures_are_status_codes_not_errors(
    make_driver: DriverFactory,
) -> None:
    from tests.conftest import free_port

    port = free_port()
    result = await run_handler(make_driver, f"""
        local client = dovecot.http.client({{}})
        local response = client:request({{url = "http://127.0.0.1:{port}/x"}}):submit()
        RESULT.status = response:status()
        RESULT.reason = response:reason()
    """)
    assert result[b"status"] == 9003
    assert result[b"reason"] == f"connect(127.0.0.1:{port}) failed: Connection refused".encode()


async def test_a_proxy_that_refuses_is_named_in_the_reason(make_driver: DriverFactory) -> None:
    from tests.conftest import free_port

    proxy = free_port()
    result = await run_handler(make_driver, f"""
        local client = dovecot.http.client({{proxy_url = "http://127.0.0.1:{proxy}"}})
        local response = client:request({{url = "http://push.example/x"}}):submit()
        RESULT.status, RESULT.reason = response:status(), response:reason()
    """)
    assert result[b"status"] == 9003
    assert result[b"reason"] == f"connect(127.0.0.1:{proxy}) failed: Connection refused".encode()


async def test_a_request_timeout_is_status_9008(make_driver: DriverFactory) -> None:
    endpoint = HttpReceiver(delay=2.0)
    await endpoint.start()
    try:
        result = await run_handler(make_driver, f"""
            local client = dovecot.http.client({{request_timeout_msecs = 200}})
            local response = client:request({{url = "{endpoint.url}"}}):submit()
            RESULT.status = response:status()
        """)
    finally:
        await endpoint.stop()
    assert result[b"status"] == 9008


async def test_bad_client_options_and_requests_are_lua_errors_with_dovecots_words(
    make_driver: DriverFactory,
) -> None:
    result = await run_handler(make_driver, """
        RESULT.ok1, RESULT.e1 = pcall(dovecot.http.client, {max_attempts = "three"})
        RESULT.ok2, RESULT.e2 = pcall(dovecot.http.client, {debug = 1})
        local client = dovecot.http.client({unknown_option = true, timeout = 10000})
        RESULT.ok3, RESULT.e3 = pcall(client.request, client, {method = "GET"})
        RESULT.ok4, RESULT.e4 = pcall(client.request, client, {url = "ftp://x/"})
    """)
    assert result[b"e1"].endswith(
        b"Invalid HTTP client setting: max_attempts: non-negative number expected")
    assert result[b"e2"].endswith(b"Invalid HTTP client setting: debug: boolean expected")
    assert result[b"e3"].endswith(b"cannot create request: url not specified")
    assert b"Failed to parse url ftp://x/" in result[b"e4"]




async def test_requests_that_cannot_be_sent_are_lua_errors_naming_the_problem(
    make_driver: DriverFactory, endpoint: HttpReceiver
) -> None:
    result = await run_handler(make_driver, f"""
        local client = dovecot.http.client({{}})
        RESULT.ok1, RESULT.e1 = pcall(client.request, client, {{url = "{endpoint.url}",
          method = "GE T"}})
        local request = client:request({{url = "{endpoint.url}", method = "POST"}})
        RESULT.ok2, RESULT.e2 = pcall(request.add_header, request, "X-Subject", "hi\\r\\nX: 1")
        RESULT.ok3, RESULT.e3 = pcall(request.add_header, request, "X Subject", "hi")
        RESULT.ok4, RESULT.e4 = pcall(request.add_header, request, "X-Nul", "a\\0b")
        request:add_header("X-Tab", "a\\tb")
        request:add_header("Content-Length", "many")
        request:set_payload("x")
        RESULT.ok5, RESULT.e5 = pcall(function() local r = request:submit() return r end)
    """)
    assert result[b"ok1"] is False
    assert b'cannot create request: invalid method "GE T"' in result[b"e1"]
    assert result[b"ok2"] is False
    assert b"the value of header 'X-Subject' contains CR, LF, NUL" in result[b"e2"]
    assert b'add_header: invalid header name "X Subject"' in result[b"e3"]
    assert b"the value of header 'X-Nul' contains" in result[b"e4"]
    assert result[b"ok5"] is False
    assert result[b"e5"].endswith(
        b":16: submit() failed: ValueError: Invalid Content-Length header: 'many'")
    assert endpoint.received == []


async def test_http_clients_are_freed_with_their_lua_objects(make_driver: DriverFactory) -> None:
    def clients() -> int:
        gc.collect()
        return sum(isinstance(o, HttpClientSettings) for o in gc.get_objects())

    before = clients()
    await run_handler(make_driver, """
        for i = 1, 2000 do dovecot.http.client({user_agent = "agent " .. i}) end
        collectgarbage()
        collectgarbage()
    """)
    assert clients() - before < 10


@pytest.mark.parametrize("version", ["5.2", "5.3", "5.4", "5.5", "luajit"])
async def test_submit_works_inside_pcall(
    make_driver: DriverFactory, endpoint: HttpReceiver, version: str
) -> None:
    result = await run_handler(make_driver, f"""
        local client = dovecot.http.client({{}})
        RESULT.ok, RESULT.status = pcall(function()
          return client:request({{url = "{endpoint.url}", method = "POST"}}):submit():status()
        end)
    """, options={"lua_version": version})
    assert (result[b"ok"], result[b"status"]) == (True, 200)
    assert len(endpoint.received) == 1


@pytest.mark.parametrize(
    ("version", "where"),
    [
        ("5.4", 'string.gsub("x", "x", function() send() end)'),
        ("5.4", "table.sort({1, 2, 3}, function(a, b) send() return a < b end)"),
        ("5.4", 'tostring(setmetatable({}, {__tostring = function() send() return "" end}))'),
        ("luajit", 'string.gsub("x", "x", function() send() end)'),
        ("5.1", "local _, e = pcall(send) error(e, 0)"),
        ("5.2", "table.sort({1, 2, 3}, function(a, b) send() return a < b end)"),
    ],
)
async def test_submit_where_lua_cannot_pause_the_script_says_why(
    make_driver: DriverFactory,
    endpoint: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
    version: str,
    where: str,
) -> None:
    await run_handler(make_driver, f"""
        local client = dovecot.http.client({{}})
        function send() client:request({{url = "{endpoint.url}"}}):submit() end
        local ok, problem = pcall(function() {where} end)
        if not ok then error(problem, 0) end
    """, options={"lua_version": version})
    failure = next(m for m in caplog.messages if "failed" in m)
    if version == "5.1":
        # Lua 5.1 cannot tell in advance: the script sees Lua's own message, and the log
        # explains it.
        assert "attempt to yield across metamethod/C-call boundary" in failure
    assert "cannot wait for the server here: Lua cannot pause a script inside" in failure
    assert "table.sort comparators" in failure
    assert endpoint.received == []


async def test_submit_works_inside_the_scripts_own_coroutines(
    make_driver: DriverFactory, endpoint: HttpReceiver
) -> None:
    result = await run_handler(make_driver, f"""
        local client = dovecot.http.client({{}})
        local send = coroutine.wrap(function(first)
          local r = client:request({{url = "{endpoint.url}", method = "POST"}})
          r:set_payload(first)
          local again = coroutine.yield(r:submit():status())
          r:set_payload(again)
          return r:submit():status()
        end)
        RESULT.first = send("one")
        RESULT.second = send("two")
    """)
    assert (result[b"first"], result[b"second"]) == (200, 200)
    assert [r.body for r in endpoint.received] == [b"one", b"two"]


async def test_retries_follow_max_attempts(make_driver: DriverFactory) -> None:
    attempts: list[int] = []

    async def flaky(request: web.Request, body: bytes) -> web.StreamResponse:
        attempts.append(1)
        return web.Response(status=503 if len(attempts) < 3 else 200, text="x")

    endpoint = HttpReceiver(flaky)
    await endpoint.start()
    port = endpoint.port
    try:
        result = await run_handler(make_driver, f"""
            local once = dovecot.http.client({{}})
            RESULT.once = once:request({{url = "http://127.0.0.1:{port}/"}}):submit():status()
            local client = dovecot.http.client({{max_attempts = 3,
              connect_backoff_time_msecs = 10}})
            RESULT.retried = client:request({{url = "http://127.0.0.1:{port}/"}}):submit():status()
        """)
    finally:
        await endpoint.stop()
    assert (result[b"once"], result[b"retried"]) == (503, 200)
    assert len(attempts) == 3
