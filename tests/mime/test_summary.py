"""summarize(): the observed Dovecot 2.3.19 event fields, robustness and speed."""

from __future__ import annotations

import base64
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpush.mime import MessageSummary, summarize


def test_plain_message_fields_match_observed_dovecot() -> None:
    raw = (
        b"From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.net>\r\n"
        b'To: "Alice Example" <alice@example.org>, bob@example.org, carol@example.org\r\n'
        b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?= =?ISO-8859-1?Q?und_K=F6ln?=\r\n"
        b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n"
        b"Message-ID: <plain.1@example.net>\r\n"
        b"\r\n"
        b"Hello Alice,\r\nthis is a plain text message.\r\n\r\nBye\r\n"
    )
    assert summarize(raw) == MessageSummary(
        from_="=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.net>",
        to='"Alice Example" <alice@example.org>, bob@example.org, carol@example.org',
        from_address="joerg@example.net",
        from_display_name="Jörg Müller",
        to_address="alice@example.org",
        to_display_name="Alice Example",
        subject="Grüße aus Münchenund Köln",
        subject_raw="=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?= =?ISO-8859-1?Q?und_K=F6ln?=",
        date=1672646400,
        tz=120,
        message_id="<plain.1@example.net>",
        snippet="Hello Alice, this is a plain text message. Bye",
        has_calendar=False,
    )


def test_comment_stands_in_for_missing_display_name() -> None:
    summary = summarize(b"From: gs@example.net (Group Sender)\r\n\r\n")
    assert summary.from_ == "gs@example.net (Group Sender)"
    assert (summary.from_address, summary.from_display_name) == ("gs@example.net", "Group Sender")


def test_group_recipient_has_name_but_no_address() -> None:
    summary = summarize(b"To: undisclosed-recipients:;\r\n\r\n")
    assert (summary.to_address, summary.to_display_name) == ("", "undisclosed-recipients")


def test_folded_subject_keeps_lf_and_continuation_spaces() -> None:
    raw = "Subject: This is a folded\r\n  subject line with raw UTF-8 ünïcödé\r\n\r\n".encode()
    summary = summarize(raw)
    assert summary.subject == "This is a folded\n  subject line with raw UTF-8 ünïcödé"
    assert summary.subject_raw == summary.subject


def test_latin1_subject_word_is_decoded() -> None:
    assert summarize(b"Subject: =?iso-8859-1?q?Caf=E9?=\r\n\r\n").subject == "Café"


def test_message_without_any_header_fields_has_empty_defaults() -> None:
    summary = summarize(b"X-Other: 1\r\n\r\nbody")
    assert summary == MessageSummary(
        from_="",
        to="",
        from_address="",
        from_display_name="",
        to_address="",
        to_display_name="",
        subject=None,
        subject_raw=None,
        date=0,
        tz=0,
        message_id=None,
        snippet="body",
        has_calendar=False,
    )


def test_invalid_date_gives_zero_date_and_zone() -> None:
    summary = summarize(b"Date: not a valid date\r\n\r\n")
    assert (summary.date, summary.tz) == (0, 0)


def test_invalid_utf8_headers_are_replaced_not_fatal() -> None:
    summary = summarize(b"From: J\xf6rg <j@example.net>\r\nSubject: \xff\xfe caf\xe9\r\n\r\nx")
    assert summary.from_display_name == "J\ufffdrg"
    assert summary.subject == "\ufffd\ufffd caf\ufffd"


def test_missing_header_body_separator_means_no_body() -> None:
    summary = summarize(b"Subject: only headers\r\nFrom: a@example.net")
    assert summary.subject == "only headers"
    assert summary.from_address == "a@example.net"
    assert summary.snippet == ""


def test_bare_lf_message_is_read_like_crlf() -> None:
    summary = summarize(b"Subject: lf\nFrom: a@example.net\n\nline one\nline two\n")
    assert (summary.subject, summary.snippet) == ("lf", "line one line two")


def test_binary_attachment_does_not_disturb_snippet_or_calendar() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
        b"\r\n" + bytes(range(1, 256)) * 64 + b"\r\n--b--\r\n"
    )
    summary = summarize(raw)
    assert summary.snippet == "see attachment"
    assert summary.has_calendar is False


def test_invitation_sets_has_calendar() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nYou are invited\r\n"
        b"--b\r\nContent-Type: application/octet-stream; name=invite.ics\r\n\r\nBEGIN\r\n--b--\r\n"
    )
    summary = summarize(raw)
    assert (summary.snippet, summary.has_calendar) == ("You are invited", True)


def test_twenty_megabyte_attachment_summarises_quickly() -> None:
    attachment = base64.encodebytes(bytes(15 * 1024 * 1024)).replace(b"\n", b"\r\n")
    raw = (
        b"From: Big <big@example.net>\r\nSubject: big\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nHere is the file.\r\n"
        b"--b\r\nContent-Type: application/octet-stream; name=big.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment + b"\r\n--b--\r\n"
    )
    assert len(raw) > 20 * 1024 * 1024
    started = time.perf_counter()
    summary = summarize(raw)
    elapsed = time.perf_counter() - started
    assert summary.snippet == "Here is the file."
    assert elapsed < 0.5


def test_huge_text_body_is_bounded() -> None:
    raw = b"Subject: quotes\r\n\r\n" + b"> quoted line of text\r\n" * 1_000_000
    started = time.perf_counter()
    summary = summarize(raw)
    assert time.perf_counter() - started < 0.5
    assert summary.snippet.startswith(">quoted line of text")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(summarize(raw), MessageSummary)


_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Disposition",
        "Content-Transfer-Encoding",
        "X-Junk",
        "",
    ]
)
_VALUE_PIECES = st.sampled_from(
    [
        "=?",
        "?=",
        "?q?",
        "?B?",
        "utf-8",
        "<",
        ">",
        '"',
        "(",
        ")",
        ":",
        ";",
        ",",
        "@",
        " ",
        "\r\n ",
        "\r\n",
        "multipart/mixed; boundary=b",
        "text/html",
        "base64",
        "quoted-printable",
        "--b",
        "\xe9",
        "\udcff",
        "=C3",
        "filename*0*=x''a%",
        ".ics",
        "&amp",
        "<b",
        "Mon, 02 Jan",
        "+9999",
        "\x00",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_NAMES, st.lists(_VALUE_PIECES, max_size=12)), max_size=12),
    st.lists(_VALUE_PIECES, max_size=40),
)
def test_random_header_soup_never_raises(
    fields: list[tuple[str, list[str]]], body: list[str]
) -> None:
    head = "".join(f"{name}: {''.join(value)}\r\n" for name, value in fields)
    raw = (head + "\r\n" + "".join(body)).encode("utf-8", errors="surrogateescape")
    assert isinstance(summarize(raw), MessageSummary)


def test_huge_header_block_is_searched_not_split() -> None:
    raw = (
        b"Subject: big\r\n"
        + b"X-Filler: value\r\n" * 1_000_000
        + b"From: late@example.net\r\n\r\nb"
    )
    started = time.perf_counter()
    summary = summarize(raw)
    assert time.perf_counter() - started < 0.5
    assert (summary.subject, summary.from_address, summary.snippet) == (
        "big",
        "late@example.net",
        "b",
    )
