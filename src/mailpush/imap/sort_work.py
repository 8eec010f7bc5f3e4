"""The parts of SORT and THREAD that run in the heavy-work pool (or in place when small).

Like `heavy_work.search_rows`, each function takes only picklable values and
re-parses the search program from the command's bytes. `read_chunk` takes a
chunk of messages (whole ones only when the program searches them) and the
header blocks of those whose facts are not cached yet; the matches and
their new facts come out. The final ordering or threading of all matches is
one more call (`order_messages`, `thread_messages`), in the pool when there
are many.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable
from functools import cmp_to_key
from typing import Literal

from .heavy_work import SearchRow, match_rows
from .parser import Tokenizer
from .search import parse_search
from .sort_fields import (
    MessageFacts,
    SortCriterion,
    SortValue,
    SortValues,
    ThreadRow,
    message_facts,
)
from .thread import ThreadFields, render_threads, thread_ordered_subject, thread_references

__all__ = [
    "SortItem",
    "ThreadAlgorithm",
    "extend_order",
    "order_messages",
    "read_chunk",
    "thread_messages",
]

#: (number to answer with, sort values) of one matching message, in sequence order.
SortItem = tuple[int, tuple[SortValue, ...]]
ThreadAlgorithm = Literal["REFERENCES", "ORDEREDSUBJECT"]


def read_chunk(
    arguments: bytes,
    start: int,
    max_seq: int,
    max_uid: int,
    rows: list[SearchRow],
    headers: dict[int, tuple[bytes, int, int]],
) -> tuple[list[tuple[int, int]], dict[int, MessageFacts]]:
    """(seq, uid) of the rows the search program at `arguments[start:]` matches, and the facts
    of those among them whose (header block, arrival, size) are in `headers`."""
    program = parse_search(Tokenizer(arguments, start))
    matches = match_rows(program, max_seq, max_uid, rows)
    facts = {}
    for _, uid in matches:
        header = headers.get(uid)
        if header is not None:
            facts[uid] = message_facts(*header)
    return matches, facts


def order_messages(criteria: tuple[SortCriterion, ...], items: list[SortItem]) -> list[int]:
    """The numbers of `items` (given in sequence order) in sort order.

    One stable sort per criterion, the last criterion first: each keeps the
    order of the ones after it among equals, and sequence order breaks the
    remaining ties, REVERSE or not (as in Dovecot).
    """
    ordered = list(items)
    for index in range(len(criteria) - 1, -1, -1):
        ordered.sort(key=lambda item: item[1][index], reverse=criteria[index].reverse)
    return [number for number, _ in ordered]


def extend_order(
    criteria: tuple[SortCriterion, ...],
    order: list[int],
    value_of: Callable[[int], SortValues],
    new: list[int],
) -> list[int]:
    """`order` (UIDs in sort order) with the UIDs `new` put in their places, as
    `order_messages` would have put them: a binary search each, no sort, and only the
    values of the messages compared are read (`value_of(uid)`)."""

    def compare(a: int, b: int) -> int:
        for criterion, left, right in zip(criteria, value_of(a), value_of(b), strict=True):
            if left != right:
                before = left < right  # type: ignore[operator]  # one key: both int or str
                return (1 if before else -1) if criterion.reverse else (-1 if before else 1)
        return -1 if a < b else (1 if a > b else 0)

    key = cmp_to_key(compare)
    extended = list(order)
    for uid in new:
        insort(extended, uid, key=key)
    return extended


def thread_messages(algorithm: ThreadAlgorithm, rows: list[ThreadRow]) -> str:
    """The thread-lists of the messages of `rows` (given in UID order) by `algorithm`."""
    messages = list(map(ThreadFields._make, rows))
    if algorithm == "REFERENCES":
        return render_threads(thread_references(messages))
    return render_threads(thread_ordered_subject(messages))
