"""The base subject of RFC 5256 §2.1, which SORT SUBJECT and THREAD compare."""

from __future__ import annotations

import pytest

from mailpush.imap.base_subject import base_subject, collation_key


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("Hello", "HELLO", False),
        ("Re: Hello", "HELLO", True),
        ("RE: re:  Fwd: Hello", "HELLO", True),
        ("Fw : Hello", "HELLO", True),
        ("Re[2]: Hello", "HELLO", True),
        ("[list] Re: Hello", "HELLO", True),
        ("Re: [list] Re: Hello", "HELLO", True),
        ("[blob] Hello", "HELLO", False),
        ("[a] [b] Hello", "HELLO", False),
        ("Hello (fwd)", "HELLO", True),
        ("Hello (fwd) (fwd)  ", "HELLO", True),
        ("[fwd: Re: Hello]", "HELLO", True),
        ("[Fwd: [fwd: Hello]]", "HELLO", True),
        ("  Hello \t  world  ", "HELLO WORLD", False),
        ("Hello\r\n world", "HELLO WORLD", False),
        ("Re:", "", True),
        ("", "", False),
    ],
)
def test_decorations_come_off_and_replies_are_recognised(
    subject: str, base: str, reply: bool
) -> None:
    assert base_subject(subject) == (base, reply)


def test_a_subject_that_is_only_a_blob_keeps_it() -> None:
    assert base_subject("[only a blob]") == ("[ONLY A BLOB]", False)


def test_a_blob_that_does_not_close_is_text() -> None:
    assert base_subject("[open Re: Hello") == ("[OPEN RE: HELLO", False)


def test_missing_subject_is_empty_and_not_a_reply() -> None:
    assert base_subject(None) == ("", False)


def test_encoded_words_are_decoded_before_the_decorations_are_read() -> None:
    assert base_subject("=?utf-8?q?Re=3A_caf=C3=A9?=") == (collation_key("CAFÉ"), True)


def test_accented_letters_sort_by_their_base_letter_as_in_dovecot() -> None:
    # Titlecase and decompose (i;unicode-casemap): É is E plus a combining accent.
    assert collation_key("été") == "E\u0301TE\u0301"
    assert sorted(["hello", "été", "Zoo"], key=collation_key) == ["été", "hello", "Zoo"]


def test_sharp_s_keeps_its_single_character_titlecase() -> None:
    assert collation_key("straße") == "STRAßE"
