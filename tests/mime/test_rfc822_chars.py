"""An atom is RFC 5322 atext plus any non-ASCII character, for addresses and dates alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpush.mime.rfc822_chars import atext_end, is_atext


@pytest.mark.parametrize("char", ["a", "Z", "7", "!", "#", "'", "+", "-", "/", "=", "?", "`", "~"])
def test_letters_digits_and_rfc5322_specials_are_atext(char: str) -> None:
    assert is_atext(char)


@pytest.mark.parametrize("char", ["é", "ß", "日", "\x80"])
def test_non_ascii_characters_are_atext_so_raw_utf8_parses(char: str) -> None:
    assert is_atext(char)


@pytest.mark.parametrize(
    "char", [" ", "\t", "(", ")", "<", ">", "@", ",", ";", ":", '"', ".", "[", "\\"]
)
def test_separators_and_rfc5322_specials_end_an_atom(char: str) -> None:
    assert not is_atext(char)


def _walked_end(text: str, pos: int, dots: bool) -> int:
    while pos < len(text) and (is_atext(text[pos]) or (dots and text[pos] == ".")):
        pos += 1
    return pos


@given(text=st.text(max_size=40), pos=st.integers(0, 45), dots=st.booleans())
def test_a_run_ends_where_a_character_by_character_walk_ends(
    text: str, pos: int, dots: bool
) -> None:
    pos = min(pos, len(text))
    assert atext_end(text, pos, dots=dots) == _walked_end(text, pos, dots)


def test_every_character_up_to_the_astral_planes_is_classed_alike() -> None:
    edges = [0xD7FF, 0xD800, 0xDFFF, 0xE000, 0xFFFD, 0x10000, 0x1F600, 0x10FFFF]
    for code in [*range(0x3000), *edges]:
        char = chr(code)
        assert (atext_end(char, 0) == 1) == is_atext(char), hex(code)
