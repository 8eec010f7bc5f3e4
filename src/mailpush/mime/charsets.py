"""Turning bytes in a declared charset into text the way Dovecot does.

Dovecot converts with iconv and treats an unknown charset as UTF-8 (keeping
the valid UTF-8 and replacing the rest), so a bad label never loses the
text. Python's codec registry knows a few names that are not charsets at
all (`base64`, `rot13`, `unicode_escape`...); those are refused so that a
hostile `charset=` parameter cannot make us run a transform iconv would not.
"""

from __future__ import annotations

import codecs

__all__ = ["decode_text", "incremental_decoder", "is_utf8_charset"]

# lib-charset's charset_is_utf8(): these labels take the UTF-8 path, so 8-bit
# UTF-8 in a part labelled us-ascii still comes through.
_UTF8_LABELS = frozenset({"us-ascii", "ascii", "utf-8", "utf8"})

# Codecs Python accepts but iconv does not know (or that are not charsets).
_REFUSED_CODECS = frozenset(
    {
        "undefined",
        "unicode_escape",
        "raw_unicode_escape",
        "idna",
        "punycode",
        "mbcs",
        "oem",
        "palmos",
    }
)


def is_utf8_charset(charset: str) -> bool:
    """Whether Dovecot would skip conversion and only validate UTF-8."""
    return charset.strip().lower() in _UTF8_LABELS


def decode_text(data: bytes, charset: str | None) -> str:
    """Decode `data` in `charset`, replacing invalid input with U+FFFD; never raises."""
    name = _codec_name(charset)
    try:
        return data.decode(name, errors="replace")
    except Exception:  # a codec that misbehaves on odd input: fall back like Dovecot
        return data.decode("utf-8", errors="replace")


def incremental_decoder(charset: str | None) -> codecs.IncrementalDecoder:
    """A decoder that can be fed a body chunk by chunk (multi-byte chars may straddle chunks)."""
    name = _codec_name(charset)
    try:
        return codecs.getincrementaldecoder(name)(errors="replace")
    except Exception:
        return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _codec_name(charset: str | None) -> str:
    if charset is None:
        return "utf-8"
    label = charset.strip().lower()
    if not label or label in _UTF8_LABELS:
        return "utf-8"
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return "utf-8"
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return "utf-8"
    return info.name
