"""RFC 5464 METADATA entry names as the store keeps them: validated, lower case.

Entry names are case-insensitive (RFC 5464 §3.2), so the store keeps one
canonical spelling and every caller — IMAP, the CLI, drivers — finds an entry
however it was written. Names form a `/`-separated hierarchy under one of the
two roots `/private` and `/shared`; a root alone names the whole subtree (a
GETMETADATA DEPTH prefix) but holds no value itself.
"""

from __future__ import annotations

from ..errors import InvalidMetadataEntryError

PRIVATE = "/private"
SHARED = "/shared"
ROOTS = (PRIVATE, SHARED)
MAX_ENTRY_LENGTH = 1024


def normalize_entry(entry: str) -> str:
    """The canonical form of an entry name that can hold a value (`/private/comment`)."""
    name = normalize_prefix(entry)
    if name in ROOTS:
        raise InvalidMetadataEntryError(
            entry, f"{name} is a hierarchy root; name an entry below it"
        )
    return name


def normalize_prefix(entry: str) -> str:
    """Like `normalize_entry`, but a bare root (`/private`, `/shared`) is accepted too."""
    if not entry.startswith("/"):
        raise InvalidMetadataEntryError(entry, "it must begin with '/'")
    if len(entry) > MAX_ENTRY_LENGTH:
        raise InvalidMetadataEntryError(
            entry[:40] + "...", f"it is longer than {MAX_ENTRY_LENGTH} characters"
        )
    for char in entry:
        if char in "*%":
            raise InvalidMetadataEntryError(entry, f"it must not contain {char!r}")
        if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            raise InvalidMetadataEntryError(entry, "it must not contain control characters")
    if "//" in entry:
        raise InvalidMetadataEntryError(entry, "it must not contain consecutive '/'")
    if entry.endswith("/"):
        raise InvalidMetadataEntryError(entry, "it must not end with '/'")
    name = entry.lower()
    root = name if name.count("/") == 1 else name[: name.index("/", 1)]
    if root not in ROOTS:
        raise InvalidMetadataEntryError(entry, "it must begin with /private/ or /shared/")
    return name


def is_within(entry: str, prefix: str) -> bool:
    """Whether canonical `entry` is `prefix` itself or lies below it (`""` holds all)."""
    return not prefix or entry == prefix or entry.startswith(prefix + "/")


def depth_below(entry: str, prefix: str) -> int:
    """How many levels `entry` lies below `prefix` (0 for the entry itself)."""
    return entry.count("/") - prefix.count("/")
