"""APPEND literals kept in temporary files while they arrive, not in memory.

A client announces a 45 MB literal and sends it as slowly as it likes; held
in memory (the socket buffer, the literal, the joined command) eight such
APPENDs held 590 MB. Above `threshold` bytes the connection writes the
literal to an unlinked temporary file in `directory` (Dovecot's
`mail_temp_dir`) as it arrives, a chunk at a time, so a connection holds at
most about one read buffer of it.

The store takes a message as bytes (push events summarize the whole body at
save time), so the file is read back once, just before saving. `loading`
lets one command at a time do that: however many big APPENDs arrive
together, one command's messages (at most APPENDLIMIT bytes) are loaded at
a time (the previous ones may linger a moment until the store's writer
thread lets go of them), and the store writes one transaction at a time.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import IO

from .parser import Tokenizer
from .stream import ImapStream

__all__ = ["AppendSpool", "SpooledLiteral", "message_argument"]

#: Bytes gathered from the socket before one write to the spool file.
WRITE_CHUNK = 256 * 1024


class SpooledLiteral:
    """One literal in a temporary file (deleted when closed, or when the process ends)."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self._file = file
        self.size = size

    async def read(self) -> bytes:
        """The whole literal, read in a worker thread."""
        return await asyncio.to_thread(self._read)

    def _read(self) -> bytes:
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._file.close()


class AppendSpool:
    """Where and from which size APPEND literals are spooled, and the loading gate."""

    def __init__(self, threshold: int, directory: str | None = None) -> None:
        self.threshold = threshold
        self.directory = directory
        self._loading = asyncio.Semaphore(1)

    def wants(self, size: int) -> bool:
        return size > self.threshold

    async def receive(self, stream: ImapStream, size: int) -> SpooledLiteral:
        """Read `size` literal bytes from `stream` into a new spool file."""
        file = await asyncio.to_thread(_new_spool_file, self.directory)
        spooled = SpooledLiteral(file, size)
        try:
            left = size
            pending: list[bytes] = []
            pending_size = 0
            while left > 0:
                data = await stream.read_some(min(left, WRITE_CHUNK))
                left -= len(data)
                pending.append(data)
                pending_size += len(data)
                if pending_size >= WRITE_CHUNK or left == 0:
                    chunk = b"".join(pending)
                    pending.clear()
                    pending_size = 0
                    await asyncio.to_thread(file.write, chunk)
            await asyncio.to_thread(file.flush)
        except BaseException:
            spooled.close()
            raise
        return spooled

    @asynccontextmanager
    async def loading(self) -> AsyncIterator[None]:
        """Held while a command's spooled literals are in memory on their way to the store."""
        async with self._loading:
            yield


def _new_spool_file(directory: str | None) -> IO[bytes]:
    return tempfile.TemporaryFile(prefix="mailpush-append-", dir=directory)


def message_argument(
    tokens: Tokenizer, spooled: Mapping[int, SpooledLiteral]
) -> bytes | SpooledLiteral:
    """APPEND's message: a string, or the spool of the literal that stands at this point.

    A spooled literal is left in the command as its `{n}` CRLF header alone; its
    bytes are in `spooled`, keyed by where they would have started.
    """
    data = tokens.data
    start = tokens.pos + (1 if tokens.peek_is(b"~") else 0)
    if data.startswith(b"{", start):
        close = data.find(b"}\r\n", start)
        if close >= 0 and close + 3 in spooled:
            tokens.pos = close + 3
            return spooled[close + 3]
    return tokens.string()
