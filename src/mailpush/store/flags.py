"""System flags as one bitmask, with Dovecot's bit values.

The push framework hands these values and names to drivers exactly as Dovecot's
`enum mail_flags` does, so the store keeps the same numbering rather than
translating at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

ANSWERED = 0x01
FLAGGED = 0x02
DELETED = 0x04
SEEN = 0x08
DRAFT = 0x10
#: Never stored: `\Recent` belongs to one IMAP session, but events report it.
RECENT = 0x20

#: Dovecot's fixed order for flag-name arrays (`dlua_push_flags`).
FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (ANSWERED, "\\Answered"),
    (FLAGGED, "\\Flagged"),
    (DELETED, "\\Deleted"),
    (SEEN, "\\Seen"),
    (DRAFT, "\\Draft"),
    (RECENT, "\\Recent"),
)
STORED_FLAGS = ANSWERED | FLAGGED | DELETED | SEEN | DRAFT

_BY_NAME = {name.lower(): bit for bit, name in FLAG_NAMES}


def flag_bit(name: str) -> int | None:
    """The bit of a system flag name (case-insensitive), or None for a keyword."""
    return _BY_NAME.get(name.lower())


def flag_names(mask: int) -> list[str]:
    """Flag names set in `mask`, in Dovecot's order."""
    return [name for bit, name in FLAG_NAMES if mask & bit]


def split_flags(names: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Separate system flags from keywords, keeping keyword order and dropping repeats.

    Keywords compare case-insensitively in IMAP, so the first spelling seen wins.
    """
    mask = 0
    keywords: list[str] = []
    seen: set[str] = set()
    for name in names:
        bit = flag_bit(name)
        if bit is not None:
            mask |= bit
        elif name.startswith("\\"):
            continue  # unknown system flags cannot be stored; IMAP rejects them earlier
        elif name.lower() not in seen:
            seen.add(name.lower())
            keywords.append(name)
    return mask & STORED_FLAGS, tuple(keywords)


def apply_flag_change(
    mode: Literal["replace", "add", "remove"],
    old_flags: int,
    old_keywords: tuple[str, ...],
    flags: int,
    keywords: tuple[str, ...],
) -> tuple[int, tuple[str, ...]]:
    """A message's flags after STORE's `FLAGS` / `+FLAGS` / `-FLAGS`.

    Shared by the stores and by an IMAP session that answers STORE for a
    message another session expunged (it changes only its own picture then).
    """
    if mode == "replace":
        return flags, keywords
    old_lower = {k.lower() for k in old_keywords}
    if mode == "add":
        added = tuple(k for k in keywords if k.lower() not in old_lower)
        return old_flags | flags, old_keywords + added
    removed = {k.lower() for k in keywords}
    return old_flags & ~flags, tuple(k for k in old_keywords if k.lower() not in removed)
