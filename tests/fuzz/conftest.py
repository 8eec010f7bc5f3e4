"""One mailpush per fuzz module (LMTP, IMAP, two Lua push drivers, a real HTTP endpoint),
raw wire clients, and the checks every fuzz test ends with.

The server runs in a thread with its own event loop, so a module-scoped server
works with the suite's function-scoped pytest-asyncio loops and the tests can
use plain blocking sockets (Hypothesis drives them synchronously). Its log is
recorded from the loggers mailpush, aiosmtpd (`mail.log`) and asyncio use:
after every test there must be no traceback and no ERROR record, every push
transaction must have run, and a fresh LMTP delivery and IMAP LOGIN + NOOP
must still work.

A Lua script's error is logged as an ERROR too, so it fails the test that
caused it: the scripts here read every field and must never fail on one.

CI runs a fixed, reproducible set of examples (`derandomize=True`; about 25 s
for the three modules on a 2-core machine). `MAILPUSH_FUZZ_EXAMPLES=10`
multiplies every test's examples by ten and draws new random inputs on each
run, for fuzzing by hand (a failure prints a `@reproduce_failure` blob).
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import os
import re
import smtplib
import socket
import textwrap
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from mailpush.config import load_settings
from mailpush.server import MailpushServer
from tests.conftest import free_port, imap_listener, write_config
from tests.support.http_receiver import HttpReceiver

T = TypeVar("T")

#: The events example script of Dovecot's Lua push documentation
#: (docs/dovecot-reference.md#http-requests-of-the-example-scripts): it opens every
#: event's mailbox through the storage API, so hostile mailbox names reach that too.
EVENTS_SCRIPT = Path(__file__).parents[1] / "drivers" / "lua" / "fixtures" / "events_http.lua"

#: Posts every field of every event it is given, as a form, to `push_lua_url` + "/fuzz".
FUZZ_SCRIPT = """\
local url = require "socket.url"
local client = nil

local FIELDS = {
  "mailbox", "mailbox_old", "uid", "subject", "from", "from_address", "from_display_name",
  "to", "to_address", "to_display_name", "snippet", "message_id", "date", "tz",
  "keywords", "keywords_set", "keywords_clear", "keywords_old", "flags", "flags_old",
}

function script_init()
  client = dovecot.http.client({timeout = 5000})
end

