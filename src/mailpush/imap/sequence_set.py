"""IMAP sequence sets (`1,3:5,7:*`, `$`) and how they resolve against a mailbox view.

A set is parsed once into ranges; `*` stays symbolic until it meets a mailbox,
because it means "the highest sequence number" or "the highest UID" there.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["STAR", "Membership", "SequenceSet", "InvalidSequenceSetError", "parse_sequence_set"]

#: Stands for `*` inside a range until the set is resolved.
STAR = 0

MAX_NUMBER = 0xFFFFFFFF


class InvalidSequenceSetError(ValueError):
    """The text is not a sequence set (or names 0, or a number beyond 2^32-1)."""


@dataclass(frozen=True, slots=True)
class SequenceSet:
    #: (low, high) pairs as written, with `STAR` for `*`; low may exceed high.
    ranges: tuple[tuple[int, int], ...]
    #: `$`: the result of the last SEARCH (RFC 5182 SEARCHRES).
    saved: bool = False

    def numbers(self, largest: int) -> list[int]:
        """The sorted sequence numbers named, against a mailbox of `largest` messages.

        Raises `InvalidSequenceSetError` when a number lies beyond `largest`,
        which RFC 3501 makes a protocol error for message sequence numbers.
        """
        merged = self.merged(largest)
        if merged and (merged[0][0] < 1 or merged[-1][1] > largest):
            raise InvalidSequenceSetError("Invalid messageset")
        out: list[int] = []
        for lo, hi in merged:
            out.extend(range(lo, hi + 1))
        return out

    def uids(self, existing: Sequence[int]) -> list[int]:
        """The UIDs among `existing` (sorted) that the set names; unknown UIDs are skipped.

        `n:*` always includes the highest UID, even when n is larger (RFC 3501 §6.4.8).
        """
        if not existing:
            return []
        picked: list[int] = []
        for lo, hi in self.merged(existing[-1]):
            start = bisect.bisect_left(existing, lo)
            stop = bisect.bisect_right(existing, hi)
            picked.extend(existing[start:stop])
        return picked

    def contains_uid(self, uid: int, top: int) -> bool:
        """Whether the set names `uid` (or a sequence number), `*` being `top`."""
        return self.membership(top).contains(uid)

    def membership(self, top: int) -> Membership:
        """A membership test for many numbers against one `top`: O(log ranges) each."""
        return Membership(self.merged(top))

    def merged(self, top: int) -> list[tuple[int, int]]:
        """The ranges with `*` as `top`, sorted, overlapping and adjacent ones joined.

        A 64 KB command line holds ~16,000 ranges, all of which may overlap
        (`1:*,1:*,...`): merged once, the work stays O(r log r + n), never r × n.
        """
        resolved = sorted(
            (min(lo, hi), max(lo, hi))
            for lo, hi in (
                (top if low == STAR else low, top if high == STAR else high)
                for low, high in self.ranges
            )
        )
        merged: list[tuple[int, int]] = []
        for lo, hi in resolved:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged


class Membership:
    """Disjoint sorted ranges, searched by bisection."""

    __slots__ = ("_lows", "_highs")

    def __init__(self, merged: list[tuple[int, int]]) -> None:
        self._lows = [lo for lo, _ in merged]
        self._highs = [hi for _, hi in merged]

    def contains(self, number: int) -> bool:
        index = bisect.bisect_right(self._lows, number) - 1
        return index >= 0 and number <= self._highs[index]


def parse_sequence_set(text: str) -> SequenceSet:
    """`1:3,5,7:*` → ranges; `$` → the saved search result."""
    if text == "$":
        return SequenceSet((), saved=True)
    if not text:
        raise InvalidSequenceSetError("empty sequence set")
    ranges: list[tuple[int, int]] = []
    for item in text.split(","):
        low_text, colon, high_text = item.partition(":")
        low = _number(low_text, text)
        high = _number(high_text, text) if colon else low
        ranges.append((low, high))
    return SequenceSet(tuple(ranges))


def format_uid_ranges(uids: Sequence[int]) -> str:
    """`1,2,3,5` → `1:3,5`: the compact form COPYUID and APPENDUID report."""
    parts: list[str] = []
    i = 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        parts.append(str(uids[i]) if i == j else f"{uids[i]}:{uids[j]}")
        i = j + 1
    return ",".join(parts)


def _number(text: str, whole: str) -> int:
    if text == "*":
        return STAR
    if not text.isdigit() or not text.isascii():
        raise InvalidSequenceSetError(f"invalid sequence set {whole!r}")
    value = int(text)
    if value == 0 or value > MAX_NUMBER:
        raise InvalidSequenceSetError(f"sequence set {whole!r} holds {value}, out of range")
    return value
