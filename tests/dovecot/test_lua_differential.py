"""mailpush runs Dovecot's Lua push scripts with the calls and fields real Dovecot 2.3.19 makes.

One recording script (fixtures/record_events.lua: every call, every argument,
every field, as JSON) runs under a private real Dovecot and under mailpush;
the same LMTP and IMAP operations — every row of
docs/dovecot-reference.md#which-operations-produce-which-events — are
performed on both, at the same time; then both records are cut at the
operation markers, normalised where the two servers legitimately differ, and
compared call by call, field by field — per user in the exact order the calls
came, so interleaved transactions (MOVE: begin, begin, events, end, events,
end; a Sieve delivery into two new folders, when Pigeonhole is installed) and
rolled-back ones (begin_txn, end_txn(false)) are compared too. A
failure lists each differing field once (how often, where first), then a
unified diff of both streams, one JSON line per call, under each operation's
name.

Normalised because they differ from run to run: `seq`, `state` and `txn` ids
(transactions are renumbered per operation), `session_id`, a
`session_create_time` of about now, the directory homes live in (users get the
same uid, gid and home on both: `<homes>/alice`), and `uid_validity` (creation
times: only whether a mailbox keeps its value is compared — each (user,
mailbox) gets V1 for its first value, V2 for a second…).

Tolerated because mailpush differs on purpose
(docs/migrating-from-dovecot.md#lua-push-scripts), each exactly and no more:
numbers are Lua integers (Dovecot: floats); events also carry `user`, and
`keywords_set` / `keywords_clear` equal to `keywords`; `script_init` gets an
empty settings table; one Lua state per user rather than per session (only
each state's init → transactions → deinit shape is compared).
"""

from __future__ import annotations

import asyncio
import difflib
import imaplib
import json
import os
import pwd
import smtplib
import socket
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bench.dovecot_instance import DovecotInstance, dovecot_binary

from mailpush.auth import add_user
from mailpush.config import load_settings
from mailpush.server import MailpushServer

from ..conftest import USERS, free_port, imap_listener, lmtp_port, write_config

pytestmark = pytest.mark.skipif(
    dovecot_binary() is None,
    reason="Dovecot is not installed (apt-get install dovecot-core dovecot-imapd "
    "dovecot-lmtpd; .ci/run does this when run as root)",
)

FIXTURES = Path(__file__).parent / "fixtures"
RECORDER = FIXTURES / "record_events.lua"
PLUGINS = "mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua"
#: Pigeonhole (Debian's dovecot-sieve, installed by .ci/run): without it the Sieve step
#: is left out of the scenario.
SIEVE_PLUGIN = any(Path("/usr/lib").glob("*dovecot/modules/lib90_sieve_plugin.so")) or any(
    Path("/usr/lib").glob("*/dovecot/modules/lib90_sieve_plugin.so")
)
#: alice's Sieve script on both servers: a marked message goes to two new folders only
#: (top-level names: the private Dovecot's Maildir++ layout has no `/` separator).
SIEVE_SCRIPT = (
    'require ["fileinto", "mailbox"];\n'
    'if header :contains "subject" "file me" {\n'
    '  fileinto :create "FiledOne";\n'
    '  fileinto :create "FiledTwo";\n'
    "}\n"
)
FILED_MESSAGE = b"From: s@example.net\r\nTo: alice@example.org\r\nSubject: file me\r\n\r\nhi\r\n"

FULL_MESSAGE = (
    b'From: "Alice Example" <alice@example.org>\r\n'
    b"To: Bob <bob@example.org>, carol@example.org\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus K\xc3\xb6ln\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n"
    b"Message-ID: <one@example.org>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n\r\n> a quoted line\r\nthis is the body.\r\n"
)
BARE_MESSAGE = b"X-Note: no From, To, Subject, Date or Message-ID\r\n\r\nbody two\r\n"


# --- the scenario: the same operations on either server ---------------------------------


