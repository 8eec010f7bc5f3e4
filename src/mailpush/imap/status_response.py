"""The `* STATUS` response, shared by STATUS and LIST-STATUS (RFC 5819).

Items are written in Dovecot's order (imap-status.c), whatever order the
client asked for them in, and RECENT of the selected mailbox counts the
messages this session holds `\\Recent` for, as STATUS always did.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..store.models import MailboxStatus
from .parser import CommandSyntaxError
from .responses import mailbox_name
from .session_protocol import Session

__all__ = ["STATUS_ITEMS", "format_status", "status_items", "write_status"]

#: The STATUS items mailpush knows, in the order Dovecot writes them.
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ")


def status_items(names: Iterable[str]) -> tuple[str, ...]:
    """The requested items (upper case) in answer order; BAD for an unknown one."""
    wanted = set()
    for name in names:
        if name not in STATUS_ITEMS:
            raise CommandSyntaxError(f"Invalid status item {name}.")
        wanted.add(name)
    return tuple(item for item in STATUS_ITEMS if item in wanted)


async def write_status(conn: Session, name: str, items: tuple[str, ...]) -> None:
    """Add `* STATUS name (...)` for mailbox `name` (creating INBOX on first use)."""
    await conn.ensure_inbox(name)
    if "HIGHESTMODSEQ" in items:
        conn.enable_condstore()  # a CONDSTORE-enabling command (RFC 7162 §3.1)
    result = await conn.store.status(conn.require_user(), name)
    recent = result.recent
    if conn.view is not None and conn.view.name == result.mailbox:
        recent += len(conn.view.recent)
    conn.out.add(format_status(result, items, recent))


def format_status(
    status: MailboxStatus, items: tuple[str, ...], recent: int | None = None
) -> bytes:
    """The `* STATUS name (...)` line with `items` (in answer order) of `status`;
    `recent` replaces the store's RECENT (the selected mailbox adds this session's)."""
    values = {
        "MESSAGES": status.messages,
        "RECENT": status.recent if recent is None else recent,
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.highestmodseq,
    }
    text = " ".join(f"{item} {values[item]}" for item in items)
    return b"* STATUS " + mailbox_name(status.mailbox) + f" ({text})\r\n".encode()
