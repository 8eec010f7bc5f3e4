"""Undoing Content-Transfer-Encoding as Dovecot's lib-mail does.

The quoted-printable cases are imaptest's fetch-binary-mime-qp message, whose
BINARY answers the real Dovecot 2.3.19 gives (65 bytes) and imaptest checks.
"""

from __future__ import annotations

import pytest

from mailpush.mime.transfer import decode_transfer, decode_transfer_chunk

IMAPTEST_QP = (
    b"hello  \r\nbar=\r\n\r\nfoo\t=\r\nbar\r\nfoo\t \t= \r\n=62\r\nfoo = \t\r\nbar\r\n"
    b"foo =\r\n=62\r\nfoo  \r\nbar=\r\n\r\nfoo_bar\r\n"
)
IMAPTEST_DECODED = (
    b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoo\r\nbar\r\nfoo_bar\r\n"
)


def test_qp_drops_trailing_blanks_and_takes_blanks_after_a_soft_break() -> None:
    assert decode_transfer("quoted-printable", IMAPTEST_QP) == IMAPTEST_DECODED
    assert len(IMAPTEST_DECODED) == 65


def test_qp_keeps_escapes_that_are_not_hex_and_decodes_either_case() -> None:
    assert decode_transfer("quoted-printable", b"a=zz b =3D=3d\r\n") == b"a=zz b ==\r\n"


def test_qp_at_the_end_of_the_body_without_a_line_break() -> None:
    assert decode_transfer("quoted-printable", b"tail =\t ") == b"tail "
    assert decode_transfer("quoted-printable", b"tail  ") == b"tail"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 64])
def test_qp_in_chunks_decodes_as_the_whole_body(size: int) -> None:
    out, carry = b"", b""
    for start in range(0, len(IMAPTEST_QP), size):
        final = start + size >= len(IMAPTEST_QP)
        data, carry, _ = decode_transfer_chunk(
            "quoted-printable", carry + IMAPTEST_QP[start : start + size], final
        )
        out += data
    assert out == IMAPTEST_DECODED


def test_qp_a_long_line_without_breaks_is_decoded_in_pieces() -> None:
    line = b"=41" * 5000 + b"  =\r\nB"
    out, carry = b"", b""
    for start in range(0, len(line), 1000):
        final = start + 1000 >= len(line)
        data, carry, _ = decode_transfer_chunk(
            "quoted-printable", carry + line[start : start + 1000], final
        )
        out += data
    assert out == b"A" * 5000 + b"  B"
