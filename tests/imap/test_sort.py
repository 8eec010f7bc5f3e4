"""SORT and UID SORT (RFC 5256, RFC 5957 DISPLAY keys, RFC 5267 ESORT), through real clients.

The expected orders over tests/imap/sort_corpus.py are the ones Dovecot
2.3.19 gives; tests/dovecot/test_sort_thread_differential.py checks every
sort key against a running Dovecot where one is installed.
"""

from __future__ import annotations

import asyncio
import imaplib
import statistics
from collections.abc import Callable
from typing import TypeVar

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError

from mailpush.imap.sort_memory import FactsCache
from mailpush.store import NewMessage

from .conftest import PASSWORD, ImapStack
from .sort_corpus import append_corpus
from .test_heavy_commands import deliver_to_bob, fill_inbox

T = TypeVar("T")


async def with_corpus(stack: ImapStack, work: Callable[[IMAPClient], T]) -> T:
    def run() -> T:
        client = IMAPClient(stack.host, port=stack.port, ssl=False, timeout=10)
        client.login("alice", PASSWORD)
        try:
            append_corpus(client._imap)
            client.select_folder("INBOX")
            return work(client)
        finally:
            client.logout()

    return await asyncio.to_thread(run)


async def test_imapclient_sorts_by_each_key_as_dovecot_does(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> dict[str, list[int]]:
        assert client.has_capability("SORT")
        assert client.has_capability("SORT=DISPLAY")
        keys = ["SUBJECT", "DATE", "FROM", "DISPLAYFROM", "TO", "DISPLAYTO", "CC", "ARRIVAL",
                "REVERSE SIZE", "SUBJECT REVERSE DATE"]  # fmt: skip
        return {key: client.sort(key.split()) for key in keys}

    orders = await with_corpus(stack, work)

    # Missing subjects first, "été" (E + accent) before "Lost thread", decorations ignored.
    assert orders["SUBJECT"] == [6, 13, 8, 5, 9, 10, 15, 7, 11, 1, 2, 3, 4, 12, 14]
    # Date in UTC; missing (4, 13) or unparsable (5) Date sorts by arrival; 1 and 11 tie.
    assert orders["DATE"] == [1, 11, 2, 3, 7, 6, 8, 9, 10, 12, 14, 15, 4, 5, 13]
    # The first From's local part: amy@example.org, amy@example.com, amy@example.net tie.
    assert orders["FROM"] == [13, 1, 4, 11, 2, 6, 7, 8, 3, 9, 10, 12, 14, 15, 5]
    # The display name, else the address; a comment stands in for a name (14: "Gus Grey").
    assert orders["DISPLAYFROM"] == [13, 1, 11, 4, 2, 6, 7, 8, 9, 10, 3, 12, 14, 15, 5]
    assert orders["TO"] == [2, 6, 7, 8, 9, 10, 12, 13, 14, 15, 3, 5, 1, 4, 11]
    assert orders["DISPLAYTO"] == [2, 6, 7, 8, 9, 10, 12, 13, 14, 15, 3, 5, 4, 1, 11]
    assert orders["CC"] == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 2]
    assert orders["ARRIVAL"] == [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 3, 2, 1]
    assert orders["REVERSE SIZE"] == [12, 3, 2, 7, 10, 5, 9, 6, 1, 11, 14, 8, 15, 4, 13]
    # REVERSE applies to its key only; equal messages stay in sequence order.
    assert orders["SUBJECT REVERSE DATE"] == [13, 6, 8, 5, 15, 10, 9, 7, 11, 4, 12, 3, 2, 1, 14]


