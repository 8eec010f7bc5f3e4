"""ENVELOPE, BODYSTRUCTURE and sections from raw messages, malformed ones included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailpush.imap.fetch import structure_of
from mailpush.imap.message_structure import SectionSpec, section_bytes
from mailpush.mime.structure import parse_structure

NESTED = (
    b"Subject: outer\r\n"
    b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n'
    b"--o\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
    b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
    b'Subject: inner\r\nContent-Type: multipart/alternative; boundary="i"\r\n\r\n'
    b"--i\r\n\r\nplain\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--i--\r\n"
    b"--o--\r\n"
)


def test_sections_address_parts_inside_an_encapsulated_message() -> None:
    message = parse_structure(NESTED)
    assert section_bytes(message, SectionSpec((1,))) == b"first"
    assert section_bytes(message, SectionSpec((2,), "HEADER")).startswith(b"Subject: inner")
    assert section_bytes(message, SectionSpec((2, 1))) == b"plain"
    assert section_bytes(message, SectionSpec((2, 2))) == b"<p>html</p>"
    assert section_bytes(message, SectionSpec((9,))) is None


def test_bodystructure_of_a_nested_message_lists_every_part() -> None:
    _, body, structure = structure_of(NESTED)
    assert structure.startswith(b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1 ')
    assert b'"message" "rfc822"' in structure
    assert b'"alternative"' in structure and structure.endswith(b"NIL NIL NIL)")
    assert body.endswith(b' "mixed")')


def test_a_message_without_header_or_content_type_is_plain_text() -> None:
    envelope, body, _ = structure_of(b"\r\njust a body\r\n")
    assert envelope == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 1)'


def test_eight_bit_header_values_are_sent_as_literals() -> None:
    envelope, _, _ = structure_of(b"Subject: caf\xc3\xa9\r\n\r\nx")
    assert b"{5}\r\ncaf\xc3\xa9" in envelope


def test_unterminated_multipart_still_yields_its_parts() -> None:
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nonly part'
    assert section_bytes(parse_structure(raw), SectionSpec((1,))) == b"only part"


@given(st.binary(max_size=400))
def test_any_bytes_parse_into_some_structure(raw: bytes) -> None:
    structure_of(raw)
    message = parse_structure(raw)
    specs = (SectionSpec(), SectionSpec((1,)), SectionSpec((1, 2), "MIME"), SectionSpec((), "TEXT"))
    for spec in specs:
        section_bytes(message, spec)


@given(st.lists(st.sampled_from([b"--b\r\n", b"--b--\r\n", b"\r\n", b"x", b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: message/rfc822\r\n"]), max_size=30))  # noqa: E501
def test_hostile_mime_nesting_never_crashes(parts: list[bytes]) -> None:
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"".join(parts)
    structure_of(raw)


def test_bodystructure_shows_the_empty_part_after_a_final_delimiter_like_dovecot() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n\r\n--b\r\n"
    _, _, structure = structure_of(raw)
    assert structure == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "b") NIL NIL NIL)'
    )


def test_bodystructure_nests_as_deep_as_dovecot_before_the_rest_is_opaque() -> None:
    depth = 100
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%03dz\r\n\r\n--b%03dz\r\n" % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--b%03dz--\r\n" % i for i in reversed(range(depth)))
    _, _, structure = structure_of(head + b"Content-Type: text/plain\r\n\r\nleaf\r\n" + tail)
    # Dovecot 2.3.19 answers with 99 multiparts (one paren each) around one opaque part of 56 bytes.
    assert structure.startswith(
        b"(" * 100 + b'"application" "octet-stream" ("boundary" "b099z") NIL NIL "7bit" 56 NIL'
    )
    assert structure.count(b'"mixed"') == 99
