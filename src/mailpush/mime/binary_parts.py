"""Re-encoding the `Content-Transfer-Encoding: binary` parts of a message as base64.

A message APPENDed as a literal8 (RFC 3516 `~{n}`) may carry parts in
binary, NULs and bare CRs included. Dovecot 2.3 stores such a message with
each of those parts base64-encoded (lib-mail's istream-binary-converter), so
that every later reader (IMAP BODY[], push summaries, Sieve) sees 7-bit
mail; BINARY[] still gives the bytes back decoded. The rules copied:

- a part is converted when its header says exactly `Content-Transfer-Encoding:
  binary` on one line (any case) and it is not a multipart; a converted part's
  contents (a message/rfc822 included) are encoded whole;
- that header line becomes `Content-Transfer-Encoding: base64`, where it was;
- the body becomes base64 in lines of 76 characters joined by CRLF, with no
  line break after the last (the line break before the next delimiter belongs
  to the delimiter).

The tree is mime/structure.py's; nothing else is reparsed or reformatted.
"""

from __future__ import annotations

import binascii
import re

from .structure import MimePart, parse_structure

__all__ = ["declares_binary", "encode_binary_parts"]

_BINARY_FIELD = re.compile(rb"^content-transfer-encoding:[ \t]*binary\r?$", re.I | re.M)
_BASE64_FIELD = b"Content-Transfer-Encoding: base64"
#: Input bytes per base64 line of 76 characters.
_LINE_INPUT = 57


def declares_binary(raw: bytes) -> bool:
    """Whether any header of `raw` may declare a binary part (a cheap test before parsing)."""
    return _BINARY_FIELD.search(raw) is not None


def encode_binary_parts(raw: bytes) -> bytes:
    """`raw` with each binary part base64-encoded as Dovecot stores it; else `raw` itself."""
    converted = list(_binary_parts(parse_structure(raw)))
    if not converted:
        return raw
    out: list[bytes] = []
    position = 0
    for part in converted:
        header = raw[part.header_start : part.header_end]
        field = _BINARY_FIELD.search(header)
        assert field is not None
        line_end = b"\r" if field.group().endswith(b"\r") else b""
        out.append(raw[position : part.header_start])
        out.append(header[: field.start()] + _BASE64_FIELD + line_end + header[field.end() :])
        out.append(raw[part.header_end : part.body_start])
        out.append(_base64_lines(part.body))
        position = part.body_end
    out.append(raw[position:])
    return b"".join(out)


def _binary_parts(part: MimePart) -> list[MimePart]:
    """The parts to convert, in message order; nothing inside a converted part."""
    if not part.is_multipart and _BINARY_FIELD.search(
        part.raw, part.header_start, part.header_end
    ):
        return [part]
    found: list[MimePart] = []
    for child in part.children:
        found.extend(_binary_parts(child))
    if part.message is not None:
        found.extend(_binary_parts(part.message))
    return found


def _base64_lines(body: bytes) -> bytes:
    return b"\r\n".join(
        binascii.b2a_base64(body[start : start + _LINE_INPUT], newline=False)
        for start in range(0, len(body), _LINE_INPUT)
    )
