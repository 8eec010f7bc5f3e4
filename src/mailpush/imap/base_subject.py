"""The base subject of RFC 5256 §2.1 and the collation SORT compares strings with.

SORT SUBJECT and both THREAD algorithms compare subjects with the reply and
forward decorations taken off: `Re: [list] Fwd: hello (fwd)` has the base
subject `HELLO`. The steps are the RFC's, in the order Dovecot 2.3's
imap-base-subject runs them: decode RFC 2047 words, map every character to
its titlecase and decompose it (the `i;unicode-casemap` collation of RFC
5051, so `été` sorts as `E\\u0301TE\\u0301`, before `HELLO`), fold runs of
whitespace into one space, then repeatedly strip trailers (`(fwd)`),
leaders (`Re:`, `Fw:`, `Fwd:` with an optional `[blob]`), a leading
`[blob]` when something is left after it, and a `[fwd: ...]` wrapper.
Whether any `Re:`/`Fwd:`/`(fwd)` was stripped is what THREAD=REFERENCES
calls a reply or forward.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from ..mime.headers import decode_encoded_words

__all__ = ["base_subject", "collation_key"]

#: Dovecot folds these, and only these (not U+00A0), into one space.
_BLANKS = re.compile(r"[ \t\r\n]+")


def collation_key(text: str) -> str:
    """`text` titlecased and decomposed: strings SORT compares code point by code point."""
    if text.isascii():
        return text.upper()
    return unicodedata.normalize("NFKD", "".join(_titlecase(char) for char in text))


def base_subject(raw: str | None) -> tuple[str, bool]:
    """(base subject in collation form, whether it was a reply or forward) of a raw header.

    A missing Subject header has the empty base subject, like an empty one.
    """
    if raw is None:
        return "", False
    text = decode_encoded_words(raw) if "=?" in raw else raw
    subject = _pack_whitespace(collation_key(text))
    reply = False
    while True:
        subject, trailer_reply = _strip_trailers(subject)
        reply = reply or trailer_reply
        while True:
            subject, leader_reply, stripped_leader = _strip_leader(subject)
            reply = reply or leader_reply
            subject, stripped_blob = _strip_blob(subject)
            if not stripped_leader and not stripped_blob:
                break
        if subject.startswith("[FWD:") and subject.endswith("]"):
            subject = subject[5:-1]
            reply = True
            continue
        return subject, reply


@lru_cache(maxsize=4096)
def _titlecase(char: str) -> str:
    """The simple titlecase mapping: one character stays one (`ß` stays `ß`, as in Dovecot)."""
    title = char.title()
    if len(title) == 1:
        return title
    upper = char.upper()
    return upper if len(upper) == 1 else char


def _pack_whitespace(text: str) -> str:
    """Runs of blanks and line breaks become one space; none at either end."""
    return _BLANKS.sub(" ", text).strip(" ")


def _strip_trailers(subject: str) -> tuple[str, bool]:
    """Remove trailing `(fwd)` and blanks (subj-trailer); whether an `(fwd)` went."""
    reply = False
    while True:
        if subject.endswith(" "):
            subject = subject.rstrip(" ")
        elif subject.endswith("(FWD)"):
            subject = subject[:-5]
            reply = True
        else:
            return subject, reply


def _strip_leader(subject: str) -> tuple[str, bool, bool]:
    """Remove one run of leaders: blanks, or blobs followed by `Re:`/`Fw:`/`Fwd:`.

    Returns the rest, whether a `Re:`/`Fwd:` went, and whether anything went.
    """
    stripped = subject.lstrip(" ")
    if stripped != subject:
        rest, reply, _ = _strip_leader(stripped)
        return rest, reply, True
    pos = 0
    while subject.startswith("[", pos):  # *subj-blob before the subj-refwd
        end = _blob_end(subject, pos)
        if end is None:
            break
        pos = end
    after = _refwd_end(subject, pos)
    if after is None:
        return subject, False, False
    return subject[after:], True, True


def _refwd_end(subject: str, pos: int) -> int | None:
    """Where `("RE" / "FW" ["D"]) *WSP [subj-blob] ":"` at `pos` ends, or None."""
    if subject.startswith("RE", pos):
        pos += 2
    elif subject.startswith("FWD", pos):
        pos += 3
    elif subject.startswith("FW", pos):
        pos += 2
    else:
        return None
    while subject.startswith(" ", pos):
        pos += 1
    if subject.startswith("[", pos):
        end = _blob_end(subject, pos)
        if end is None:
            return None
        pos = end
    if not subject.startswith(":", pos):
        return None
    return pos + 1


def _blob_end(subject: str, pos: int) -> int | None:
    """Where the `"[" *BLOBCHAR "]" *WSP` at `pos` ends, or None if it is not one."""
    end = pos + 1
    while end < len(subject) and subject[end] not in "[]":
        end += 1
    if end >= len(subject) or subject[end] != "]":
        return None
    end += 1
    while subject.startswith(" ", end):
        end += 1
    return end


def _strip_blob(subject: str) -> tuple[str, bool]:
    """Remove a leading `[blob]` when a non-empty base subject remains after it."""
    if not subject.startswith("["):
        return subject, False
    end = _blob_end(subject, 0)
    if end is None or end >= len(subject):
        return subject, False
    return subject[end:], True

