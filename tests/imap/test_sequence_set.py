"""Sequence sets resolve as RFC 3501 says, however their ranges overlap or are ordered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpush.imap.sequence_set import STAR, InvalidSequenceSetError, SequenceSet

ends = st.one_of(st.just(STAR), st.integers(1, 40))
sets = st.lists(st.tuples(ends, ends), min_size=1, max_size=12).map(
    lambda ranges: SequenceSet(tuple(ranges))
)


def named(numbers: SequenceSet, top: int) -> set[int]:
    """Every number the set names with `*` as `top`, range by range."""
    out: set[int] = set()
    for low, high in numbers.ranges:
        lo, hi = sorted((top if low == STAR else low, top if high == STAR else high))
        out.update(range(lo, hi + 1))
    return out


@given(sets, st.lists(st.integers(1, 50), unique=True).map(sorted))
def test_uids_and_membership_match_the_ranges_as_written(
    numbers: SequenceSet, existing: list[int]
) -> None:
    top = existing[-1] if existing else 0
    expected = sorted(named(numbers, top) & set(existing))
    assert numbers.uids(existing) == expected
    for uid in range(1, 52):
        assert numbers.contains_uid(uid, top) == (uid in named(numbers, top))


@given(sets, st.integers(1, 45))
def test_sequence_numbers_are_sorted_and_unique(numbers: SequenceSet, largest: int) -> None:
    expected = named(numbers, largest)
    if max(expected) > largest:
        return  # a protocol error, checked below
    assert numbers.numbers(largest) == sorted(expected)


def test_a_number_beyond_the_mailbox_is_an_invalid_set() -> None:
    with pytest.raises(InvalidSequenceSetError):
        SequenceSet(((1, 3), (2, 9))).numbers(5)
