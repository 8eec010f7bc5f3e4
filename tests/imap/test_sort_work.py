"""The pure parts of SORT (mailpush.imap.sort_work): ordering, and extending an order."""

from __future__ import annotations

import random

import pytest

from mailpush.imap.sort_fields import SortCriterion, SortValue
from mailpush.imap.sort_work import extend_order, order_messages


def test_equal_messages_keep_uid_order_reverse_or_not() -> None:
    items: list[tuple[int, tuple[SortValue, ...]]] = [(1, ("B", 5)), (2, ("A", 5)),
                                                      (3, ("B", 4)), (4, ("A", 5))]
    forward = (SortCriterion("SUBJECT"), SortCriterion("SIZE"))
    backward = (SortCriterion("SUBJECT", reverse=True), SortCriterion("SIZE"))

    assert order_messages(forward, items) == [2, 4, 3, 1]
    assert order_messages(backward, items) == [3, 1, 2, 4]


@pytest.mark.parametrize("reverse", [(False, False), (True, False), (False, True), (True, True)])
def test_an_extended_order_is_the_order_of_all_the_messages(reverse: tuple[bool, bool]) -> None:
    # Few distinct values, so that most comparisons end in a tie on one key or both.
    generator = random.Random(5256)
    values: dict[int, tuple[SortValue, ...]] = {
        uid: (generator.choice("ABCD"), generator.randrange(4)) for uid in range(1, 301)
    }
    criteria = (SortCriterion("SUBJECT", reverse[0]), SortCriterion("DATE", reverse[1]))
    old = sorted(generator.sample(sorted(values), 200))
    new = sorted(set(values) - set(old))

    order = order_messages(criteria, [(uid, values[uid]) for uid in old])
    extended = extend_order(criteria, order, values.__getitem__, new)

    assert extended == order_messages(criteria, sorted(values.items()))
