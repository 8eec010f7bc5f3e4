"""FETCH BINARY[section], BINARY.PEEK and BINARY.SIZE (RFC 3516), as Dovecot 2.3.19 answers.

BINARY returns a part with its Content-Transfer-Encoding undone, through the
one decoder every reader uses (mime/transfer.py) on the one MIME tree
(mime/structure.py). What is decoded follows Dovecot's binary conversion
(index-mail-binary.c):

- a leaf part's body is decoded (base64, quoted-printable) or passed through
  with bare LF made CRLF (7bit, 8bit, binary, none);
- a multipart or message/rfc822 part keeps its own bytes between its
  children (preamble, delimiters, epilogue) and each child is converted
  with its header, where a header whose encoding was undone loses its
  Content-Transfer-Encoding lines and gains `Content-Transfer-Encoding:
  binary` at its end;
- `BINARY[]` converts the whole message header included, `BINARY[n]` the
  body of part n, `BINARY[TEXT]`/`[n.TEXT]` the body of a message;
  `BINARY[HEADER]`, `[n.MIME]` and `[HEADER.FIELDS ...]` are returned as
  BODY would (nothing to decode), in a plain literal;
- a part that does not exist is the empty string (BODY's is NIL);
- the answer is a literal8 (`~{n}`) when anything was decoded or the bytes
  hold a NUL, a plain literal otherwise.

An encoding lib-mail cannot undo (x-uuencode, typos) anywhere in what is
converted fails the FETCH with `NO [UNKNOWN-CTE]`. Dovecot computes
BINARY.SIZE of an existing part from the whole message's conversion, so any
unknown encoding in the message fails BINARY.SIZE too; that is copied.
"""

from __future__ import annotations

import re

from ..mime.structure import MimePart
from ..mime.transfer import decode_transfer, is_known_transfer_encoding
from .message_structure import SectionSpec, part_at, section_bytes

__all__ = ["UnknownCteError", "render_binary"]

_CONVERTED = frozenset({"base64", "quoted-printable"})
_BARE_LF = re.compile(rb"(?<!\r)\n")
_CTE_BINARY = b"Content-Transfer-Encoding: binary\r\n"
#: A header field: its first line and any continuation lines.
_FIELD = re.compile(rb"[^ \t\r\n][^\n]*\n?(?:[ \t][^\n]*\n?)*")


class UnknownCteError(Exception):
    """A part to decode has a Content-Transfer-Encoding nobody can undo: NO [UNKNOWN-CTE].

    `answered` carries the FETCH lines already rendered when it was raised
    (Dovecot sends them, and closes the failing message's line with its UID).
    """

    def __init__(self, answered: tuple[bytes, ...] = ()) -> None:
        super().__init__(answered)
        self.answered = answered


#: The tagged reply of a FETCH that failed so (Dovecot's words).
UNKNOWN_CTE_REPLY = "[UNKNOWN-CTE] Unknown Content-Transfer-Encoding."


def render_binary(
    message: MimePart,
    section: SectionSpec,
    label: bytes,
    partial: tuple[int, int] | None,
    size_only: bool,
) -> bytes:
    """`BINARY[...] ~{n}` with the data, or `BINARY.SIZE[...] n`; raises UnknownCteError."""
    if section.kind in ("", "TEXT"):
        part = part_at(message, section.path)
        if section.kind == "TEXT" and section.path and part is not None:
            part = part.message  # n.TEXT: the body of the message part n holds
        if part is None:
            data, literal8 = b"", False
        else:
            if size_only:
                _check_whole_message(message)
            include_header = not section.path and not section.kind
            data, literal8 = _convert(part, include_header)
    else:
        data, literal8 = section_bytes(message, section) or b"", False
    if size_only:
        return label + b" %d" % len(data)
    if partial is not None:
        offset, length = partial
        data = data[offset : offset + length]
    literal8 = literal8 or b"\x00" in data
    return label + (b" ~{%d}\r\n" if literal8 else b" {%d}\r\n") % len(data) + data


def _convert(part: MimePart, include_header: bool) -> tuple[bytes, bool]:
    """The part's binary form (header too when asked), and whether anything was decoded."""
    encoding = part.transfer_encoding
    if not is_known_transfer_encoding(encoding):
        raise UnknownCteError()
    converted = encoding in _CONVERTED
    out: list[bytes] = []
    if include_header:
        out.append(_binary_header(part) if converted else part.header)
    children = part.children or ([part.message] if part.message is not None else [])
    if children:
        position = part.body_start
        for child in children:
            out.append(part.raw[position : child.header_start])
            data, child_converted = _convert(child, include_header=True)
            out.append(data)
            converted = converted or child_converted
            position = child.body_end
        out.append(part.raw[position : part.body_end])
        return b"".join(out), converted
    body = part.body
    if converted:
        out.append(decode_transfer(encoding, body))
    else:
        out.append(_BARE_LF.sub(b"\r\n", body))
    return b"".join(out), converted


def _binary_header(part: MimePart) -> bytes:
    """The header without its Content-Transfer-Encoding, saying `binary` at its end."""
    block = part.raw[part.header_start : part.header_end]
    kept = [
        field
        for field in _FIELD.findall(block)
        if field.split(b":", 1)[0].strip().lower() != b"content-transfer-encoding"
    ]
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += b"\r\n"
    closing = part.raw[part.header_end : part.body_start]
    return b"".join(kept) + _CTE_BINARY + closing


def _check_whole_message(message: MimePart) -> None:
    for part in message.walk_breadth_first():
        if not is_known_transfer_encoding(part.transfer_encoding):
            raise UnknownCteError()
