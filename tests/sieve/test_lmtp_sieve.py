"""Sieve end to end: LMTP in, scripts from the configuration, mail and push records out.

The server is a real `MailpushServer` (store, users, push recorder with the
dlog driver). The LMTP listener under test is built from the same settings
with `build_sieve_planner`, exactly as `build_delivery_agent` wires it.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.delivery import DefaultFilingPlanner, DeliveryAgent
from mailpush.errors import MailboxNotFoundError
from mailpush.events.serialization import transaction_from_json
from mailpush.lmtp import LmtpOptions, LmtpServer
from mailpush.server import MailpushServer, UserDirectory
from mailpush.sieve import build_sieve_planner
from mailpush.store import SqliteStore
from mailpush.store import flags as F
from tests.conftest import write_config

MESSAGE = (
    b"From: Boss <boss@example.org>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: [report] due friday\r\n"
    b"\r\n"
    b"Numbers attached.\r\n"
)


@dataclass
class SieveSite:
    server: MailpushServer
    store: SqliteStore
    lmtp_port: int
    scripts: Path


@pytest.fixture
async def make_site(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """A server whose plugin settings point at scripts written by the test."""
    started: list[tuple[MailpushServer, LmtpServer]] = []

    async def start(user_script: str | None, before: dict[str, str] | None = None) -> SieveSite:
        scripts = tmp_path / "sieve"
        (scripts / "before.d").mkdir(parents=True, exist_ok=True)
        if user_script is not None:
            (scripts / "alice.sieve").write_text(textwrap.dedent(user_script))
        for name, text in (before or {}).items():
            (scripts / "before.d" / name).write_text(textwrap.dedent(text))
        extra = textwrap.dedent(
            f"""\
            mail_plugins = notify push_notification sieve
            plugin {{
              push_notification_driver = dlog
              sieve_before = {scripts / "before.d"}
              sieve = {scripts}/%n.sieve
            }}
            """
        )
        settings = load_settings(write_config(tmp_path, extra)).settings
        server = MailpushServer(settings)
        await server.start()
        assert server.store is not None
        users = UserDirectory(settings)
        fallback = DefaultFilingPlanner(server.store)
        planner = build_sieve_planner(settings, server.store, fallback, users.user_settings)
        lmtp = LmtpServer(
            DeliveryAgent(server.store, planner),
            users.resolve,
            LmtpOptions(address="127.0.0.1", port=0),
        )
        _, port = await lmtp.start()
        started.append((server, lmtp))
        return SieveSite(server, server.store, port, scripts)

    yield start
    for server, lmtp in started:
        await lmtp.stop(1.0)
        await server.stop()


def send(site: SieveSite, raw: bytes = MESSAGE, sender: str = "boss@example.org") -> str:
    """One LMTP transaction for alice; returns the final reply line."""
    with smtplib.LMTP("127.0.0.1", site.lmtp_port) as client:
        client.ehlo("client.example")
        client.mail(sender)
        assert client.rcpt("alice@example.org")[0] == 250
        code, reply = client.data(raw)
    assert code == 250, reply
    return reply.decode()


async def deliver(site: SieveSite, **kwargs: object) -> str:
    return await asyncio.to_thread(send, site, **kwargs)  # type: ignore[arg-type]


async def push_events(site: SieveSite) -> list[tuple[str, str]]:
    """(event, mailbox) of every push transaction recorded for alice, in commit order."""
    records = await site.store.outbox.records_after(0, "alice")
    events = []
    for record in records:
        txn = transaction_from_json(record.payload)
        events.extend((event.name, event.mailbox) for event in txn.events)
    return events


async def count(site: SieveSite, mailbox: str) -> int:
    """Messages in one of alice's mailboxes; 0 when delivery never created it."""
    try:
        return (await site.store.status("alice", mailbox)).messages
    except MailboxNotFoundError:
        return 0


async def test_fileinto_two_folders_stores_twice_with_one_message_new_each(
    make_site: Callable[..., object],
) -> None:
    site: SieveSite = await make_site(  # type: ignore[operator]
        """\
        require ["fileinto", "copy"];
        if header :contains "subject" "[report]" {
          fileinto :copy "Reports";
          fileinto "Work";
        }
        """
    )
    await site.store.create_mailbox("alice", "Reports")
    await site.store.create_mailbox("alice", "Work")
    assert (await deliver(site)).startswith("2.0.0 <alice@example.org> Saved")
    assert await site.store.raw_message("alice", "Reports", 1) == MESSAGE
    assert await site.store.raw_message("alice", "Work", 1) == MESSAGE
    assert await count(site, "INBOX") == 0
    new = [event for event in await push_events(site) if event[0] == "MessageNew"]
    assert new == [("MessageNew", "Reports"), ("MessageNew", "Work")]


