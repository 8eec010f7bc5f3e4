"""What the server keeps of SORT and THREAD between commands (mailpush.imap.sort_memory).

The protocol tests in test_sort.py and test_thread.py check that answers
given from this memory equal freshly computed ones; these pin down when it
may be used and how much of it is kept.
"""

from __future__ import annotations

from mailpush.imap.sort_fields import SortCriterion, message_facts
from mailpush.imap.sort_memory import EXPUNGED_SLACK, FactsCache, MailboxMemory

SUBJECT = (SortCriterion("SUBJECT"),)


def test_a_sort_over_ordered_messages_filters_the_remembered_order() -> None:
    memory = MailboxMemory()
    memory.remember_order(SUBJECT, frozenset({1, 2, 3, 4}), [3, 1, 4, 2])

    assert memory.order_of(SUBJECT, frozenset({1, 2, 3, 4})) == ([3, 1, 4, 2], [])
    assert memory.order_of(SUBJECT, frozenset({2, 3})) == ([3, 2], [])
    assert memory.order_of(SUBJECT, frozenset()) == ([], [])


def test_messages_an_order_does_not_hold_are_left_to_place() -> None:
    memory = MailboxMemory()
    memory.remember_order(SUBJECT, frozenset({1, 2, 3}), [2, 3, 1])

    # 3 was expunged, 5 and 4 came since.
    assert memory.order_of(SUBJECT, frozenset({1, 2, 5, 4})) == ([2, 1], [4, 5])


def test_an_order_is_not_used_for_another_program() -> None:
    memory = MailboxMemory()
    memory.remember_order(SUBJECT, frozenset({1, 2}), [2, 1])

    assert memory.order_of((SortCriterion("SUBJECT", reverse=True),), frozenset({1})) is None


def test_a_mailbox_remembers_its_last_eight_sort_programs() -> None:
    memory = MailboxMemory()
    programs = [(SortCriterion("SIZE"),) * n for n in range(1, 10)]
    for program in programs:
        memory.remember_order(program, frozenset({1}), [1])

    assert memory.order_of(programs[0], frozenset({1})) is None
    assert all(memory.order_of(p, frozenset({1})) == ([1], []) for p in programs[1:])


def test_a_thread_answer_is_reused_only_for_the_same_matches_numbered_the_same() -> None:
    memory = MailboxMemory()
    memory.remember_thread(("REFERENCES", False), [5, 7], [1, 2], "(1 2)")

    assert memory.thread_answer(("REFERENCES", False), [5, 7], [1, 2]) == "(1 2)"
    assert memory.thread_answer(("REFERENCES", False), [5, 7], [1, 3]) is None  # renumbered
    assert memory.thread_answer(("REFERENCES", False), [5, 7, 8], [1, 2, 3]) is None
    assert memory.thread_answer(("ORDEREDSUBJECT", False), [5, 7], [1, 2]) is None
    assert memory.thread_answer(("REFERENCES", True), [5, 7], [5, 7]) is None


def test_mailboxes_are_forgotten_least_recently_used_beyond_the_capacity() -> None:
    cache = FactsCache(capacity=5)
    facts = message_facts(b"Subject: Re: x\r\n", 1, 2)
    for name in ("A", "B"):
        memory = cache.mailbox("alice", name, 7)
        memory.facts.update({1: facts, 2: facts})
        cache.settle("alice", name, 7, memory)
    assert cache.mailbox("alice", "A", 7).facts  # A is now the most recently used

    memory = cache.mailbox("alice", "C", 7)
    memory.facts.update({1: facts, 2: facts})
    cache.settle("alice", "C", 7, memory)

    assert not cache.mailbox("alice", "B", 7).facts
    assert cache.mailbox("alice", "A", 7).facts[1] == facts
    assert (facts.base_subject, facts.reply, facts.date) == ("X", True, 1)


def test_orders_and_threads_weigh_like_facts() -> None:
    cache = FactsCache(capacity=100)
    memory = cache.mailbox("alice", "INBOX", 7)
    memory.remember_order(SUBJECT, frozenset(range(10)), list(range(10)))
    memory.remember_thread(("REFERENCES", True), list(range(5)), list(range(5)), "")
    cache.settle("alice", "INBOX", 7, memory)

    assert cache.weight == 15


def test_a_mailbox_heavier_than_the_capacity_is_not_kept() -> None:
    cache = FactsCache(capacity=3)
    memory = cache.mailbox("alice", "INBOX", 7)
    memory.remember_order(SUBJECT, frozenset(range(4)), list(range(4)))
    cache.settle("alice", "INBOX", 7, memory)

    assert len(cache) == 0 and cache.weight == 0
    assert cache.mailbox("alice", "INBOX", 7) is not memory


def test_a_new_uidvalidity_starts_with_nothing() -> None:
    cache = FactsCache()
    memory = cache.mailbox("alice", "INBOX", 7)
    memory.facts[1] = message_facts(b"Subject: x\r\n", 1, 2)

    assert not cache.mailbox("alice", "INBOX", 8).facts
    assert cache.mailbox("alice", "INBOX", 7).facts


def test_facts_of_expunged_mail_go_once_they_are_many() -> None:
    memory = MailboxMemory()
    facts = message_facts(b"Subject: x\r\n", 1, 2)
    memory.facts.update((uid, facts) for uid in range(1, EXPUNGED_SLACK + 3))
    present = [EXPUNGED_SLACK + 1]

    memory.forget_expunged([1, *present])  # one too few gone: kept
    assert len(memory.facts) == EXPUNGED_SLACK + 2

    memory.forget_expunged(present)
    # Above the view's last UID may be mail another session already sees.
    assert sorted(memory.facts) == [EXPUNGED_SLACK + 1, EXPUNGED_SLACK + 2]
