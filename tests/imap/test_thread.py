"""THREAD=REFERENCES and THREAD=ORDEREDSUBJECT (RFC 5256 §3), through real clients.

The expected threads over tests/imap/sort_corpus.py are Dovecot 2.3.19's;
tests/dovecot/test_sort_thread_differential.py compares them with a running
Dovecot where one is installed.
"""

from __future__ import annotations

import asyncio
import imaplib
import random

import pytest
from imapclient import IMAPClient

from mailpush.imap.thread import ThreadFields, render_threads, thread_references
from mailpush.store import NewMessage

from .conftest import PASSWORD, ImapStack
from .test_sort import with_corpus


async def test_imapclient_threads_by_references_as_dovecot_does(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> object:
        assert client.has_capability("THREAD=REFERENCES")
        return client.thread("REFERENCES")

    threads = await with_corpus(stack, work)

    assert threads == (
        # 2 and 3 reply by References and In-Reply-To; 12 and 4 join by subject.
        (1, (2, 3), (12,), (4,)),
        # 6 and 7 reply to a message that is not here; 11 has their subject.
        ((11,), (7,), (6,)),
        (8,),  # a duplicate Message-ID threads alone
        (14,),
        (15, 10, 9),  # the References loop is cut; "loop" (15) is the oldest non-reply
        (5,),
        (13,),
    )


async def test_orderedsubject_groups_by_base_subject_in_date_order(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[object, object]:
        assert client.has_capability("THREAD=ORDEREDSUBJECT")
        imap = client._imap
        typ, data = imap.thread("ORDEREDSUBJECT", "UTF-8", "SUBJECT", "loop")
        assert typ == "OK"
        return client.thread("ORDEREDSUBJECT"), data

    threads, raw = await with_corpus(stack, work)

    assert threads == (
        (1, (2,), (3,), (12,), (4,)), (11, 7), (6, 13), (8,), (9, (10,), (15,)), (14,), (5,),
    )
    assert raw == [b"(9 (10)(15))"]


async def test_uid_thread_answers_uids_and_thread_answers_sequence_numbers(
    stack: ImapStack,
) -> None:
    def work(client: IMAPClient) -> tuple[object, object, object]:
        client.delete_messages([1])
        client.expunge()
        imap = client._imap
        return (
            imap.thread("REFERENCES", "UTF-8", "SUBJECT", "plan"),
            imap.uid("THREAD", "REFERENCES", "UTF-8", "SUBJECT", "plan"),
            imap.thread("REFERENCES", "UTF-8", "NOT", "ALL"),
        )

    by_seq, by_uid, empty = await with_corpus(stack, work)

    # Without 1, 2 (and 3 under it) replies to a missing message, and 2, 12 and 4 are all
    # replies to "Quarterly plan": a dummy holds them.
    assert by_uid == ("OK", [b"((2 3)(12)(4))"])
    assert by_seq == ("OK", [b"((1 2)(11)(3))"])
    assert empty == ("OK", [b""])  # `* THREAD`, nothing after it


async def test_thread_refuses_an_unknown_algorithm_and_charset(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[str, object]:
        imap = client._imap
        try:
            imap.thread("REFS", "UTF-8", "ALL")
            bad = "accepted"
        except imaplib.IMAP4.error as exc:
            bad = str(exc)
        return bad, imap.thread("REFERENCES", "ISO-2022-JP", "ALL")

    bad, charset = await with_corpus(stack, work)

    assert "Unknown thread algorithm" in bad
    assert charset[0] == "NO" and b"[BADCHARSET" in charset[1][0]


async def test_a_long_reply_chain_renders_without_recursion(stack: ImapStack) -> None:
    count = 3_000
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [
        NewMessage(
            b"Message-ID: <m%d@x.org>\r\nIn-Reply-To: <m%d@x.org>\r\nSubject: chain\r\n\r\n"
            % (n, n - 1)
        )
        for n in range(count)
    ])  # fmt: skip

    def work() -> object:
        client = imaplib.IMAP4(stack.host, stack.port)
        try:
            client.login("alice", PASSWORD)
            client.select("INBOX", readonly=True)
            return client.thread("REFERENCES", "UTF-8", "ALL")
        finally:
            client.logout()

    typ, data = await asyncio.to_thread(work)

    assert typ == "OK"
    assert data == [b"(" + b" ".join(b"%d" % n for n in range(1, count + 1)) + b")"]
    assert stack.imap.heavy.pool_started


def fields(number: int, message_id: str | None, *references: str, subject: str = "",
           reply: bool = False, date: int = 0) -> ThreadFields:  # fmt: skip
    return ThreadFields(number, number, message_id, references, subject, reply, True,
                        date or number)  # fmt: skip


def test_a_dummy_with_one_child_gives_way_to_it() -> None:
    roots = thread_references([fields(1, "<a@x>", "<gone@x>"), fields(2, "<b@x>", "<a@x>")])
    assert render_threads(roots) == "(1 2)"


def test_siblings_sort_by_date_then_uid_under_their_nearest_present_ancestor() -> None:
    roots = thread_references([
        fields(1, "<a@x>"),
        fields(2, "<c@x>", "<a@x>", "<missing@x>", date=50),
        fields(3, "<d@x>", "<a@x>", date=10),
        fields(4, "<e@x>", "<a@x>", date=10),
    ])  # fmt: skip
    assert render_threads(roots) == "(1 (3)(4)(2))"


def test_non_replies_with_one_subject_share_a_dummy_and_a_reply_joins_it() -> None:
    roots = thread_references([
        fields(1, "<a@x>", subject="PLAN"),
        fields(2, "<b@x>", subject="PLAN"),
        fields(3, "<c@x>", subject="PLAN", reply=True),
    ])  # fmt: skip
    assert render_threads(roots) == "((1)(2)(3))"



@pytest.mark.parametrize("seed", range(20))
def test_every_thread_lists_replies_by_date_then_uid_after_subjects_are_gathered(
    seed: int,
) -> None:
    # Random references (to present and missing messages) and few subjects, so that
    # subject gathering merges many roots: every list of replies still ends sorted.
    generator = random.Random(seed)
    messages = []
    for number in range(1, 301):
        parents = generator.sample(range(1, 400), generator.randrange(3))
        references = tuple(f"<{n}@x>" for n in parents if n != number)
        messages.append(fields(
            number, f"<{number}@x>", *references, subject=generator.choice("ABCDEFG"),
            reply=generator.random() < 0.4, date=generator.randrange(1, 50),
        ))  # fmt: skip

    roots = thread_references(messages)

    pending = list(roots)
    seen = 0
    while pending:
        node = pending.pop()
        seen += node.fields is not None
        keys = [(child.fields.date, child.fields.uid) for child in node.children
                if child.fields is not None]  # fmt: skip
        assert len(keys) == len(node.children), "a dummy below the top level"
        assert keys == sorted(keys)
        pending.extend(node.children)
    assert seen == len(messages)
