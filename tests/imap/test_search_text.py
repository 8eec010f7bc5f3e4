"""What SEARCH HEADER/BODY compare against: the text the shared mime/ readers produce.

SEARCH used to decode with the `email` package while the push fields used
mime/; where the two disagreed, these tests pin the answer the installed
Dovecot 2.3.19 gives to SEARCH on the same message.
"""

from __future__ import annotations

from mailpush.imap.search import SearchContext
from mailpush.imap.search_key import search_key


def context(raw: bytes) -> SearchContext:
    return SearchContext(1, 1, 0, (), False, None, raw, 1, 1)


def test_eight_bit_text_labelled_us_ascii_is_read_as_utf8() -> None:
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nHello w\xc3\xb6rld\r\n"
    assert search_key("wörld") in context(raw).body_text()


def test_an_encoded_word_followed_by_text_joins_it_without_a_space() -> None:
    raw = b"Subject: =?utf-8?q?caf=C3=A9?=bar\r\n\r\nbody\r\n"
    assert ("subject", "cafébar") in context(raw).headers()


def test_a_body_in_an_unknown_transfer_encoding_is_not_searched() -> None:
    raw = (
        b"Subject: a\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
        b"begin 644 f\r\n%=V]R;&0`\r\n`\r\nend\r\n"
    )
    text = context(raw).body_text()
    assert "BEGIN" not in text and "WORLD" not in text


def test_a_known_transfer_encoding_in_capitals_is_decoded() -> None:
    raw = b"Subject: a\r\nContent-Transfer-Encoding: BASE64\r\n\r\nd29y bGQ\r\n"
    assert context(raw).body_text() == search_key("world")