class Session:
    """alice's one IMAP session (Dovecot keeps one Lua state for it) plus LMTP."""

    def __init__(self, lmtp: int, imap: int) -> None:
        self.lmtp_port = lmtp
        self.imap_port = imap
        self.imap = imaplib.IMAP4("127.0.0.1", imap)

    def login(self) -> None:
        typ, data = self.imap.login("alice", "secret")
        assert typ == "OK", data

    def deliver(self, recipients: list[str], message: bytes) -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            refused = lmtp.sendmail("sender@example.net", recipients, message)
            assert not refused, refused
            for _ in recipients[1:]:
                # smtplib reads only the first recipient's reply to DATA.
                code, reply = lmtp.getreply()
                assert code == 250, reply

    def command(self, name: str, *args: str, expect: str = "OK") -> None:
        typ, data = self.imap._simple_command(name, *args)
        typ, data = self.imap._untagged_response(typ, data, name)
        assert typ == expect, (name, args, typ, data)

    def select(self, mailbox: str) -> None:
        typ, data = self.imap.select(mailbox)
        assert typ == "OK", (mailbox, typ, data)

    def append(self, mailbox: str, flags: str, message: bytes, expect: str = "OK") -> None:
        typ, data = self.imap.append(mailbox, flags, None, message)
        assert typ == expect, (mailbox, typ, data)

    def rolled_back_multiappend(self) -> None:
        """imaplib has no MULTIAPPEND; an empty 2nd message makes the whole command fail."""
        with socket.create_connection(("127.0.0.1", self.imap_port), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(b"a LOGIN alice secret\r\n")
            assert reader.readline().startswith(b"a OK")
            sock.sendall(
                b"b APPEND INBOX {%d+}\r\n%s {0+}\r\n\r\n" % (len(BARE_MESSAGE), BARE_MESSAGE)
            )
            reply = reader.readline()
            assert reply.startswith(b"b NO"), reply
            sock.sendall(b"c LOGOUT\r\n")
            while not reader.readline().startswith(b"c "):
                pass

    def close(self) -> None:
        self.imap.logout()


@dataclass(frozen=True)
class Step:
    name: str
    action: Callable[[Session], None]


def _store(spec: str, change: str, flags: str) -> Step:
    return Step(f"STORE {spec} {change} {flags}", lambda s: s.command("STORE", spec, change, flags))


def _imap(*words: str, expect: str = "OK") -> Step:
    return Step(" ".join(words), lambda s: s.command(*words, expect=expect))


SCENARIO = [
    # alice's INBOX is created over IMAP at the first SELECT, not at LOGIN; bob's inside
    # his first delivery (LMTP). An INBOX made by a delivery can get two UIDVALIDITYs in
    # Dovecot 2.3 (docs/dovecot-reference.md#uidvalidity-of-a-new-maildir-inbox); bob gets
    # no later event, so that quirk cannot show here.
    Step("LOGIN alice", lambda s: s.login()),
    Step("SELECT INBOX", lambda s: s.select("INBOX")),
    Step("LMTP to alice, bob (full headers)",
         lambda s: s.deliver(["alice", "bob"], FULL_MESSAGE)),
    Step("LMTP to alice (no headers)", lambda s: s.deliver(["alice"], BARE_MESSAGE)),
    Step("APPEND INBOX (\\Seen $Label1)",
         lambda s: s.append("INBOX", "(\\Seen $Label1)", FULL_MESSAGE)),
    _store("1", "+FLAGS", "(\\Seen)"),
    _store("1", "+FLAGS", "(\\Seen)"),  # changes nothing: no call at all
    _store("1", "+FLAGS", "(\\Deleted)"),
    _store("2", "+FLAGS", "($Label1 Important)"),
    _store("2", "-FLAGS", "($Label1)"),
    _store("1", "-FLAGS", "(\\Deleted)"),
    _store("2", "FLAGS", "(\\Answered $Label3)"),
    _store("1:3", "+FLAGS.SILENT", "(\\Flagged)"),
    _store("1", "-FLAGS", "(\\Seen)"),
    _imap("FETCH", "1", "(BODY[])"),  # sets \Seen: FlagsClear, FlagsSet, MessageRead
    _imap("FETCH", "2", "(BODY.PEEK[])"),  # nothing
    _imap("CREATE", "Work"),
    _imap("CREATE", "Work", expect="NO"),  # exists already: nothing
    _imap("COPY", "1:2", "Work"),
    _imap("MOVE", "3", "Work"),
    _store("2", "+FLAGS", "(\\Deleted)"),
    _imap("EXPUNGE"),
    _imap("SUBSCRIBE", "Work"),
    _imap("RENAME", "Work", "Work2"),
    _imap("UNSUBSCRIBE", "Work"),
    _imap("CREATE", "Entw&APw-rfe"),
    _imap("DELETE", "Work2"),  # holds 3 messages: their expunges, then MailboxDelete
    _imap("DELETE", "Entw&APw-rfe"),
    *(
        [Step("LMTP to alice (Sieve: fileinto :create two new folders)",
              lambda s: s.deliver(["alice"], FILED_MESSAGE))]
        if SIEVE_PLUGIN else []
    ),
    Step("APPEND Missing (fails: no such mailbox)",
         lambda s: s.append("Missing", "()", BARE_MESSAGE, expect="NO")),
    Step("APPEND INBOX <message> <empty message> (MULTIAPPEND, rolled back)",
         lambda s: s.rolled_back_multiappend()),
    Step("LOGOUT", lambda s: s.close()),
]


async def run_scenario(
    lmtp: int, imap: int, record: Path, settle: Callable[[], Any]
) -> None:
    """Each step's calls end up after a marker line `{"op": name}` in `record`."""
    session = await asyncio.to_thread(Session, lmtp, imap)
    for step in SCENARIO:
        await settle()
        with record.open("a") as out:
            out.write(json.dumps({"op": step.name}) + "\n")
        await asyncio.to_thread(step.action, session)
    await settle()


# --- running it on both servers ------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    lines: list[dict[str, Any]]
    #: Where this server's users' homes are (`<homes>/<username>`).
    homes: Path


async def record_dovecot() -> Recording:
    dovecot = DovecotInstance(
        users=[("alice", "secret"), ("bob", "secret")], lua_script=RECORDER,
        extra_config="protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n"
        if SIEVE_PLUGIN else "",
    )
    record = dovecot.output_file("events.jsonl")
    dovecot.plugin_settings["record_file"] = str(record)
    if SIEVE_PLUGIN:
        dovecot.plugin_settings["sieve"] = str(_sieve_scripts(dovecot.output_dir) / "%n.sieve")
    async with dovecot:

        async def settle() -> None:
            # Dovecot calls the script inside each command; only script_deinit of a
            # finished LMTP recipient or IMAP session may come just after the reply.
            await _file_quiet(record)

        await run_scenario(dovecot.lmtp_port, dovecot.imap_port, record, settle)
        log = dovecot.log_text()
        lines = _read(record)
    assert " Error: " not in log and " Panic: " not in log, log
    return Recording(lines, dovecot.workdir / "home")


async def record_mailpush(directory: Path) -> Recording:
    record = directory / "events.jsonl"
    record.touch()
    homes = directory / "home"
    # The same userdb fields as the Dovecot instance's users, so that `user.uid`,
    # `gid` and `home` can be compared (mailpush only reports them).
    uid, gid = _mail_ids()
    for name in USERS:
        add_user(directory / "users", name, "secret", "PLAIN", uid=str(uid), gid=str(gid),
                 home=str(homes / name))
    imap = free_port()
    config = write_config(
        directory,
        imap_listener(imap)
        + textwrap.dedent(
            f"""\
            protocols = imap lmtp
            {PLUGINS}{" sieve" if SIEVE_PLUGIN else ""}
            plugin {{
              push_notification_driver = lua:file={RECORDER}
              record_file = {record}
              sieve = {_sieve_scripts(directory) / "%n.sieve"}
            }}
            """
        ),
    )
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    try:

        async def settle() -> None:
            await _drained(server)

        await run_scenario(lmtp_port(server), imap, record, settle)
    finally:
        # script_deinit runs when the server closes the driver's Lua states.
        await server.stop()
    return Recording(_read(record), homes)


def _sieve_scripts(directory: Path) -> Path:
    """`directory/sieve` with alice's script, writable by the mail processes (Dovecot
    compiles the script next to it)."""
    scripts = directory / "sieve"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "alice.sieve").write_text(SIEVE_SCRIPT)
    if os.geteuid() == 0:
        uid, gid = _mail_ids()
        for path in (scripts, scripts / "alice.sieve"):
            os.chown(path, uid, gid)
    return scripts


