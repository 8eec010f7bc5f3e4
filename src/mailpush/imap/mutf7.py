"""IMAP's modified UTF-7 mailbox names (RFC 3501 §5.1.3).

The store keeps names as plain Unicode; the wire carries them in this
encoding, so the IMAP front end converts at the edge in both directions.
"""

from __future__ import annotations

import base64

__all__ = ["InvalidMutf7Error", "decode_mutf7", "encode_mutf7"]


class InvalidMutf7Error(ValueError):
    """A mailbox name on the wire is not valid modified UTF-7."""


def encode_mutf7(name: str) -> str:
    """Printable ASCII stays as is (`&` becomes `&-`); the rest becomes `&base64-` runs."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be", "surrogatepass")
            text = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
            out.append(f"&{text}-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mutf7(text: str) -> str:
    """The Unicode name for a wire name; raises `InvalidMutf7Error` with the reason."""
    if "&" not in text:
        if any(not 0x20 <= ord(ch) <= 0x7E for ch in text):
            raise InvalidMutf7Error(f"mailbox name {text!r} holds characters outside ASCII")
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "&":
            if not 0x20 <= ord(ch) <= 0x7E:
                raise InvalidMutf7Error(f"mailbox name {text!r} holds characters outside ASCII")
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise InvalidMutf7Error(f"mailbox name {text!r} has an unterminated '&' run")
        chunk = text[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        out.append(_decode_run(text, chunk))
    return "".join(out)


def _decode_run(text: str, chunk: str) -> str:
    b64 = chunk.replace(",", "/")
    if any(c not in _B64_CHARS for c in b64):
        raise InvalidMutf7Error(f"mailbox name {text!r} has invalid base64 in '&{chunk}-'")
    try:
        raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        if len(raw) % 2:
            raise ValueError("odd length")
        decoded = raw.decode("utf-16-be")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidMutf7Error(f"mailbox name {text!r}: '&{chunk}-' is not UTF-16") from exc
    if any(0x20 <= ord(c) <= 0x7E for c in decoded):
        # RFC 3501: printable ASCII must never be base64-encoded.
        raise InvalidMutf7Error(f"mailbox name {text!r} encodes printable ASCII in base64")
    return decoded


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
