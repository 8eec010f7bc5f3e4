"""Log output for the whole process: secrets masked, network text made harmless.

Driver URLs carry passwords (`http://login:pass@host/...`); any log line, from
our code or a library's, passes through `SecretMaskingFilter` so the
password never reaches a log file.

Log messages quote what came from the network: an endpoint's error body, an
HTTP reason phrase, an IMAP login name, an LMTP address or command. A CR or
LF in such text would end the line and let the sender write a forged record
("... INFO mailpush.imap: login ok: user=<root>"), so the same filter escapes
every control character in the final message (`\r`, `\n`, `\x1b`), as
Dovecot's `str_sanitize` does before logging. A traceback keeps its lines
(they are ours), but the exception's own message may quote network text too:
control characters other than LF are escaped in it, and every line of the
traceback is indented, so no line of it can pass for a record of its own
(records start with their timestamp in the first column).
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

#: Characters of a URL scheme (RFC 3986); it starts with a letter.
_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: What ends the user name of `scheme://user:password@host`.
_USER_END = frozenset("/:@")
_WORD = re.compile(r"\S+")

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 and C1 controls, DEL, the Unicode line and paragraph separators (some viewers
# break lines there), and lone surrogates: bytes that were not UTF-8, which a
# strict UTF-8 log file could not even write, losing the whole record.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSAFE_BUT_LF = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Prefix of every traceback line in a log file.
TRACEBACK_INDENT = "  "


def mask_secrets(text: str) -> str:
    """`http://user:secret@host` → `http://user:***@host`, anywhere in `text`.

    The password runs to the LAST `@` of the URL's word, as URL parsers read
    the authority, so `u:se@cret@host` and a raw `/` in a password are masked
    whole; when a path also holds an `@` this masks too much (the host),
    never too little. Linear in the length of `text`: log messages quote
    network text of any size (a backtracking regex here took minutes for a
    megabyte without spaces, on the event loop).
    """
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


def _safe_traceback(text: str) -> str:
    body = _UNSAFE_BUT_LF.sub(_escape, text.rstrip("\n"))
    return "\n".join(TRACEBACK_INDENT + line for line in body.split("\n"))


class SecretMaskingFilter(logging.Filter):
    """Rewrites each record's final message with passwords masked and control
    characters escaped, and its traceback masked and indented (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = escape_control_characters(mask_secrets(message))
        if safe != message:
            record.msg = safe
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = _safe_traceback(mask_secrets(text))
        if record.stack_info:
            record.stack_info = _safe_traceback(mask_secrets(record.stack_info))
        return True


def configure_logging(log_path: Path | None = None, debug: bool = False) -> None:
    """Send log records to `log_path` (or stderr), masking secrets."""
    handler: logging.Handler
    if log_path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SecretMaskingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # aiosmtpd logs every connection at INFO; ours say what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