async def test_broken_script_is_logged_and_the_message_kept_in_inbox(
    make_site: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    site: SieveSite = await make_site(  # type: ignore[operator]
        """\
        require "fileinto";
        if header :contains "subject" "report" {
          fileinto "Work"
        }
        """
    )
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        await deliver(site)
        await deliver(site)
    assert await count(site, "INBOX") == 2
    script = site.scripts / "alice.sieve"
    errors = [(r.name, r.getMessage()) for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        ("mailpush.sieve.cache", f"{script}:4: unexpected token '}}' found near '}}'")
    ]


async def test_discard_answers_250_and_stores_nothing(make_site: Callable[..., object]) -> None:
    site: SieveSite = await make_site('if address :domain "from" "example.org" { discard; }\n')
    assert await deliver(site) == "2.0.0 <alice@example.org> Saved"
    assert await count(site, "INBOX") == 0
    assert [e for e in await push_events(site) if e[0] == "MessageNew"] == []


async def test_fileinto_create_makes_the_folder(make_site: Callable[..., object]) -> None:
    site: SieveSite = await make_site(
        'require ["fileinto", "mailbox"];\nfileinto :create "Lists/reports";\n'
    )
    await deliver(site)
    assert await site.store.raw_message("alice", "Lists/reports", 1) == MESSAGE
    events = await push_events(site)
    assert ("MailboxCreate", "Lists/reports") in events
    assert events[-1] == ("MessageNew", "Lists/reports")


async def test_fileinto_a_missing_folder_without_create_keeps_in_inbox(
    make_site: Callable[..., object],
) -> None:
    site: SieveSite = await make_site('require "fileinto";\nfileinto "Missing";\n')
    await deliver(site)
    assert await count(site, "INBOX") == 1
    assert "Missing" not in [box.name for box in await site.store.list_mailboxes("alice")]


async def test_imap4flags_are_stored_on_the_message(make_site: Callable[..., object]) -> None:
    site: SieveSite = await make_site(
        """\
        require ["imap4flags", "fileinto", "mailbox", "copy"];
        addflag ["\\\\Flagged", "$Report"];
        fileinto :create :copy :flags "\\\\Seen" "Read";
        """
    )
    await deliver(site)
    (read,) = await site.store.messages("alice", "Read")
    assert (read.flags, read.keywords) == (F.SEEN, ())
    (kept,) = await site.store.messages("alice", "INBOX")  # the implicit keep: the variable
    assert (kept.flags, kept.keywords) == (F.FLAGGED, ("$Report",))


async def test_global_before_scripts_run_first_with_the_envelope(
    make_site: Callable[..., object],
) -> None:
    site: SieveSite = await make_site(
        'require "fileinto";\nfileinto "Personal";\n',
        before={
            "10-bounces.sieve": """\
                require ["envelope", "fileinto"];
                if envelope :is "from" "" { fileinto "Bounces"; }
                """,
            "20-noop.sieve": "# nothing to do\n",
        },
    )
    await site.store.create_mailbox("alice", "Bounces")
    await site.store.create_mailbox("alice", "Personal")
    await deliver(site, sender="")
    await deliver(site)
    assert await count(site, "Bounces") == 1
    assert await count(site, "Personal") == 1
    assert await count(site, "INBOX") == 0


async def test_an_address_test_on_a_hostile_from_header_files_the_message_without_a_traceback(
    make_site: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    """Thousands of nested comments in From once made the address parser recurse to death."""
    site: SieveSite = await make_site(
        'require "fileinto";\nif address :domain "from" "example.org" { fileinto "Work"; }\n'
    )
    hostile = b"From: " + b"(" * 5000 + b"x@example.org\r\nSubject: nested\r\n\r\nbody\r\n"
    with caplog.at_level(logging.WARNING):
        assert (await deliver(site, raw=hostile)).startswith("2.0.0 <alice@example.org> Saved")
    assert await count(site, "INBOX") + await count(site, "Work") == 1
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
