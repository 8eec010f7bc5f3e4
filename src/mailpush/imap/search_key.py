"""The form SEARCH compares text in, so that it matches what Dovecot 2.3.19 matches.

RFC 3501 only says string search keys match case-insensitively. Dovecot
compares both sides in its "decomposed titlecase" (lib/unichar.c,
`uni_utf8_to_decomposed_titlecase`, the i;unicode-casemap of RFC 5051 as it
implements it), so `SEARCH SUBJECT cafe` finds "café" and `SEARCH BODY abc`
finds full-width "ＡＢＣ", but `strasse` does not find "Straße" and `file`
does not find the ligature "ﬁle". `str.casefold`, what mailpush compared
with before, gave the opposite answer in each of those cases
(tests/dovecot/test_search_text_differential.py asks the real Dovecot).

Per character, as Dovecot does it: its simple titlecase mapping; then a
Hangul syllable is split into its jamo, and any other character with a
decomposition in UnicodeData (of any kind, canonical or compatibility) is
replaced by it, one level deep and without titlecasing the result; a
titlecase letter (category Lt) keeps its own form, since Dovecot's table
leaves out decompositions of characters that have a titlecase mapping.
"""

from __future__ import annotations

import unicodedata

__all__ = ["search_key"]


def search_key(text: str) -> str:
    """`text` as SEARCH compares it: a substring of one key is a match in the other."""
    if text.isascii():
        return text.upper()  # no ASCII character decomposes; titlecase is uppercase
    return text.translate(_KEYS)


class _KeyTable(dict[int, str]):
    """Each character's key, worked out on first use (`str.translate` reads it)."""

    def __missing__(self, code: int) -> str:
        key = _key_of(chr(code))
        self[code] = key
        return key


_KEYS = _KeyTable()

_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_JAMO_L, _JAMO_V, _JAMO_T = 0x1100, 0x1161, 0x11A7
_JAMO_V_COUNT, _JAMO_T_COUNT = 21, 28


def _key_of(char: str) -> str:
    titled = char.title()
    if len(titled) == 1:  # a simple mapping; longer ones are SpecialCasing's, not used
        char = titled
    code = ord(char)
    if _HANGUL_FIRST <= code <= _HANGUL_LAST:
        return _hangul_jamo(code)
    if unicodedata.category(char) == "Lt":
        return char
    fields = unicodedata.decomposition(char).split()
    if fields and fields[0].startswith("<"):
        fields = fields[1:]  # the kind (<compat>, <wide>, ...): Dovecot takes them all
    if not fields:
        return char
    if len(fields) > 1 and code > 0xFFFF:
        return char  # Dovecot's table of several-character decompositions stops there
    return "".join(chr(int(field, 16)) for field in fields)


def _hangul_jamo(code: int) -> str:
    index = code - _HANGUL_FIRST
    lead = _JAMO_L + index // (_JAMO_V_COUNT * _JAMO_T_COUNT)
    vowel = _JAMO_V + (index % (_JAMO_V_COUNT * _JAMO_T_COUNT)) // _JAMO_T_COUNT
    trail = index % _JAMO_T_COUNT
    return chr(lead) + chr(vowel) + (chr(_JAMO_T + trail) if trail else "")
