"""LIST and LSUB stay cheap whatever the client asks: hostile patterns, many mailboxes.

A pattern is matched in linear time (no regex backtracking), `\\HasChildren`
is computed once per command, and another user's delivery is not held up
while one user lists 10,000 mailboxes. A pattern that is not modified UTF-7
matches nothing (OK, as Dovecot), and CREATE refuses names and counts beyond
the limits Dovecot has.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import smtplib
import statistics
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailpush.errors import TooManyMailboxesError
from mailpush.imap.list_pattern import ListPattern
from mailpush.server import MailpushServer
from mailpush.store import DeliveryTarget, SqliteStore
from tests.conftest import free_port, imap_listener

from .conftest import ImapStack

#: 100 top-level folders with 99 children each: 10,000 mailboxes besides INBOX.
TEN_THOUSAND = [(f"p{i:02d}", None) for i in range(100)] + [
    (f"p{i:02d}/c{j:02d}", None) for i in range(100) for j in range(99)
]
MESSAGE = b"From: a@example.org\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def login(port: int, user: str = "alice") -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    client.login(user, "secret")
    return client


def command(client: imaplib.IMAP4, line: str) -> list[bytes]:
    """Send one raw command line; every line the server answers, tagged one last."""
    tag = client._new_tag().decode()  # type: ignore[attr-defined]
    client.send(f"{tag} {line}\r\n".encode())
    lines = []
    while True:
        answer = client.readline()
        assert answer, "connection closed"
        lines.append(answer)
        if answer.startswith(tag.encode() + b" "):
            return lines


def listed(lines: list[bytes]) -> dict[str, str]:
    """Mailbox name → attributes of the untagged LIST/LSUB lines."""
    found = {}
    for line in lines[:-1]:
        match = re.match(rb'\* (?:LIST|LSUB) \(([^)]*)\) "/" "?([^"\r]*)"?\r\n', line)
        assert match, line
        found[match.group(2).decode()] = match.group(1).decode()
    return found


def reference_pattern(pattern: str) -> re.Pattern[str]:
    """The regex translation LIST used before: correct, but it backtracks."""
    if pattern[:5].upper() == "INBOX" and (len(pattern) == 5 or pattern[5] == "/"):
        pattern = "INBOX" + pattern[5:]
    parts = [".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts) + r"\Z", re.S)


# --- the matcher ------------------------------------------------------------------


NAMES = st.text(alphabet="ab/", max_size=10) | st.sampled_from(["INBOX", "INBOX/a", "inbox"])


@settings(max_examples=500, deadline=None)
@given(
    pattern=st.text(alphabet="ab/*%", max_size=8) | st.sampled_from(["inbox", "InBox/%", "inbox*"]),
    names=st.lists(NAMES, max_size=6),
)
@example(pattern="*a%b", names=["xa/ab"])
@example(pattern="%/%", names=["a/b"])
@example(pattern="a%*%b", names=["a/b"])
@example(pattern="%a%", names=["aa", "aa/a", "aab"])
def test_list_pattern_matches_exactly_what_the_regex_translation_matches(
    pattern: str, names: list[str]
) -> None:
    matcher = ListPattern(pattern)  # one matcher for many names, as LIST uses it
    reference = reference_pattern(pattern)
    for name in sorted(names) + names:
        assert matcher.matches(name) == bool(reference.match(name)), name


def test_list_pattern_with_many_stars_costs_one_pass_over_the_name() -> None:
    started = time.perf_counter()
    assert not ListPattern("*a" * 40 + "b").matches("a" * 1000)
    assert ListPattern("*a" * 40).matches("a" * 1000)
    assert not ListPattern("%a" * 40 + "%").matches("a" * 500 + "/" + "a" * 500)
    assert time.perf_counter() - started < 0.5


def test_list_pattern_longer_than_a_name_is_refused_without_matching() -> None:
    assert not ListPattern("*a" * 5000).matches("a" * 1024)


# --- LIST and LSUB over IMAP ------------------------------------------------------------


async def test_list_pattern_with_many_stars_answers_quickly(stack: ImapStack) -> None:
    def run() -> tuple[float, list[bytes], list[bytes]]:
        client = login(stack.port)
        assert client.create("a" * 100)[0] == "OK"
        started = time.perf_counter()
        hostile = command(client, 'LIST "" "*a*a*a*a*a*a*a*ab"')
        elapsed = time.perf_counter() - started
        matching = command(client, 'LIST "" "*a*a*a*a*a*a*a*a"')
        client.logout()
        return elapsed, hostile, matching

    elapsed, hostile, matching = await asyncio.to_thread(run)
    assert hostile[-1].split(b" ")[1] == b"OK" and len(hostile) == 1
    assert listed(matching) == {"a" * 100: "\\HasNoChildren"}
    assert elapsed < 0.5


async def test_list_of_ten_thousand_mailboxes_answers_within_two_seconds(
    stack: ImapStack,
) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None), *TEN_THOUSAND])

    def run() -> tuple[float, list[bytes]]:
        client = login(stack.port)
        started = time.perf_counter()
        lines = command(client, 'LIST "" "*"')
        elapsed = time.perf_counter() - started
        client.logout()
        return elapsed, lines

    elapsed, lines = await asyncio.to_thread(run)
    boxes = listed(lines)
    assert {name for name, _ in TEN_THOUSAND} <= boxes.keys()
    assert boxes["p00"] == "\\HasChildren"
    assert boxes["p99"] == "\\HasChildren"
    assert boxes["p42/c17"] == "\\HasNoChildren"
    assert boxes["INBOX"] == "\\HasNoChildren"
    assert elapsed < 2.0


async def test_lsub_of_ten_thousand_subscriptions_answers_within_half_a_second(
    stack: ImapStack,
) -> None:
    await stack.store.ensure_mailboxes("alice", TEN_THOUSAND)
    for name, _ in TEN_THOUSAND[100:]:
        await stack.store.subscribe("alice", name)

    def run() -> tuple[float, list[bytes], list[bytes]]:
        client = login(stack.port)
        started = time.perf_counter()
        tops = command(client, 'LSUB "" "%"')
        # No parent matches this one, so none is ever shown: each is looked up again.
        leaves = command(client, 'LSUB "" "*/c0%"')
        elapsed = time.perf_counter() - started
        client.logout()
        return elapsed, tops, leaves

    elapsed, tops, leaves = await asyncio.to_thread(run)
    # Only children are subscribed: `%` shows each unsubscribed parent as \Noselect.
    assert len(listed(tops)) == 100 and listed(tops)["p07"] == "\\Noselect"
    assert len(listed(leaves)) == 1000 and listed(leaves)["p07/c03"] == ""
    assert elapsed < 0.5


async def test_list_with_a_pattern_that_is_not_modified_utf7_matches_nothing(
    stack: ImapStack,
) -> None:
    def run() -> list[list[bytes]]:
        client = login(stack.port)
        client.create("Reports")
        client.subscribe("Reports")
        answers = [
            command(client, 'LIST "" "&Jjo"'),
            command(client, 'LIST "" "&AGE-*"'),
            command(client, 'LIST "&Jjo" "*"'),
            command(client, 'LSUB "" "&Jjo"'),
            command(client, 'LIST "" "Rep*"'),
        ]
        client.logout()
        return answers

    *invalid, valid = await asyncio.to_thread(run)
    for answer in invalid:
        assert len(answer) == 1 and answer[0].split(b" ")[1] == b"OK", answer
    assert listed(valid) == {"Reports": "\\HasNoChildren"}


# --- another user is not held up ---------------------------------------------------------


def deliver_to_bob(port: int) -> float:
    started = time.perf_counter()
    with smtplib.LMTP("127.0.0.1", port) as lmtp:
        lmtp.sendmail("a@example.org", ["bob@example.org"], MESSAGE)
    return time.perf_counter() - started


async def test_lmtp_delivery_for_another_user_is_fast_while_one_user_lists_a_lot(
    make_server: Callable[..., object], tmp_path: Path
) -> None:
    imap_port = free_port()
    server = await make_server(  # type: ignore[operator]
        imap_listener(imap_port)
        + textwrap.dedent(
            """\
            protocols = imap lmtp
            mail_fsync = never
            """
        )
    )
    assert isinstance(server, MailpushServer) and isinstance(server.store, SqliteStore)
    lmtp_port = next(item.port for item in server.listeners if item.service == "lmtp")
    await server.store.ensure_mailboxes("alice", [("INBOX", None), ("a" * 100, None)])
    await server.store.ensure_mailboxes("alice", TEN_THOUSAND)
    # Bob's INBOX exists before anything is timed.
    await asyncio.to_thread(deliver_to_bob, lmtp_port)
    listing = threading.Event()
    done = threading.Event()

    def attack() -> int:
        client = login(imap_port)
        rounds = 0
        listing.set()
        while not done.is_set() and rounds < 20:
            assert command(client, 'LIST "" "*"')[-1].split(b" ")[1] == b"OK"
            assert command(client, 'LIST "" "*a*a*a*a*a*a*a*ab"')[-1].split(b" ")[1] == b"OK"
            rounds += 1
        client.logout()
        return rounds

    def deliveries() -> list[float]:
        listing.wait(10)
        time.sleep(0.05)
        try:
            return [deliver_to_bob(lmtp_port) for _ in range(5)]
        finally:
            done.set()

    rounds, times = await asyncio.gather(asyncio.to_thread(attack), asyncio.to_thread(deliveries))
    assert rounds >= 1
    assert statistics.median(times) < 0.2, times
    assert max(times) < 0.5, times


# --- CREATE limits ---------------------------------------------------------------------


async def test_create_beyond_quota_mailbox_count_answers_no_limit(
    make_server: Callable[..., object],
) -> None:
    imap_port = free_port()
    await make_server(  # type: ignore[operator]
        imap_listener(imap_port)
        + textwrap.dedent(
            """\
            protocols = imap lmtp
            quota_mailbox_count = 8
            """
        )
    )

    def run() -> tuple[list[list[bytes]], list[bytes], list[list[bytes]]]:
        client = login(imap_port)
        command(client, "SELECT INBOX")  # INBOX (and the special-use folders) exist now
        existing = len(listed(command(client, 'LIST "" "*"')))
        allowed = [command(client, f"CREATE box{i}/deeper") for i in range(8 - existing)]
        refused = command(client, "CREATE one-too-many")
        after_delete = [command(client, "DELETE box0/deeper"), command(client, "CREATE again")]
        client.logout()
        return allowed, refused, after_delete

    allowed, refused, after_delete = await asyncio.to_thread(run)
    assert allowed, "the special-use folders alone reach the limit"
    for answer in allowed + after_delete:
        assert answer[-1].split(b" ")[1] == b"OK", answer
    assert refused[-1].split(b" ", 1)[1] == b"NO [LIMIT] Maximum number of mailboxes reached\r\n"


async def test_create_refuses_a_level_longer_than_255_bytes_as_dovecot(stack: ImapStack) -> None:
    def run() -> list[list[bytes]]:
        client = login(stack.port)
        answers = [
            command(client, 'CREATE "' + "x" * 255 + '"'),
            command(client, 'CREATE "' + "y" * 256 + '"'),
            command(client, 'CREATE "top/' + "z" * 256 + '/leaf"'),
            command(client, 'CREATE "' + "&AOk-" * 128 + '"'),  # é × 128: 256 bytes of UTF-8
            command(client, 'RENAME "' + "x" * 255 + '" "' + "w" * 256 + '"'),
        ]
        client.logout()
        return answers

    created, *refused = await asyncio.to_thread(run)
    assert created[-1].split(b" ")[1] == b"OK"
    for answer in refused:
        assert answer[-1].split(b" ", 3)[1:3] == [b"NO", b"[CANNOT]"], answer
        assert b"255 bytes" in answer[-1]


async def test_delivery_that_may_not_create_its_mailbox_saves_into_inbox(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "mail.db", fsync="never", mailbox_count_limit=2)
    store.open()
    try:
        await store.ensure_mailboxes("alice", [("INBOX", None)])
        await store.create_mailbox("alice", "Lists")
        with pytest.raises(TooManyMailboxesError):
            await store.create_mailbox("alice", "More")
        saved = await store.deliver("alice", MESSAGE, [DeliveryTarget("News", create=True)])
        both = await store.deliver(
            "alice", MESSAGE, [DeliveryTarget("News", create=True), DeliveryTarget("INBOX")]
        )
        await store.delete_mailbox("alice", "Lists")
        too_long = await store.deliver("alice", MESSAGE, [DeliveryTarget("x" * 256, create=True)])
        names = {box.name for box in await store.list_mailboxes("alice")}
    finally:
        await asyncio.to_thread(store.close)
    assert [s.mailbox for s in saved] == ["INBOX"]
    assert [s.mailbox for s in both] == ["INBOX"]  # one copy, not two
    assert [s.mailbox for s in too_long] == ["INBOX"]  # a name CREATE would refuse
    assert names == {"INBOX"}
