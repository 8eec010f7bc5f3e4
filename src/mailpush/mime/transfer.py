"""Undoing Content-Transfer-Encoding the way lib-mail's decoders do.

base64 skips every character outside the alphabet and stops at the
padding; whatever is left over as a partial quad of two or three
characters still yields its bytes ("what we got so far"). 7bit, 8bit,
binary and a missing header pass the body through. Snippet, SEARCH and
Sieve all decode through here, so they see the same text for the same part.

An encoding lib-mail does not know (x-uuencode, typos) is not decoded.
Dovecot 2.3.19's SEARCH BODY then skips the part altogether: a text part
sent as x-uuencode matches neither its encoded lines nor its decoded text
(checked against the installed Dovecot); `is_known_transfer_encoding` lets
SEARCH do the same.
"""

from __future__ import annotations

import binascii
import re

__all__ = ["decode_transfer", "decode_transfer_chunk", "is_known_transfer_encoding"]

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]+")


_KNOWN = frozenset({"", "7bit", "8bit", "binary", "base64", "quoted-printable"})


def is_known_transfer_encoding(encoding: str) -> bool:
    """Whether lib-mail's message decoder would decode a body sent this way."""
    return encoding in _KNOWN


def decode_transfer(encoding: str, body: bytes) -> bytes:
    """A whole body decoded; `encoding` is the lowercased, stripped header value."""
    return decode_transfer_chunk(encoding, body, final=True)[0]


def decode_transfer_chunk(encoding: str, chunk: bytes, final: bool) -> tuple[bytes, bytes, bool]:
    """Decode one chunk of body: (decoded, bytes to prepend to the next chunk, body ended)."""
    if encoding == "base64":
        chars = _NOT_BASE64.sub(b"", chunk)
        padding = chars.find(b"=")
        if padding >= 0:  # the data ends at the padding, whatever follows
            chars = chars[:padding]
            final = True
        usable = len(chars) - len(chars) % 4
        body = chars[:usable]
        carry = b""
        if final:
            body += _partial_quad(chars[usable:])
        else:
            carry = chars[usable:]
        try:
            return binascii.a2b_base64(body), carry, final
        except (binascii.Error, ValueError):
            return b"", b"", True
    if encoding == "quoted-printable":
        return *_decode_qp(chunk, final), final
    return chunk, b"", final


#: A line longer than this without a line break is decoded in pieces (a soft break
#: or trailing space at a piece's end is then judged with the next chunk).
_QP_LONGEST_CARRY = 4096


def _decode_qp(chunk: bytes, final: bool) -> tuple[bytes, bytes]:
    """Quoted-printable as lib-mail decodes it (RFC 2045 §6.7): per line, trailing
    spaces and tabs are dropped, and a line then ending in `=` is a soft line break
    even when blanks followed the `=` (imaptest's fetch-binary-mime-qp checks both).
    Returns (decoded, the incomplete last line to prepend to the next chunk)."""
    lines = chunk.split(b"\n")
    last = lines.pop()
    carry = b""
    if not final:
        if len(last) <= _QP_LONGEST_CARRY:
            last, carry = b"", last
        else:
            # Keep back what the next chunk decides: trailing blanks, `=`, `=X`.
            cut = len(last.rstrip(b" \t="))
            escape = last.rfind(b"=", max(0, cut - 2), cut)
            cut = escape if escape >= 0 else cut
            last, carry = last[:cut], last[cut:]
    out: list[bytes] = []
    for line in lines:
        crlf = line.endswith(b"\r")
        text = (line[:-1] if crlf else line).rstrip(b" \t")
        if text.endswith(b"="):
            out.append(binascii.a2b_qp(text[:-1]))
        else:
            out.append(binascii.a2b_qp(text) + (b"\r\n" if crlf else b"\n"))
    if last:
        text = last.rstrip(b" \t") if final else last
        if final and text.endswith(b"="):
            text = text[:-1]
        out.append(binascii.a2b_qp(text))
    return b"".join(out), carry


def _partial_quad(chars: bytes) -> bytes:
    if len(chars) < 2:
        return b""
    return chars + b"=" * (4 - len(chars))