local function text(value)
  if type(value) == "table" then
    local parts = {}
    for _, item in ipairs(value) do parts[#parts + 1] = tostring(item) end
    return table.concat(parts, " ")
  end
  return tostring(value)
end

local function collect(ctx, event)
  local form = {"event=" .. url.escape(event.name), "user=" .. url.escape(ctx.user)}
  for _, field in ipairs(FIELDS) do
    if event[field] ~= nil then
      form[#form + 1] = field .. "=" .. url.escape(text(event[field]))
    end
  end
  ctx.forms[#ctx.forms + 1] = table.concat(form, "&")
end

function dovecot_lua_notify_begin_txn(user)
  return {ep = user:plugin_getenv("push_lua_url") .. "/fuzz", user = user.username, forms = {}}
end

for _, name in ipairs({"message_new", "message_append", "message_read", "message_trash",
    "message_expunge", "flags_set", "flags_clear", "mailbox_create", "mailbox_delete",
    "mailbox_rename", "mailbox_subscribe", "mailbox_unsubscribe"}) do
  _G["dovecot_lua_notify_event_" .. name] = collect
end

function dovecot_lua_notify_end_txn(ctx, success)
  for _, form in ipairs(ctx.forms) do
    local request = client:request({url = ctx.ep, method = "POST"})
    request:set_payload(form)
    local status = request:submit():status()
    if status ~= 200 then
      dovecot.i_error("fuzz: endpoint answered " .. tostring(status))
    end
  end
end
"""

#: Logger names whose records are the server's log (a test may have reconfigured the root).
_SERVER_LOGGERS = ("", "mailpush", "mail.log", "asyncio")


def fuzz_settings(examples: int) -> settings:
    """`examples` reproducible examples in CI; more, and random, with MAILPUSH_FUZZ_EXAMPLES."""
    scale = int(os.environ.get("MAILPUSH_FUZZ_EXAMPLES", "0") or 0)
    by_hand = scale > 0
    return settings(
        max_examples=examples * scale if by_hand else examples,
        deadline=None,
        derandomize=not by_hand,
        database=None,
        print_blob=by_hand,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
    )


class LogRecorder(logging.Handler):
    """Every WARNING-or-worse record the server logs, in order."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._seen: set[int] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            # The recorder hangs on several loggers of one chain: keep each record once.
            if id(record) not in self._seen:
                self._seen.add(id(record))
                self.records.append(record)

    def mark(self) -> int:
        with self._guard:
            return len(self.records)

    def problems(self, since: int = 0) -> list[str]:
        """Tracebacks and ERRORs logged since `mark()` returned `since`."""
        with self._guard:
            records = self.records[since:]
        found = []
        for record in records:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                text += "\n" + record.exc_text
            if record.exc_info or record.exc_text or record.levelno >= logging.ERROR or (
                "Traceback" in text
            ):
                found.append(f"{record.name} {record.levelname}: {text}")
        return found


@dataclass
class Post:
    """One request the endpoint received, its form fields as bytes."""

    path: str
    fields: dict[str, bytes]


class FuzzServer:
    """mailpush and its push endpoint on their own event loop, in a thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="fuzz-server", daemon=True
        )
        self.endpoint = HttpReceiver()
        self.recorder = LogRecorder()
        self.server: MailpushServer | None = None
        #: How many log records a `logs_nothing_bad` block has already checked.
        self.checked = 0

    def start(self) -> None:
        for name in _SERVER_LOGGERS:
            logging.getLogger(name).addHandler(self.recorder)
        self.thread.start()
        self.call(self._start())

    def stop(self) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            for name in _SERVER_LOGGERS:
                logging.getLogger(name).removeHandler(self.recorder)

    def responsive(self, timeout: float = 5.0) -> bool:
        """Whether the server's event loop still runs (an earlier input may have stuck it)."""
        try:
            self.call(asyncio.sleep(0), timeout)
        except TimeoutError:
            return False
        return True

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run `coro` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        await self.endpoint.start()
        script = self.directory / "fuzz.lua"
        script.write_text(FUZZ_SCRIPT)
        extra = imap_listener(free_port()) + textwrap.dedent(
            f"""\
            protocols = imap lmtp
            mail_fsync = never
            lmtp_save_to_detail_mailbox = yes
            mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
            plugin {{
              push_notification_driver = lua:file={script}
              push_notification_driver2 = lua:file={EVENTS_SCRIPT}
              push_lua_url = {self.endpoint.url}
            }}
            """
        )
        config = write_config(self.directory, extra)
        self.server = MailpushServer(load_settings(config).settings)
        await self.server.start()

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.endpoint.stop()

    # --- what the tests look at ----------------------------------------------------------

    def port(self, service: str) -> int:
        assert self.server is not None
        return next(item.port for item in self.server.listeners if item.service == service)

    @property
    def lmtp_port(self) -> int:
        return self.port("lmtp")

    @property
    def imap_port(self) -> int:
        return self.port("imap")

    def posts(self, path: str = "/hook/fuzz") -> list[Post]:
        return [
            Post(r.path, form_fields(r.body)) for r in list(self.endpoint.received)
            if r.path == path
        ]

    def wait_for_post(
        self,
        wanted: Callable[[Post], bool],
        timeout: float = 10.0,
        path: str = "/hook/fuzz",
        after: int = 0,
    ) -> Post:
        """The first post to `path` (after the first `after`) for which `wanted` holds."""
        deadline = time.monotonic() + timeout
        while True:
            for post in self.posts(path)[after:]:
                if wanted(post):
                    return post
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching push within {timeout}s")
            time.sleep(0.02)

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until every push transaction has run; none may end as a dead letter."""
        deadline = time.monotonic() + timeout
        while True:
            undone, dead = self.call(self._queue())
            assert dead == 0, "a push transaction became a dead letter"
            if undone == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{undone} push transactions still undone after {timeout}s")
            time.sleep(0.05)

    async def _queue(self) -> tuple[int, int]:
        assert self.server is not None and self.server.store is not None
        stats = await self.server.store.outbox.stats(time.time())
        undone = sum(s.pending + s.inflight + s.retrying for s in stats)
        return undone, sum(s.dead for s in stats)

    def assert_alive(self) -> None:
        """A normal LMTP delivery and an IMAP LOGIN + NOOP, each on a new connection."""
        assert self.thread.is_alive(), "the server's event loop thread died"
        deliver(self, ["carol"], b"Subject: still alive\r\n\r\nyes\r\n")
        with imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10) as client:
            assert client.login("carol", "secret")[0] == "OK"
            assert client.noop()[0] == "OK"
            client.logout()

    @contextmanager
    def logs_nothing_bad(self) -> Iterator[None]:
        """Fail the block (so Hypothesis shrinks the input) if the server logs a traceback."""
        since = self.recorder.mark()
        try:
            yield
        finally:
            # Also when the block failed: the log usually says why (shown chained to it).
            self.checked = self.recorder.mark()
            problems = self.recorder.problems(since)
            if problems:
                raise AssertionError("the server logged:\n" + "\n".join(problems))

    def assert_healthy(self, since: int) -> None:
        """No traceback or ERROR logged since `since`; the server still serves.

        Records a `logs_nothing_bad` block already checked (and failed its test on)
        are not reported twice.
        """
        problems = self.recorder.problems(max(since, self.checked))
        assert not problems, "the server logged:\n" + "\n".join(problems)
        self.assert_alive()


def form_fields(body: bytes) -> dict[str, bytes]:
    """`a=x%20y&b=` → {"a": b"x y", "b": b""} (values stay bytes: they may not be UTF-8)."""
    fields: dict[str, bytes] = {}
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        fields[name.decode("ascii")] = urllib.parse.unquote_to_bytes(value)
    return fields


def deliver(server: FuzzServer, recipients: list[str], raw: bytes) -> list[int]:
    """One LMTP transaction that must succeed; the UIDs the message got, per recipient."""
    with smtplib.LMTP("127.0.0.1", server.lmtp_port, timeout=10) as client:
        client.ehlo("fuzz")
        client.mail("sender@example.net")
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            assert code == 250, reply
        code, reply = client.data(raw)
        replies = [(code, reply)] + [client.getreply() for _ in recipients[1:]]
    uids = []
    for code, reply in replies:
        assert code == 250, reply
        match = re.search(rb"\(uid (\d+)\)", reply)
        assert match is not None, reply
        uids.append(int(match.group(1)))
    return uids


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    server = FuzzServer(tmp_path_factory.mktemp("fuzz"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def server_stays_healthy(fuzz_server: FuzzServer) -> Iterator[None]:
    """After each test: pushes all ran, nothing logged a traceback, the server answers."""
    if not fuzz_server.responsive():
        pytest.fail("the server's event loop is stuck since an earlier test (see its failure)")
    since = fuzz_server.recorder.mark()
    yield
    fuzz_server.settle()
    fuzz_server.assert_healthy(since)


# --- wire clients ---------------------------------------------------------------------------


class WireClosedError(Exception):
    """The server closed the connection."""


class Wire:
    """A blocking loopback socket with a line reader, for bytes no client library would send."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        """One line without its CRLF."""
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def closed(self) -> bool:
        """True if the server closed the connection (any data still unread is dropped)."""
        try:
            while True:
                self._fill()
        except WireClosedError:
            return True
        except TimeoutError:
            return False

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise WireClosedError(f"connection closed; unread: {self.buffer[:200]!r}")
        self.buffer += chunk


REPLY_LINE = re.compile(rb"([2-5]\d\d)([ -])(.*)", re.DOTALL)
ENHANCED = re.compile(rb"\d{3}[ -]([245])\.\d{1,3}\.\d{1,3}(?: |$)")


class Lmtp(Wire):
    """An LMTP connection that checks the shape of every reply it reads."""

    def reply(self) -> tuple[int, bytes]:
        """(code, text of the last line); the connection must not close instead."""
        lines: list[bytes] = []
        while True:
            line = self.line()
            match = REPLY_LINE.fullmatch(line)
            assert match is not None, f"malformed reply line {line!r} after {lines!r}"
            lines.append(line)
            if match.group(2) == b" ":
                break
        assert len({line[:3] for line in lines}) == 1, f"codes differ within one reply {lines!r}"
        code = int(lines[0][:3])
        if code >= 400:
            enhanced = ENHANCED.match(lines[-1])
            assert enhanced is not None, f"no enhanced status code (RFC 2034): {lines[-1]!r}"
            assert enhanced.group(1) == lines[-1][:1], f"status classes differ: {lines[-1]!r}"
        return code, lines[-1]

    def greet(self) -> None:
        assert self.reply()[0] == 220
        self.send(b"LHLO fuzz\r\n")
        assert self.reply()[0] == 250


def data_block(raw: bytes) -> bytes:
    """`raw` as DATA content: CRLF-terminated, dot-stuffed, ended by `.`."""
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    stuffed = b"\r\n".join(
        b"." + line if line.startswith(b".") else line for line in raw.split(b"\r\n")
    )
    return stuffed + b".\r\n"


def assert_still_in_sync(lmtp: Lmtp) -> None:
    """RSET and NOOP get their own replies: no reply was missing or extra before them."""
    lmtp.send(b"RSET\r\nNOOP\r\n")
    for _ in range(2):
        code, text = lmtp.reply()
        assert code == 250 and b"Saved" not in text, text


def transaction(
    lmtp: Lmtp, recipients: list[str], raw: bytes, smtputf8: bool = False
) -> list[tuple[int, bytes]]:
    """MAIL, RCPTs and DATA pipelined; the DATA replies (checked to be one per recipient)."""
    mail = b"MAIL FROM:<fuzz@example.net>" + (b" SMTPUTF8" if smtputf8 else b"")
    commands = mail + b"\r\n" + b"".join(
        b"RCPT TO:<%s>\r\n" % r.encode() for r in recipients
    )
    lmtp.send(commands + b"DATA\r\n")
    for _ in range(1 + len(recipients)):
        assert lmtp.reply()[0] == 250
    assert lmtp.reply()[0] == 354
    lmtp.send(data_block(raw))
    return [lmtp.reply() for _ in recipients]


RESPONSE = re.compile(rb"(\* |\+( |\Z)|[\x21-\x7e]+ (OK|NO|BAD)( |\Z))")
SERVER_LITERAL = re.compile(rb"\{(\d+)\}\Z")
class Imap(Wire):
    """An IMAP connection that reads whole responses (literals included) and checks them."""

    def response(self) -> bytes:
        text = self.line()
        while (literal := SERVER_LITERAL.search(text)) is not None:
            text += b"\r\n" + self.exactly(int(literal.group(1))) + self.line()
        assert RESPONSE.match(text), f"malformed response {text[:300]!r}"
        return text

    def run(self, commands: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
        """Send (tag, command line) pairs pipelined; their tagged replies by tag.

        Each tag must be answered exactly once and in order, unless the server says
        BYE and closes the connection, which leaves the rest unanswered.
        """
        self.send(b"".join(tag + b" " + line + b"\r\n" for tag, line in commands))
        return self.replies([tag for tag, _ in commands])

    def replies(self, tags: list[bytes]) -> dict[bytes, bytes]:
        answered: dict[bytes, bytes] = {}
        said_bye = False
        while len(answered) < len(tags):
            try:
                text = self.response()
            except WireClosedError:
                assert said_bye, f"closed without BYE; answered {list(answered)} of {tags}"
                return answered
            said_bye |= text.startswith(b"* BYE")
            assert not text.startswith(b"+"), f"unexpected continuation {text!r}"
            if text.startswith(b"* "):
                continue
            tag = text.partition(b" ")[0]
            assert tag in tags, f"reply for a tag never sent: {text[:200]!r}"
            assert tag not in answered, f"second reply for {tag!r}: {text[:200]!r}"
            expected = tags[len(answered)]
            assert tag == expected, f"reply for {tag!r} before {expected!r}"
            answered[tag] = text
        return answered

    def greet(self) -> None:
        assert self.response().startswith(b"* OK")

    def login(self, user: str) -> None:
        self.greet()
        reply = self.run([(b"L", b"LOGIN " + user.encode() + b" secret")])
        assert reply[b"L"].startswith(b"L OK"), reply


def literal(data: bytes) -> bytes:
    """A non-synchronising literal (LITERAL+), so pipelining needs no round trip."""
    return b"{%d+}\r\n%s" % (len(data), data)
