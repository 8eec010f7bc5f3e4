"""Making log text safe: passwords in URLs masked, control characters escaped.

Driver URLs carry passwords (`http://login:pass@host/...`), and log messages
quote what came from the network. `logging_config` applies both to every
record; they live here, apart from the handler setup, so that the line
formatter and the syslog writer can use them too.
"""

from __future__ import annotations

import re

__all__ = ["TRACEBACK_INDENT", "escape_control_characters", "mask_secrets", "safe_traceback"]

#: Characters of a URL scheme (RFC 3986); it starts with a letter.
_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: What ends the user name of `scheme://user:password@host`.
_USER_END = frozenset("/:@")
_WORD = re.compile(r"\S+")
#: A password given as a parameter: a libpq URI's `?password=…` or a keyword/value
#: connection string's `password=…` (quoted or not). Linear: the alternatives of the
#: quoted form are disjoint.
_PASSWORD_PARAMETER = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^&\s]*)", re.I)

# C0 and C1 controls, DEL, the Unicode line and paragraph separators (some viewers
# break lines there), and lone surrogates: bytes that were not UTF-8, which a
# strict UTF-8 log file could not even write, losing the whole record.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSAFE_BUT_LF = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Prefix of every traceback line in a log file.
TRACEBACK_INDENT = "  "


def mask_secrets(text: str) -> str:
    """`http://user:secret@host` → `http://user:***@host`, anywhere in `text`; and a
    password given as a parameter (`?password=secret`, `password='secret'`) → `***`.

    The password runs to the LAST `@` of the URL's word, as URL parsers read
    the authority, so `u:se@cret@host` and a raw `/` in a password are masked
    whole; when a path also holds an `@` this masks too much (the host),
    never too little. Linear in the length of `text`: log messages quote
    network text of any size (a backtracking regex here took minutes for a
    megabyte without spaces, on the event loop).
    """
    if "=" in text:
        text = _PASSWORD_PARAMETER.sub(r"\1***", text)
    if "://" not in text:
        return text
    pieces: list[str] = []
    done = 0
    for word in _WORD.finditer(text):
        start, end = word.span()
        masked = _password_span(text, start, end)
        if masked is not None:
            pieces.append(text[done : masked[0]])
            pieces.append("***")
            done = masked[1]
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _password_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Where the password of the first `scheme://user:password@` in text[start:end] is.

    At most one per word: the password runs to the word's last `@`, so no later
    URL in the word can have one. Each scan stops at the next `:` or `/`, and
    so at the next `://`: the word is read a bounded number of times.
    """
    last_at = text.rfind("@", start, end)
    if last_at < 0:
        return None
    separator = text.find("://", start, end)
    while 0 <= separator < last_at:
        scheme = separator
        while scheme > start and text[scheme - 1] in _SCHEME_CHARS:
            scheme -= 1
        has_scheme = any(text[i] in _LETTERS for i in range(scheme, separator))
        user_end = separator + 3
        while user_end < end and text[user_end] not in _USER_END:
            user_end += 1
        if has_scheme and user_end < last_at and text[user_end] == ":":
            return user_end + 1, last_at
        separator = text.find("://", separator + 1, end)
    return None


def escape_control_characters(text: str) -> str:
    r"""CR LF → the four characters `\r\n`: one line, every control character visible.

    A backslash itself is left alone: an attacker writing a literal `\n` gains
    nothing, since it cannot start a new line, and paths stay readable.
    """
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_traceback(text: str) -> str:
    body = _UNSAFE_BUT_LF.sub(_escape, text.rstrip("\n"))
    return "\n".join(TRACEBACK_INDENT + line for line in body.split("\n"))
