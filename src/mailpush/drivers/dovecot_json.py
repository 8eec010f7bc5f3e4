"""JSON objects written the way Dovecot's OX and Chronos drivers write them.

Receivers (OX App Suite) were built against Dovecot's output, so the bytes
follow it: keys in the given order, no spaces, `\\" \\\\ \\b \\f \\n \\r \\t`,
other control characters and U+2028/U+2029 as `\\uXXXX`, every other
character as raw UTF-8 (docs/dovecot-reference.md#json-encoding). Text that
came from bytes is decoded with invalid UTF-8 replaced by U+FFFD, as Dovecot
does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["dovecot_json_object"]

JsonField = tuple[str, str | int]


def dovecot_json_object(fields: Sequence[JsonField]) -> bytes:
    """`[("user", "alice"), ("imap-uid", 3)]` → `{"user":"alice","imap-uid":3}` (UTF-8)."""
    text = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"))
    # A raw U+2028/U+2029 can only stand inside a string here, where Dovecot escapes it.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode("utf-8")
