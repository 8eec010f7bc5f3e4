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

from typing import Literal

from .heavy_work import SearchRow, match_rows
from .parser import Tokenizer
from .search import parse_search
from .sort_fields import MessageFacts, SortCriterion, SortValue, message_facts
from .thread import ThreadFields, render_threads, thread_ordered_subject, thread_references

__all__ = [
    "SortItem",
    "ThreadAlgorithm",
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


def thread_messages(algorithm: ThreadAlgorithm, messages: list[ThreadFields]) -> str:
    """The thread-lists of `messages` (given in UID order) by `algorithm`."""
    if algorithm == "REFERENCES":
        return render_threads(thread_references(messages))
    return render_threads(thread_ordered_subject(messages))
