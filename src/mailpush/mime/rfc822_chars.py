"""Which characters make an atom, as lib-mail's rfc822-parser decides for every header it reads.

RFC 5322's atext, plus every non-ASCII character: lib-mail counts 8-bit
bytes as atext so that raw UTF-8 names and dates parse. Address and date
parsing share this table so that they split the same header text alike.
"""

from __future__ import annotations

__all__ = ["is_atext"]

_SPECIAL_ATEXT = frozenset("!#$%&'*+-/=?^_`{|}~")


def is_atext(char: str) -> bool:
    """Whether `char` (one character) may stand in an atom."""
    if char.isascii():
        return char.isalnum() or char in _SPECIAL_ATEXT
    return True
