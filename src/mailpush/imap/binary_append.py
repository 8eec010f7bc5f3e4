"""APPEND of a literal8 (`~{n}`, RFC 3516): saved with its binary parts as base64, as Dovecot.

The re-encoding is mime/binary_parts.py's; it runs in a worker thread, and
only when a header declares a binary part (a regex scan decides), since the
message's size is the client's choice. A literal8 that declares nothing is
saved byte for byte.
"""

from __future__ import annotations

import asyncio

from ..mime.binary_parts import declares_binary, encode_binary_parts
from ..store import NewMessage
from .literal_spool import SpooledLiteral

__all__ = ["BinaryAppendMessage", "stored_form"]


class BinaryAppendMessage:
    """One APPEND message sent as literal8 (in memory or spooled) until it is saved."""

    def __init__(
        self,
        literal: bytes | SpooledLiteral,
        flags: int,
        keywords: tuple[str, ...],
        date: tuple[int, int] | None,
    ) -> None:
        self.literal = literal
        self.flags = flags
        self.keywords = keywords
        self.date = date

    async def load(self) -> NewMessage:
        literal = self.literal
        raw = literal if isinstance(literal, bytes) else await literal.read()
        date = self.date
        return NewMessage(
            await stored_form(raw), self.flags, self.keywords,
            date[0] if date else None, date[1] if date else 0,
        )  # fmt: skip


async def stored_form(raw: bytes) -> bytes:
    """What is stored for a message received in binary (CATENATE's first TEXT too)."""
    if not declares_binary(raw):
        return raw
    return await asyncio.to_thread(encode_binary_parts, raw)
