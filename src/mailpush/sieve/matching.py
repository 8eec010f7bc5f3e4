"""Sieve match types (`:is`, `:contains`, `:matches`) under the two comparators.

`i;ascii-casemap` folds only ASCII letters (RFC 4790), so `É` and `é` stay
different, as in every Sieve implementation. `:matches` wildcards are
matched by a two-pointer scan with one backtrack point, which is linear per
star rather than exponential like a naive regex on `*a*a*a*b`: a sender
cannot make a filter hang by crafting a header.
"""

from __future__ import annotations

from collections.abc import Iterable

from .script import Match

__all__ = ["matches_any"]

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_STAR = object()
_ONE = object()


def matches_any(values: Iterable[str], keys: Iterable[str], match: Match) -> bool:
    """Whether any value matches any key (RFC 5228 §2.7: the test is an OR over both lists)."""
    keys = list(keys)
    fold = match.comparator == "i;ascii-casemap"
    if fold:
        keys = [key.translate(_ASCII_FOLD) for key in keys]
    patterns = [_pattern(key) for key in keys] if match.type == "matches" else []
    for value in values:
        if fold:
            value = value.translate(_ASCII_FOLD)
        if match.type == "is":
            if value in keys:
                return True
        elif match.type == "contains":
            if any(key in value for key in keys):
                return True
        elif any(_wildcard_match(pattern, value) for pattern in patterns):
            return True
    return False


def _pattern(key: str) -> list[object]:
    """`*` → any run, `?` → one character, `\\x` → a literal x."""
    tokens: list[object] = []
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key):
            tokens.append(key[i + 1])
            i += 2
            continue
        if char == "*":
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
        elif char == "?":
            tokens.append(_ONE)
        else:
            tokens.append(char)
        i += 1
    return tokens


def _wildcard_match(pattern: list[object], value: str) -> bool:
    p = v = 0
    star_p = -1
    star_v = 0
    while v < len(value):
        if p < len(pattern) and pattern[p] is not _STAR and (
            pattern[p] is _ONE or pattern[p] == value[v]
        ):
            p += 1
            v += 1
        elif p < len(pattern) and pattern[p] is _STAR:
            star_p = p
            star_v = v
            p += 1
        elif star_p >= 0:
            p = star_p + 1
            star_v += 1
            v = star_v
        else:
            return False
    while p < len(pattern) and pattern[p] is _STAR:
        p += 1
    return p == len(pattern)
