"""The `* STATUS` response, shared by STATUS and LIST-STATUS (RFC 5819).

Items are written in Dovecot's order (imap-status.c), whatever order the
client asked for them in, and RECENT of the selected mailbox counts the
messages this session holds `\\Recent` for, as STATUS always did.
"""

from __future__ import annotations

from collections.abc import Iterable

from .parser import CommandSyntaxError
from .responses import mailbox_name
from .session_protocol import Session

__all__ = ["STATUS_ITEMS", "status_items", "write_status"]

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
    values = {
        "MESSAGES": result.messages,
        "RECENT": result.recent,
        "UIDNEXT": result.uidnext,
        "UIDVALIDITY": result.uidvalidity,
        "UNSEEN": result.unseen,
        "HIGHESTMODSEQ": result.highestmodseq,
    }
    if conn.view is not None and conn.view.name == result.mailbox:
        values["RECENT"] = len(conn.view.recent) + result.recent
    text = " ".join(f"{item} {values[item]}" for item in items)
    conn.out.add(b"* STATUS " + mailbox_name(result.mailbox) + f" ({text})\r\n".encode())
