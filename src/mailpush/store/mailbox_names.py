"""Mailbox names as the store keeps them: UTF-8, `/` between levels, `INBOX` canonical.

IMAP's modified UTF-7 is the IMAP front end's business; by the time a name
reaches the store it is plain Unicode.
"""

from __future__ import annotations

from ..errors import InvalidMailboxNameError

SEPARATOR = "/"
INBOX = "INBOX"
MAX_NAME_LENGTH = 1024
MAX_LEVELS = 32
#: Dovecot's MAILBOX_MAX_HIERARCHY_NAME_LENGTH: the longest level a new mailbox may have.
MAX_LEVEL_BYTES = 255


def normalize_mailbox_name(name: str) -> str:
    """Validate `name` and return its canonical form.

    INBOX is case-insensitive (RFC 3501 §5.1), including as the first level of
    a hierarchy, so `inbox/Sub` and `INBOX/Sub` are one mailbox.
    """
    if not name:
        raise InvalidMailboxNameError("mailbox name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidMailboxNameError(f"mailbox name longer than {MAX_NAME_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise InvalidMailboxNameError(f"mailbox name {name!r} contains control characters")
    levels = name.split(SEPARATOR)
    if len(levels) > MAX_LEVELS:
        raise InvalidMailboxNameError(f"mailbox name {name!r} has more than {MAX_LEVELS} levels")
    if any(level == "" for level in levels):
        raise InvalidMailboxNameError(
            f"mailbox name {name!r} has an empty level (leading, trailing or doubled '/')"
        )
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return SEPARATOR.join(levels)


def check_new_mailbox_name(name: str) -> None:
    """Refuse a name for a mailbox about to be created (CREATE, RENAME's new name).

    On top of `normalize_mailbox_name`, no level may be longer than 255 bytes
    of UTF-8, Dovecot's limit for new names. It is not applied to names that
    already exist, so a mailbox made before the limit stays reachable.
    """
    problem = new_mailbox_name_problem(name)
    if problem is not None:
        raise InvalidMailboxNameError(problem)


def new_mailbox_name_problem(name: str) -> str | None:
    """Why `check_new_mailbox_name` would refuse `name`, or None."""
    for level in name.split(SEPARATOR):
        if len(level.encode("utf-8", "surrogatepass")) > MAX_LEVEL_BYTES:
            return f"mailbox name level {level[:40]!r}... is longer than {MAX_LEVEL_BYTES} bytes"
    return None


def parent_names(name: str) -> list[str]:
    """Every ancestor of `name`, outermost first: `a/b/c` → `a`, `a/b`."""
    levels = name.split(SEPARATOR)
    return [SEPARATOR.join(levels[:i]) for i in range(1, len(levels))]


def is_inside(name: str, ancestor: str) -> bool:
    """Whether `name` lies strictly below `ancestor` in the hierarchy."""
    return name.startswith(ancestor + SEPARATOR)
