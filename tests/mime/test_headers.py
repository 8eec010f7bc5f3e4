"""Header blocks and RFC 2047 words, as Dovecot reads them."""

from __future__ import annotations

from mailpush.mime.headers import decode_encoded_words, find_body_start, parse_header_block


def test_body_starts_after_first_crlf_empty_line() -> None:
    raw = b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore"
    header_end, body_start = find_body_start(raw)
    assert raw[:header_end] == b"A: 1\r\nB: 2\r\n"
    assert raw[body_start:] == b"body\r\n\r\nmore"


def test_body_starts_after_first_bare_lf_empty_line() -> None:
    raw = b"A: 1\nB: 2\n\nbody"
    header_end, body_start = find_body_start(raw)
    assert raw[body_start:] == b"body"


def test_missing_separator_makes_everything_header() -> None:
    raw = b"A: 1\r\nB: 2\r\n"
    assert find_body_start(raw) == (len(raw), len(raw))


def test_message_starting_with_empty_line_has_no_headers() -> None:
    assert find_body_start(b"\r\nbody") == (0, 2)


def test_first_occurrence_wins_and_names_are_case_insensitive() -> None:
    fields = parse_header_block(b"SUBJECT: one\r\nSubject: two\r\n")
    assert fields.first("subject") == "one"


def test_folded_value_keeps_lf_and_continuation_blanks() -> None:
    fields = parse_header_block(b"Subject: This is a folded\r\n  subject line\r\n")
    assert fields.first("Subject") == "This is a folded\n  subject line"


def test_blanks_after_colon_are_dropped() -> None:
    fields = parse_header_block(b"To:    a@b\r\n")
    assert fields.first("To") == "a@b"


def test_value_of_only_blanks_loses_only_the_first_one() -> None:
    fields = parse_header_block(b"Subject:   \r\n")
    assert fields.first("Subject") == "  "


def test_empty_value_is_empty_string_not_none() -> None:
    fields = parse_header_block(b"Subject:\r\n")
    assert fields.first("Subject") == ""
    assert fields.first("From") is None


def test_invalid_utf8_in_value_becomes_replacement_character() -> None:
    fields = parse_header_block(b"Subject: caf\xe9\r\n")
    assert fields.first("Subject") == "caf\ufffd"


def test_line_without_colon_does_not_swallow_next_header() -> None:
    fields = parse_header_block(b"garbage line\r\n continued\r\nFrom: a@b\r\n")
    assert fields.first("From") == "a@b"


def test_space_before_colon_is_allowed_in_name() -> None:
    fields = parse_header_block(b"Subject : hi\r\n")
    assert fields.first("Subject") == "hi"


def test_decodes_adjacent_words_dropping_whitespace_between_them() -> None:
    value = "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?= =?ISO-8859-1?Q?und_K=F6ln?="
    assert decode_encoded_words(value) == "Grüße aus Münchenund Köln"


def test_decodes_lowercase_q_latin1_word() -> None:
    assert decode_encoded_words("=?iso-8859-1?q?Caf=E9?=") == "Café"


def test_decodes_b_word() -> None:
    assert decode_encoded_words("=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=") == "Jörg Müller"


def test_keeps_text_around_encoded_words() -> None:
    assert decode_encoded_words("Re: =?utf-8?q?Caf=C3=A9?= today") == "Re: Café today"


def test_malformed_word_is_kept_as_text() -> None:
    assert decode_encoded_words("=?utf-8?x?abc?= rest") == "=?utf-8?x?abc?= rest"
    assert decode_encoded_words("price =?5") == "price =?5"


def test_unknown_charset_falls_back_to_utf8() -> None:
    assert decode_encoded_words("=?x-unknown?Q?=C3=A9?=") == "é"


def test_non_charset_codec_name_is_not_used() -> None:
    assert decode_encoded_words("=?base64?Q?abc?=") == "abc"


def test_broken_base64_keeps_what_decodes() -> None:
    assert decode_encoded_words("=?utf-8?B?SsO2cmc?=") == "Jörg"


def test_invalid_q_escape_is_kept_literally() -> None:
    assert decode_encoded_words("=?utf-8?Q?a=ZZb?=") == "a=ZZb"


def test_raw_utf8_passes_through() -> None:
    assert decode_encoded_words("ünïcödé") == "ünïcödé"


def test_longer_name_with_same_prefix_is_not_a_match() -> None:
    fields = parse_header_block(b"Toxic: 1\r\nX-To: 2\r\nTo : real\r\n")
    assert fields.first("To") == "real"
    assert parse_header_block(b"Tox: 1\r\n").first("To") is None


def test_folded_value_stops_at_next_field() -> None:
    fields = parse_header_block(b"To: a@b,\r\n\tc@d\r\nCc: e@f\r\n")
    assert fields.first("To") == "a@b,\n\tc@d"
