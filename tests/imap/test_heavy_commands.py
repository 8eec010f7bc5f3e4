"""Client-controlled parsing (SEARCH TEXT, BODYSTRUCTURE) runs off the loop, bounded per user.

One user searching the text of a few MB of mail from several connections at
once must not slow another user's LMTP delivery: before the work left the
event loop, each delivery waited for whole SEARCHes to finish.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import smtplib
import threading
import time
from collections.abc import Callable

import pytest

from mailpush.imap.heavy_work import PoolKind
from mailpush.store import NewMessage

from .conftest import PASSWORD, ImapStack, StackFactory

MESSAGES = 30
#: 100 kB bodies (4 MB in all) under headers full of RFC 2047 words, which SEARCH TEXT
#: decodes one by one: 0.3 s of parsing per SEARCH here, all of it on the loop before.
BODY_LINES = 1_250
NOTE_HEADERS = 500


def message(number: int) -> bytes:
    notes = b"".join(
        b"X-Note-%d: =?utf-8?q?caf=C3=A9_cr=C3=A8me_=E2=82=AC_%d?=\r\n" % (i, number)
        for i in range(NOTE_HEADERS)
    )
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod %d\r\n"
    body = b"".join(line % (number * BODY_LINES + i) for i in range(BODY_LINES))
    return (
        b"From: Joe <joe@example.net>\r\n"
        b"To: alice@example.org\r\n"
        b"Subject: Report %d\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n" % number
        + notes
        + b"\r\n"
        + body
    )


async def fill_inbox(stack: ImapStack, count: int = MESSAGES) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [NewMessage(message(n)) for n in range(count)])


def imap_session(
    stack: ImapStack,
    work: Callable[[imaplib.IMAP4], object],
    ready: threading.Barrier | None = None,
) -> object:
    client = imaplib.IMAP4(stack.host, stack.port)
    try:
        client.login("alice", PASSWORD)
        client.select("INBOX", readonly=True)
        if ready is not None:
            ready.wait(timeout=10)  # every client sends its command at the same moment
        return work(client)
    finally:
        client.logout()


def search_text(client: imaplib.IMAP4) -> object:
    # Only the first message's Subject matches: every other one is read whole.
    status, data = client.search(None, "TEXT", '"Report 0"')
    assert status == "OK", data
    return data


def fetch_structure(client: imaplib.IMAP4) -> object:
    status, data = client.fetch("1:*", "(BODYSTRUCTURE)")
    assert status == "OK", data
    return len(data)


def deliver_to_bob(stack: ImapStack, count: int) -> list[float]:
    """Seconds each of `count` LMTP deliveries to bob took, connection included."""
    took = []
    for number in range(count):
        started = time.perf_counter()
        with smtplib.LMTP("127.0.0.1", stack.lmtp_port) as lmtp:
            lmtp.sendmail(
                "joe@example.net",
                ["bob@example.org"],
                b"From: joe@example.net\r\nSubject: ping %d\r\n\r\nHello Bob\r\n" % number,
            )
        took.append(time.perf_counter() - started)
    return took


async def heavy_load_while_delivering(
    make_stack: StackFactory, pool: PoolKind
) -> tuple[list[float], list[object]]:
    """Four SEARCH TEXT and one BODYSTRUCTURE FETCH by alice; bob's deliveries timed."""
    stack = await make_stack(heavy_work_pool=pool)
    await fill_inbox(stack)
    await asyncio.to_thread(deliver_to_bob, stack, 1)  # bob's INBOX exists, LMTP is warm
    heavy = stack.imap.heavy
    clients = [
        asyncio.create_task(asyncio.to_thread(imap_session, stack, work))
        for work in (search_text, search_text, search_text, search_text, fetch_structure)
    ]
    while heavy.running("alice") < 4:
        await asyncio.sleep(0.005)
    took = await asyncio.to_thread(deliver_to_bob, stack, 8)
    still_busy = heavy.running("alice")
    results = await asyncio.gather(*clients)
    assert still_busy > 0, "the heavy commands ended before the deliveries: use more mail"
    return took, results


async def test_search_text_by_one_user_leaves_another_users_lmtp_fast(
    make_stack: StackFactory,
) -> None:
    took, results = await heavy_load_while_delivering(make_stack, "process")
    assert results[:4] == [[b"1"]] * 4
    assert results[4] == MESSAGES
    assert max(took) < 0.2, f"LMTP deliveries took {[round(t * 1000) for t in took]} ms"


async def test_fifth_heavy_command_of_a_user_waits_for_a_slot(stack: ImapStack) -> None:
    await fill_inbox(stack, 8)
    heavy = stack.imap.heavy
    ready = threading.Barrier(5)
    clients = [
        asyncio.create_task(asyncio.to_thread(imap_session, stack, search_text, ready))
        for _ in range(5)
    ]
    most_running = 0
    saw_waiting = False
    while not all(client.done() for client in clients):
        most_running = max(most_running, heavy.running("alice"))
        saw_waiting = saw_waiting or (
            heavy.running("alice") == 4 and heavy.waiting("alice") == 1
        )
        await asyncio.sleep(0.002)
    results = await asyncio.gather(*clients)
    assert most_running == 4
    assert saw_waiting
    assert results == [[b"1"]] * 5
    assert heavy.running("alice") == heavy.waiting("alice") == 0


async def test_fetch_of_parsed_items_over_large_messages_answers_from_the_pool(
    stack: ImapStack,
) -> None:
    await fill_inbox(stack, 3)

    def fetch(client: imaplib.IMAP4) -> object:
        items = "(ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.26> RFC822.SIZE)"
        status, data = client.uid("FETCH", "1:3", items)
        assert status == "OK", data
        return data

    data = await asyncio.to_thread(imap_session, stack, fetch)

    assert stack.imap.heavy.pool_started
    wire = b"".join(
        b"".join(part) if isinstance(part, tuple) else part
        for part in data  # type: ignore[attr-defined]
    )
    for number in range(3):
        size = len(message(number))
        assert b'(UID %d ENVELOPE (NIL "Report %d" (("Joe" NIL "joe"' % (number + 1, number) in wire
        assert b"BODY[HEADER.FIELDS (SUBJECT)] {21}Subject: Report %d\r\n\r\n" % number in wire
        assert b"RFC822.SIZE %d" % size in wire
    assert wire.count(b"BODY[TEXT]<0> {26}Lorem ipsum dolor sit amet") == 3


@pytest.mark.skipif(
    not os.environ.get("MAILPUSH_MEASURE_POOLS"),
    reason="a measurement, not a check: MAILPUSH_MEASURE_POOLS=1 compares the two pools",
)
async def test_measure_pool_kinds(make_stack: StackFactory) -> None:
    for pool in ("thread", "process"):
        took, _ = await heavy_load_while_delivering(make_stack, pool)  # type: ignore[arg-type]
        print(pool, [round(t * 1000) for t in took])