async def test_sort_answers_sequence_numbers_and_searches_first(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[object, object, object]:
        imap = client._imap
        client.delete_messages([1])
        client.expunge()
        plain = imap.sort("(DATE)", "UTF-8", "SUBJECT", "plan")
        uids = imap.uid("SORT", "(DATE)", "UTF-8", "SUBJECT", "plan")
        empty = imap.sort("(SUBJECT)", "UTF-8", "NOT", "ALL")
        return plain, uids, empty

    plain, uids, empty = await with_corpus(stack, work)

    # Message 1 is gone: UIDs 2 3 12 4 are now sequence numbers 1 2 11 3.
    assert plain == ("OK", [b"1 2 11 3"])
    assert uids == ("OK", [b"2 3 12 4"])
    assert empty == ("OK", [b""])  # `* SORT` with no numbers


async def test_esort_returns_min_max_count_and_all_in_sort_order(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[object, object]:
        assert client.has_capability("ESORT")
        imap = client._imap
        typ, _ = imap.uid("SORT", "RETURN", "(COUNT ALL MIN MAX)", "(SUBJECT)", "UTF-8", "ALL")
        assert typ == "OK"
        everything = imap.response("ESEARCH")
        typ, _ = imap.uid("SORT", "RETURN", "(COUNT MIN)", "(DATE)", "UTF-8", "NOT", "ALL")
        assert typ == "OK"
        return everything, imap.response("ESEARCH")

    everything, none = await with_corpus(stack, work)

    assert everything[1][0].endswith(
        b" UID MIN 6 MAX 14 ALL 6,13,8,5,9:10,15,7,11,1:4,12,14 COUNT 15"
    )
    assert none[1][0].endswith(b" UID COUNT 0")  # no MIN when nothing matched


async def test_sort_refuses_what_dovecot_refuses(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> list[str]:
        imap = client._imap
        replies = []
        for arguments in (("(FOO)", "UTF-8", "ALL"), ("()", "UTF-8", "ALL"),
                          ("(REVERSE)", "UTF-8", "ALL"), ("SUBJECT", "UTF-8", "ALL"),
                          ("(SUBJECT)", "UTF-8")):  # fmt: skip
            try:
                imap._simple_command("SORT", *arguments)  # as written, no parentheses added
            except imaplib.IMAP4.error as exc:
                replies.append(str(exc))
        typ, data = imap.sort("(SUBJECT)", "KOI8-R", "ALL")
        replies.append(f"{typ} {data[0]!r}")
        return replies

    replies = await with_corpus(stack, work)

    assert [reply.split("command SORT: ")[-1].rstrip("']") for reply in replies[:5]] == [
        "Unknown sort argument: FOO", "Empty sort program", "Sort list ends with REVERSE",
        "Invalid sort argument", "Missing search parameters",
    ]  # fmt: skip
    assert replies[5].startswith("NO b'[BADCHARSET (UTF-8 US-ASCII)]")


async def test_sort_needs_a_selected_mailbox(stack: ImapStack) -> None:
    def work() -> str:
        client = IMAPClient(stack.host, port=stack.port, ssl=False, timeout=10)
        client.login("alice", PASSWORD)
        try:
            client.sort(["DATE"])
        except (CapabilityError, IMAPClient.Error) as exc:
            return str(exc)
        finally:
            client.logout()
        return "accepted"

    assert "No mailbox selected" in await asyncio.to_thread(work)


async def test_sort_over_bodies_runs_in_the_pool_and_leaves_another_user_fast(
    stack: ImapStack,
) -> None:
    await fill_inbox(stack)
    await asyncio.to_thread(deliver_to_bob, stack, 1)
    heavy = stack.imap.heavy

    def sort_text() -> object:
        client = imaplib.IMAP4(stack.host, stack.port)
        try:
            client.login("alice", PASSWORD)
            client.select("INBOX", readonly=True)
            return client.sort("(REVERSE SUBJECT)", "UTF-8", "TEXT", '"Report 1"')
        finally:
            client.logout()

    clients = [asyncio.create_task(asyncio.to_thread(sort_text)) for _ in range(4)]
    while heavy.running("alice") < 4:
        await asyncio.sleep(0.005)
    took = await asyncio.to_thread(deliver_to_bob, stack, 8)
    still_busy = heavy.running("alice")
    results = await asyncio.gather(*clients)

    assert still_busy > 0, "the SORTs ended before the deliveries: use more mail"
    # "Report 1" is in the subjects of 2 and 11..20 ("Report 1", "Report 10".."Report 19").
    assert results == [("OK", [b"20 19 18 17 16 15 14 13 12 11 2"])] * 4
    assert heavy.pool_started
    # The median, not the slowest: one spike of a shared machine is not the loop blocking.
    assert statistics.median(took) < 0.2, f"LMTP took {[round(t * 1000) for t in took]} ms"


async def test_a_small_sort_by_arrival_reads_no_message(stack: ImapStack) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [
        NewMessage(b"Subject: b\r\n\r\nx\r\n", internal_date=2_000_000_000),
        NewMessage(b"Subject: a\r\n\r\nx\r\n", internal_date=1_000_000_000),
    ])  # fmt: skip

    def work() -> object:
        client = IMAPClient(stack.host, port=stack.port, ssl=False, timeout=10)
        client.login("alice", PASSWORD)
        try:
            client.select_folder("INBOX")
            return client.sort(["ARRIVAL"]), client.sort(["REVERSE", "SUBJECT"])
        finally:
            client.logout()

    assert await asyncio.to_thread(work) == ([2, 1], [1, 2])
    assert not stack.imap.heavy.pool_started


@pytest.mark.parametrize("count", [2_500])
async def test_many_matches_are_ordered_in_the_pool(stack: ImapStack, count: int) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [
        NewMessage(b"Subject: %d\r\n\r\n" % (count - n), internal_date=1_000_000_000 + n)
        for n in range(count)
    ])  # fmt: skip

    def work() -> object:
        client = IMAPClient(stack.host, port=stack.port, ssl=False, timeout=30)
        client.login("alice", PASSWORD)
        try:
            client.select_folder("INBOX")
            return client.sort(["REVERSE", "ARRIVAL"])
        finally:
            client.logout()

    assert await asyncio.to_thread(work) == list(range(count, 0, -1))
    assert stack.imap.heavy.pool_started


async def test_a_second_sort_or_thread_reads_no_mail(stack: ImapStack) -> None:
    # 30 messages with 30 kB headers: reading them needs the pool (over INLINE_BYTES).
    await fill_inbox(stack)
    heavy = stack.imap.heavy

    def run(*commands: tuple[str, ...]) -> list[object]:
        client = imaplib.IMAP4(stack.host, stack.port)
        try:
            client.login("alice", PASSWORD)
            client.select("INBOX", readonly=True)
            return [client._simple_command(*command)[0] for command in commands]
        finally:
            client.logout()

    first = await asyncio.to_thread(run, ("SORT", "(SUBJECT)", "UTF-8", "ALL"))
    assert first == ["OK"] and heavy.pool_started
    heavy.close()  # a fresh pool starts only if more mail is parsed

    again = await asyncio.to_thread(
        run, ("SORT", "(REVERSE DATE DISPLAYFROM)", "UTF-8", "ALL"),
        ("THREAD", "REFERENCES", "UTF-8", "UNSEEN"), ("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL"),
    )  # fmt: skip

    assert again == ["OK", "OK", "OK"]
    assert not heavy.pool_started


async def test_remembered_orders_and_threads_follow_new_and_expunged_mail(
    stack: ImapStack,
) -> None:
    # The server remembers each mailbox's last orders and threads (sort_memory): whatever
    # changed meanwhile, an answer from that memory is the one a cold server gives.
    commands: list[Callable[[imaplib.IMAP4], object]] = [
        lambda imap: imap.sort("(SUBJECT)", "UTF-8", "UID", "1:10"),
        lambda imap: imap.sort("(SUBJECT)", "UTF-8", "ALL"),
        lambda imap: imap.sort("(SUBJECT)", "UTF-8", "UNDELETED"),
        lambda imap: imap.uid("SORT", "(SUBJECT)", "UTF-8", "ALL"),
        lambda imap: imap.sort("(REVERSE DATE FROM)", "UTF-8", "ALL"),
        lambda imap: imap.sort("(ARRIVAL)", "UTF-8", "ALL"),
        lambda imap: imap.thread("REFERENCES", "UTF-8", "ALL"),
        lambda imap: imap.uid("THREAD", "REFERENCES", "UTF-8", "ALL"),
        lambda imap: imap.thread("ORDEREDSUBJECT", "UTF-8", "NOT", "SUBJECT", "loop"),
    ]

    def cold() -> list[object]:
        """Each answer from a new connection to a server that remembers nothing yet."""
        found = []
        kept = stack.imap.sort_facts
        for command in commands:
            stack.imap.sort_facts = FactsCache()
            imap = imaplib.IMAP4(stack.host, stack.port)
            try:
                imap.login("alice", PASSWORD)
                imap.select("INBOX", readonly=True)
                found.append(command(imap))
            finally:
                imap.logout()
                stack.imap.sort_facts = kept
        return found

    def work(client: IMAPClient) -> None:
        imap = client._imap

        def answers() -> list[object]:
            return [command(imap) for command in commands]

        first = answers()
        assert answers() == first == cold()
        reply = (b"Message-ID: <late@example.org>\r\nReferences: <plan-1@example.org>\r\n"
                 b"Subject: Re: Quarterly plan\r\nDate: Tue, 03 Jan 2023 09:00:00 +0000\r\n"
                 b"From: Al <al@example.org>\r\n\r\nlate\r\n")  # fmt: skip
        assert imap.append("INBOX", None, None, reply)[0] == "OK"
        assert imap.noop()[0] == "OK"  # the session numbers the new message
        grown = answers()
        assert grown != first
        assert answers() == grown == cold()
        client.delete_messages([1, 3])
        client.expunge()
        shrunk = answers()
        assert answers() == shrunk == cold()

    await with_corpus(stack, work)
