"""An atom is RFC 5322 atext plus any non-ASCII character, for addresses and dates alike."""

from __future__ import annotations

import pytest

from mailpush.mime.rfc822_chars import is_atext


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