def _mail_ids() -> tuple[int, int]:
    """What Dovecot's mail processes run as here (bench/dovecot_instance.py): nobody as root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


async def _drained(server: MailpushServer) -> None:
    """Every committed push transaction has been through the driver."""
    assert server.store is not None
    outbox = server.store.outbox
    quiet_since: float | None = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = await outbox.stats(time.time())
        if all(s.pending == 0 and s.inflight == 0 for s in stats):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.05:
                return
        else:
            quiet_since = None
        await asyncio.sleep(0.01)
    raise AssertionError(f"mailpush's push queue did not drain: {stats}")


async def _file_quiet(path: Path, quiet: float = 0.08) -> None:
    size, since = path.stat().st_size, time.monotonic()
    deadline = since + 10
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        now = path.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise AssertionError(f"Dovecot kept writing {path}")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- normalising and comparing -----------------------------------------------------------

Operation = tuple[str, list[dict[str, Any]]]


@dataclass
class Transaction:
    user: str
    ended: bool = False


class Normaliser:
    """One server's record as (operation, calls), with run-specific values replaced."""

    def __init__(self, recording: Recording, server: str) -> None:
        self.homes = recording.homes
        self.server = server
        self.operations: list[Operation] = [("(before the first operation)", [])]
        self._validities: dict[tuple[str, str], dict[float, str]] = {}
        self._users: dict[tuple[str, str], str] = {}
        self._open: dict[tuple[str, str], Transaction] = {}
        #: The current operation's transaction calls as they came: (user, txn key, call).
        self._calls: list[tuple[str, tuple[str, str], dict[str, Any]]] = []
        #: Per Lua state: its calls, with runs of transactions as one "txns".
        self._lifecycle: dict[str, list[str]] = {}
        for line in recording.lines:
            self._take(line)
        self._close_operation()
        self.operations.append(("(Lua state lifetimes)", [self._lifecycle_shapes()]))
        if not self.operations[0][1]:
            del self.operations[0]

    def _take(self, raw: dict[str, Any]) -> None:
        if "op" in raw:
            self._close_operation()
            self.operations.append((raw["op"], []))
            return
        line = dict(raw)
        fn = line.pop("fn").removeprefix("dovecot_lua_notify_")
        state = line.pop("state")
        del line["seq"]
        calls = self._lifecycle.setdefault(state, [])
        if fn in ("script_init", "script_deinit"):
            if self.server == "mailpush" and fn == "script_init" and line == {
                "nargs": 1, "settings": []
            }:
                # Deliberate (docs/migrating-from-dovecot.md#lua-push-scripts): script_init
                # always gets a settings table, empty with the 2.3 configuration, where
                # Dovecot passes nothing.
                line = {"nargs": 0}
            calls.append(f"{fn}{json.dumps(line, sort_keys=True)}")
            return
        if not calls or calls[-1] != "txns":
            calls.append("txns")
        key = (state, str(line.pop("txn", None)))
        if fn == "begin_txn":
            user = str(line.get("user", {}).get("username"))
            self._users[key] = user
            self._open[key] = Transaction(user)
            self._calls.append((user, key, {"fn": fn, **self._begin(line)}))
            return
        txn = self._open.get(key)
        if txn is None:
            txn = self._open[key] = Transaction("?")
            self._calls.append(("?", key, {"fn": "(no begin_txn)"}))
        if fn == "end_txn":
            txn.ended = True
            self._calls.append((txn.user, key, {"fn": fn, **line}))
            return
        self._calls.append(
            (txn.user, key, {"fn": fn, **self._event(line, self._users.get(key, "?"))})
        )

    def _close_operation(self) -> None:
        # Different users' scripts run in different Lua states, in no fixed order
        # between them; one user's calls are compared in the exact order they came
        # (interleaved when transactions overlap), each transaction numbered by its
        # first call.
        ordered = sorted(enumerate(self._calls), key=lambda item: (item[1][0], item[0]))
        numbers: dict[tuple[str, str], str] = {}
        calls = self.operations[-1][1]
        for _, (_, key, line) in ordered:
            number = numbers.setdefault(key, f"T{len(numbers) + 1}")
            calls.append({"txn": number, **line})
        for key, txn in self._open.items():
            if not txn.ended:
                calls.append({"txn": numbers.get(key, "?"), "fn": "(no end_txn)"})
        self._calls.clear()
        self._open.clear()

    def _begin(self, line: dict[str, Any]) -> dict[str, Any]:
        user = {key: _integral(value) for key, value in line.pop("user").items()}
        types = line.pop("user_types")
        name = user.get("username")
        if user.get("home") == f"{self.homes}/{name}":
            user["home"] = f"<homes>/{name}"
        # A session's: different on every run (and per transaction in mailpush).
        if isinstance(user.get("session_id"), str) and user["session_id"]:
            user["session_id"] = "<a session id>"
        created = user.get("session_create_time")
        if isinstance(created, int | float) and abs(created - time.time()) < 600:
            user["session_create_time"] = "<now>"
        return {**line, "user": user, "user_types": self._number_types(types)}

    def _event(self, line: dict[str, Any], user: str) -> dict[str, Any]:
        event = {key: _integral(value) for key, value in line.pop("event").items()}
        types = dict(line.pop("types"))
        if self.server == "mailpush":
            # Deliberate (issue 5): the names Dovecot's Lua push documentation uses are
            # there too: `user` in every event, `keywords_set` / `keywords_clear` copying
            # `keywords` (docs/migrating-from-dovecot.md#lua-push-scripts).
            if "user" in event:
                del event["user"], types["user"]
            for extra, owner in (("keywords_set", "FlagsSet"), ("keywords_clear", "FlagsClear")):
                if event.get("name") == owner and event.get(extra) == event.get("keywords"):
                    del event[extra], types[extra]
        validity = event.get("uid_validity")
        if isinstance(validity, int) and validity > 0:
            # Creation times: only whether a mailbox keeps its value is compared.
            seen = self._validities.setdefault((user, str(event.get("mailbox"))), {})
            event["uid_validity"] = seen.setdefault(validity, f"V{len(seen) + 1}")
        return {**line, "event": event, "types": self._number_types(types)}

    def _number_types(self, types: dict[str, str]) -> dict[str, str]:
        """Deliberate (issue 5): Dovecot 2.3 pushes numbers as Lua floats, mailpush integers."""
        if self.server != "dovecot":
            return types
        return {key: "integer" if kind == "float" else kind for key, kind in types.items()}

    def _lifecycle_shapes(self) -> dict[str, Any]:
        """How Lua states begin and end, not how many there are.

        Deliberate (docs/migrating-from-dovecot.md#lua-push-scripts): Dovecot makes a
        state per IMAP session and per LMTP recipient, mailpush one per user, kept in
        a bounded cache; so the number of script_init calls differs, but each state
        must be initialised once before its first transaction and deinitialised once
        after its last.
        """
        return {"every state": sorted({" ".join(calls) for calls in self._lifecycle.values()})}


