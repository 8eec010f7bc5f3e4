"""doveadm's admin commands (`mailbox`, `search`, `fetch`, `expunge`, `pw`) beside a running
server: what they change, IMAP sessions see and push drivers are told of, as if IMAP made it.

The server runs in this process (IMAP on loopback, the dlog driver loaded); the
commands run as separate processes on the same data directory, as an admin
runs them next to `mailpush serve`.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailpush.auth import verify_password
from mailpush.config import load_settings
from mailpush.server import MailpushServer
from tests.cli.cli_process import mailpush
from tests.conftest import free_port, imap_listener, write_config

PUSH_TO_DLOG = (
    "protocols = lmtp imap\nauth_failure_delay = 0\n"
    "mail_plugins = $mail_plugins push_notification\n"
    "plugin {\n  push_notification_driver = dlog\n}\n"
)


@dataclass
class Running:
    config: Path
    server: MailpushServer
    users: Path

    @property
    def imap_port(self) -> int:
        return next(item.port for item in self.server.listeners if item.service == "imap")

    async def cli(self, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        """`mailpush ACTION -c CONFIG ARGS`, off the event loop the server runs on.

        `pw` reads no configuration (as `doveadm pw`), so it gets no `-c`."""
        split = 2 if args[0] in ("mailbox", "events") else 1
        name, rest = args[:split], args[split:]
        config = () if args[0] == "pw" else ("-c", str(self.config))
        result = await asyncio.to_thread(mailpush, *name, *config, *rest, stdin=stdin)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr

    async def imap(self, user: str = "alice", password: str = "secret") -> imaplib.IMAP4:
        def connect() -> imaplib.IMAP4:
            client = imaplib.IMAP4("127.0.0.1", self.imap_port)
            client.login(user, password)
            return client

        return await asyncio.to_thread(connect)

    async def events(self, user: str = "alice") -> list[dict[str, object]]:
        """Every push transaction of `user` still in the outbox, oldest first."""
        status, out, err = await self.cli("events", "tail", "--from-start", "--user", user,
                                          "--count", str(await self._outbox_size(user)))
        assert status == 0, err
        return [json.loads(line) for line in out.splitlines()]

    async def _outbox_size(self, user: str) -> int:
        assert self.server.store is not None
        return len(await self.server.store.outbox.records_after(0, user))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    config = write_config(tmp_path, imap_listener(free_port()) + PUSH_TO_DLOG)
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    try:
        yield Running(config, server, tmp_path / "users")
    finally:
        await server.stop()


def imap_call(client: imaplib.IMAP4, command: str, *args: str) -> list[bytes]:
    status, data = getattr(client, command)(*args)
    assert status == "OK", (command, args, data)
    return [item if isinstance(item, bytes) else item[0] for item in data if item is not None]


def listed_names(lines: list[bytes]) -> set[str]:
    return {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in lines}


def event_names(transactions: list[dict[str, object]], mailbox: str) -> list[str]:
    names = []
    for txn in transactions:
        if txn["mailbox"] == mailbox:
            events = txn["events"]
            assert isinstance(events, list)
            names.extend(str(event["name"]) for event in events)
    return names


def message(subject: str, body: str = "hello", sender: str = "a@example.org") -> bytes:
    return (
        f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


async def append(running: Running, mailbox: str, *messages: tuple[bytes, str]) -> None:
    client = await running.imap()

    def work() -> None:
        for raw, flags in messages:
            status, data = client.append(mailbox, flags, None, raw)
            assert status == "OK", data
        client.logout()

    await asyncio.to_thread(work)


# --- mailbox list|status|create|delete --------------------------------------------------------


async def test_mailbox_create_and_delete_are_seen_over_imap_and_pushed(running: Running) -> None:
    status, _, err = await running.cli("mailbox", "create", "alice", "-s", "Projects",
                                       "Projects/2026")
    assert status == 0, err

    client = await running.imap()
    listed = listed_names(await asyncio.to_thread(imap_call, client, "list", '""', "*"))
    subscribed = listed_names(await asyncio.to_thread(imap_call, client, "lsub", '""', "*"))
    assert {"Projects", "Projects/2026"} <= listed
    assert {"Projects", "Projects/2026"} <= subscribed
    status, out, _ = await running.cli("mailbox", "list", "alice")
    assert set(out.split()) == listed
    status, out, _ = await running.cli("mailbox", "list", "alice", "Proj%")
    assert out.split() == ["Projects"]

    status, _, err = await running.cli("mailbox", "delete", "alice", "Projects/2026")
    assert status == 0, err
    listed = listed_names(await asyncio.to_thread(imap_call, client, "list", '""', "*"))
    assert "Projects/2026" not in listed and "Projects" in listed
    await asyncio.to_thread(client.logout)

    transactions = await running.events()
    assert event_names(transactions, "Projects") == ["MailboxCreate", "MailboxSubscribe"]
    assert event_names(transactions, "Projects/2026") == [
        "MailboxCreate", "MailboxSubscribe", "MailboxDelete",
    ]
    assert {txn["service"] for txn in transactions if txn["mailbox"] == "Projects"} == {"imap"}


async def test_mailbox_status_reports_what_imap_status_does(running: Running) -> None:
    await running.cli("mailbox", "create", "alice", "Archive")
    await append(running, "Archive", (message("one"), r"(\Seen)"), (message("two"), ""))
    status, out, err = await running.cli("mailbox", "status", "alice", "all", "Archive")
    assert status == 0, err
    fields = dict(item.split("=") for item in out.split()[1:])
    assert out.split()[0] == "Archive"

    client = await running.imap()
    line = (await asyncio.to_thread(
        imap_call, client, "status", "Archive", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"
    ))[0].decode()
    await asyncio.to_thread(client.logout)
    imap = dict(re.findall(r"([A-Z]+) (\d+)", line))
    assert fields["messages"] == imap["MESSAGES"] == "2"
    assert fields["unseen"] == imap["UNSEEN"] == "1"
    assert fields["uidnext"] == imap["UIDNEXT"]
    assert fields["uidvalidity"] == imap["UIDVALIDITY"]


async def test_mailbox_commands_refuse_what_imap_refuses(running: Running) -> None:
    await running.cli("mailbox", "create", "alice", "Taken")
    status, _, err = await running.cli("mailbox", "create", "alice", "Taken")
    assert status == 1 and "already exists: Taken" in err
    status, _, err = await running.cli("mailbox", "delete", "alice", "Missing")
    assert status == 1 and "doesn't exist: Missing" in err
    status, _, err = await running.cli("mailbox", "delete", "alice", "INBOX")
    assert status == 1 and "INBOX can't be deleted" in err
    status, _, err = await running.cli("mailbox", "list", "ghost")
    assert status == 1 and "unknown user 'ghost'" in err
    status, _, err = await running.cli("mailbox", "status", "alice", "messages size", "INBOX")
    assert status == 1 and "unknown field(s) size" in err


# --- search and fetch -------------------------------------------------------------------------


async def test_search_selects_exactly_what_imap_search_selects(running: Running) -> None:
    await running.cli("mailbox", "create", "alice", "Archive")
    await append(
        running, "INBOX",
        (message("invoice 42", "please pay"), r"(\Seen)"),
        (message("two words here", "nothing"), ""),
        (message("lunch", "café at noon", sender="bob@example.net"), r"(\Flagged)"),
    )
    await append(running, "Archive", (message("old invoice", "paid"), r"(\Seen)"))

    client = await running.imap()

    def imap_search(mailbox: str, *keys: str) -> set[tuple[str, int]]:
        imap_call(client, "select", mailbox, True)
        found = imap_call(client, "uid", "SEARCH", *keys)[0].split()
        return {(mailbox, int(uid)) for uid in found}

    queries = [
        ("SUBJECT", "invoice"),
        ("UNSEEN",),
        ("OR", "FROM", "bob", "SUBJECT", '"two words"'),
        ("FLAGGED", "BODY", "noon"),
        ("NOT", "SEEN", "LARGER", "10"),
    ]
    for keys in queries:
        expected = set()
        for mailbox in ("INBOX", "Archive"):
            expected |= await asyncio.to_thread(imap_search, mailbox, *keys)
        cli_keys = [key.strip('"') for key in keys]
        status, out, err = await running.cli("search", "alice", *cli_keys)
        assert status == 0, err
        found = {(line.split("\t")[0], int(line.split("\t")[1])) for line in out.splitlines()}
        assert found == expected, keys
    await asyncio.to_thread(client.logout)

    status, out, _ = await running.cli("search", "alice", "mailbox", "Archive", "SUBJECT",
                                       "invoice")
    assert out.splitlines() == ["Archive\t1"]
    status, out, _ = await running.cli("search", "alice", "BODY", "café")
    assert out.splitlines() == ["INBOX\t3"]
    status, out, _ = await running.cli("search", "alice")
    assert len(out.splitlines()) == 4  # no keys: ALL


async def test_search_refuses_a_query_imap_would_refuse(running: Running) -> None:
    status, out, err = await running.cli("search", "alice", "SUBJEKT", "x")
    assert status == 1 and out == ""
    assert "Unknown search key SUBJEKT" in err and len(err.strip().splitlines()) == 1
    status, _, err = await running.cli("search", "alice", "mailbox")
    assert status == 1 and "`mailbox` needs a mailbox name" in err


async def test_fetch_prints_the_fields_imap_fetch_returns(running: Running) -> None:
    raw = message("fetched", "the body")
    await append(running, "INBOX", (raw, r"(\Seen \Flagged)"))
    status, out, err = await running.cli(
        "fetch", "alice", "mailbox uid flags size.physical hdr body", "SUBJECT", "fetched"
    )
    assert status == 0, err

    client = await running.imap()
    await asyncio.to_thread(imap_call, client, "select", "INBOX", True)
    _, data = await asyncio.to_thread(client.uid, "FETCH", "1",
                                      "(BODY.PEEK[HEADER] BODY.PEEK[TEXT] RFC822.SIZE)")
    await asyncio.to_thread(client.logout)
    # The command's output is read as text, so its CRLFs arrive as LFs.
    header, text = (part[1].decode().replace("\r\n", "\n") for part in data[:2])
    size = re.search(rb"RFC822.SIZE (\d+)", data[0][0] + b"".join(
        item for item in data if isinstance(item, bytes)))
    assert size is not None
    assert out == (
        "mailbox: INBOX\nuid: 1\nflags: \\Flagged \\Seen \\Recent\n"
        f"size.physical: {size.group(1).decode()}\nhdr:\n{header}body:\n{text}"
    )


async def test_fetch_separates_messages_and_refuses_unknown_fields(running: Running) -> None:
    await append(running, "INBOX", (message("a"), ""), (message("b"), ""))
    status, out, _ = await running.cli("fetch", "alice", "uid")
    assert out == "uid: 1\n\f\nuid: 2\n"
    status, _, err = await running.cli("fetch", "alice", "uid guid")
    assert status == 1 and "unknown field(s) guid" in err


# --- expunge ----------------------------------------------------------------------------------


async def test_expunge_removes_the_matches_and_pushes_what_imap_expunge_pushes(
    running: Running,
) -> None:
    mails = ((message("old 1"), ""), (message("keep"), ""), (message("old 2"), r"(\Seen)"))
    await append(running, "INBOX", *mails)
    status, _, err = await running.cli("expunge", "alice", "SUBJECT", "old")
    assert status == 1 and "must name the mailbox" in err

    status, out, err = await running.cli("expunge", "alice", "mailbox", "INBOX", "SUBJECT", "old")
    assert status == 0, err
    assert out == "INBOX: expunged 2 message(s)\n"

    client = await running.imap()
    selected = await asyncio.to_thread(imap_call, client, "select", "INBOX")
    uids = await asyncio.to_thread(imap_call, client, "uid", "SEARCH", "ALL")
    await asyncio.to_thread(client.logout)
    assert selected == [b"1"] and uids == [b"2"]

    # Bob's copy of the same mailbox, expunged the IMAP way, must push the same events.
    bob = await running.imap("bob")

    def imap_expunge() -> None:
        for raw, flags in mails:
            imap_call(bob, "append", "INBOX", flags, None, raw)
        imap_call(bob, "select", "INBOX")
        imap_call(bob, "uid", "STORE", "1,3", "+FLAGS", "(\\Deleted)")
        imap_call(bob, "uid", "EXPUNGE", "1,3")
        bob.logout()

    await asyncio.to_thread(imap_expunge)
    by_cli = event_names(await running.events("alice"), "INBOX")
    by_imap = event_names(await running.events("bob"), "INBOX")
    assert by_cli.count("MessageExpunge") == 2 and "MessageTrash" in by_cli
    assert by_cli == by_imap


# --- pw ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["ARGON2ID", "SHA512-CRYPT", "SSHA256", "PLAIN"])
async def test_pw_hashes_a_password_a_passwd_file_login_accepts(
    running: Running, scheme: str
) -> None:
    status, out, err = await running.cli("pw", "-s", scheme, stdin=b"pa55 word\n")
    assert status == 0, err
    stored = out.strip()
    assert stored.startswith(f"{{{scheme}}}") and verify_password(stored, "pa55 word")
    with running.users.open("a") as users:
        users.write(f"erin:{stored}\n")
    client = await running.imap("erin", "pa55 word")
    await asyncio.to_thread(client.logout)

    status, out, _ = await running.cli("pw", "-t", stored, "-p", "pa55 word")
    assert status == 0 and "(verified)" in out
    status, _, err = await running.cli("pw", "-t", stored, "-p", "wrong")
    assert status == 1 and "does not match" in err


async def test_pw_refuses_an_unknown_scheme_in_one_line(running: Running) -> None:
    status, out, err = await running.cli("pw", "-s", "ROT13", "-p", "x")
    assert status == 1 and out == ""
    assert "ROT13" in err and len(err.strip().splitlines()) == 1
    status, out, _ = await running.cli("pw", "-l")
    assert "ARGON2ID" in out.split() and "SHA512-CRYPT" in out.split()
