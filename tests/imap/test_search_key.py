"""SEARCH compares text as Dovecot does: its decomposed titlecase (imap/search_key.py).

What each case should give was asked of Dovecot 2.3.19 itself
(tests/dovecot/test_search_text_differential.py repeats it live).
"""

from __future__ import annotations

import pytest

from mailpush.imap.search_key import search_key


def matches(needle: str, text: str) -> bool:
    return search_key(needle) in search_key(text)


@pytest.mark.parametrize(
    ("needle", "text"),
    [
        ("cafe", "café"),  # é is É, which is E and a combining accent
        ("E", "résumé"),
        ("CAFÉ", "café"),
        ("abc", "ＡＢＣ"),  # full-width letters decompose to ASCII
        ("ωmega", "ΩMEGA"),
        ("\u1100", "가"),  # a Hangul syllable is its jamo
        ("K", "\u212a"),  # the Kelvin sign is K
        ("ﬁ", "ﬁle"),
    ],
)
def test_these_match_as_in_dovecot(needle: str, text: str) -> None:
    assert matches(needle, text)


@pytest.mark.parametrize(
    ("needle", "text"),
    [
        ("strasse", "Straße"),  # ß has no simple titlecase: it stays ß
        ("file", "ﬁle"),  # the ligature decomposes to lowercase fi, not titlecased again
        ("ecole", "École"),  # É is E + accent, and "EC" is not in "E\u0301C"
        ("istanbul", "İstanbul"),
        ("resume", "résumé"),
    ],
)
def test_these_do_not_match_as_in_dovecot(needle: str, text: str) -> None:
    assert not matches(needle, text)


def test_ascii_is_compared_uppercased() -> None:
    assert search_key("Hello, World") == "HELLO, WORLD"


def test_the_key_of_a_long_text_is_one_pass() -> None:
    text = "Grüße aus Köln. " * 10_000
    assert search_key(text).count("KO\u0308LN") == 10_000