def _integral(value: Any) -> Any:
    """1.0 → 1: a float's value is compared here, its type in the `types` map."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def render(operations: list[Operation]) -> list[str]:
    out = []
    for name, calls in operations:
        out.append(f"== {name}")
        out += [json.dumps(call, sort_keys=True, ensure_ascii=False) for call in calls]
    return out


def field_differences(dovecot: list[Operation], mailpush: list[Operation]) -> list[str]:
    """Each differing field once, with how often and where it first differs."""
    found: dict[str, list[str]] = {}
    if [name for name, _ in dovecot] != [name for name, _ in mailpush]:
        return ["the operations differ (see the calls below)"]
    for (name, calls), (_, ours) in zip(dovecot, mailpush, strict=True):
        for index in range(max(len(calls), len(ours))):
            left = calls[index] if index < len(calls) else None
            right = ours[index] if index < len(ours) else None
            where = f"{name} #{index + 1}"
            if left is None or right is None or left.get("fn") != right.get("fn"):
                what = f"call {_call_name(left)} (dovecot) vs {_call_name(right)} (mailpush)"
                found.setdefault(what, []).append(where)
                continue
            for path, a, b in _differing(left, right, ""):
                found.setdefault(f"{left['fn']}: {path}: {a!r} (dovecot) vs {b!r} (mailpush)",
                                 []).append(where)
    return [f"{what}  [{len(wheres)}x, first in {wheres[0]}]" for what, wheres in found.items()]


def _call_name(call: dict[str, Any] | None) -> str:
    if call is None:
        return "(none)"
    event = call.get("event", {}).get("name", "")
    return f"{call['fn']}{f'({event})' if event else ''}"


def _differing(a: Any, b: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(a.keys() | b.keys()):
            out += _differing(a.get(key, "<absent>"), b.get(key, "<absent>"),
                              f"{path}.{key}" if path else key)
        return out
    return [] if a == b and type(a) is type(b) else [(path, a, b)]


async def test_lua_script_sees_the_same_calls_and_fields_as_under_dovecot(
    tmp_path: Path,
) -> None:
    dovecot_run, mailpush_run = await asyncio.gather(record_dovecot(), record_mailpush(tmp_path))
    dovecot = Normaliser(dovecot_run, "dovecot").operations
    mailpush = Normaliser(mailpush_run, "mailpush").operations
    if render(dovecot) != render(mailpush):
        summary = "\n".join(field_differences(dovecot, mailpush))
        diff = "\n".join(difflib.unified_diff(
            render(dovecot), render(mailpush), "dovecot-2.3.19", "mailpush", lineterm="", n=2
        ))
        pytest.fail(
            f"mailpush's Lua calls differ from Dovecot's:\n{summary}\n\nAll calls:\n{diff}",
            pytrace=False,
        )
