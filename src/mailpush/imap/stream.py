"""The byte stream under one IMAP connection: buffered reads, whole writes, STARTTLS.

A small asyncio Protocol instead of StreamReader/StreamWriter, for three
reasons: STARTTLS must throw away anything the client pipelined in plain
text (command injection, CVE-2011-0411 style), an over-long line must be
skipped without buffering it, and a response is handed to the transport in
one `write` call.

After COMPRESS DEFLATE (`start_compression`) the socket carries deflate both
ways: input is inflated into the buffer only as the reader needs it (at most
up to the read high-water mark or the literal being read, see
compression.py), and each `write` goes out compressed and sync-flushed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import cast

from .compression import CompressionError, DeflateCodec

log = logging.getLogger(__name__)

__all__ = ["ConnectionClosedError", "ImapStream", "LineTooLongError"]

#: Stop reading from the socket while this much unread input is buffered.
READ_HIGH_WATER = 1024 * 1024


class ConnectionClosedError(Exception):
    """The peer closed the connection (or it was aborted) while we waited for input."""


class LineTooLongError(Exception):
    """A line exceeded the limit; it was skipped up to its end. Carries its first bytes."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        super().__init__("line too long")


class ImapStream(asyncio.Protocol):
    """One connection's transport, with the reading primitives the IMAP reader needs."""

    def __init__(self, on_connect: Callable[[ImapStream], None]) -> None:
        self._on_connect = on_connect
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._closed = False
        self._paused_reading = False
        self._want = 0
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self.tls = False
        #: Bytes read from and written to the socket (Dovecot's `in=` / `out=` at logout).
        self.bytes_in = 0
        self.bytes_out = 0
        #: Set by COMPRESS DEFLATE: input waits compressed here until it is read.
        self._codec: DeflateCodec | None = None

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's stream transports implement
        # asyncio.Transport's methods without deriving from it.
        self.transport = cast(asyncio.Transport, transport)
        self.tls = transport.get_extra_info("sslcontext") is not None
        self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self._codec is not None:
            self._codec.feed(data)
            self._inflate()
        else:
            self._buffer += data
        if self._over_high_water() and not self._paused_reading:
            assert self.transport is not None
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._eof = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # --- reading --------------------------------------------------------------------

    @property
    def peer(self) -> tuple[str, int] | None:
        if self.transport is None:
            return None
        peer = self.transport.get_extra_info("peername")
        return None if peer is None else (str(peer[0]), int(peer[1]))

    @property
    def closed(self) -> bool:
        return self._closed

    async def readline(self, limit: int) -> bytes:
        """One line without its CRLF (a bare LF is accepted too)."""
        start = 0
        while True:
            index = self._buffer.find(b"\n", start)
            if index >= 0:
                if index > limit:
                    head = bytes(self._buffer[:64])
                    del self._buffer[: index + 1]
                    self._maybe_resume()
                    raise LineTooLongError(head)
                line = bytes(self._buffer[:index])
                del self._buffer[: index + 1]
                self._maybe_resume()
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buffer) > limit:
                head = bytes(self._buffer[:64])
                await self._skip_line()
                raise LineTooLongError(head)
            start = len(self._buffer)
            await self._wait_for_data()

    async def readexactly(self, size: int) -> bytes:
        self._want = size
        try:
            while len(self._buffer) < size:
                await self._wait_for_data()
        finally:
            self._want = 0
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._maybe_resume()
        return data

    async def read_some(self, limit: int) -> bytes:
        """Between 1 and `limit` bytes, as soon as any are buffered (a literal being spooled).

        Unlike `readexactly`, the buffer never grows past the read high-water mark.
        """
        if not self._buffer:
            await self._wait_for_data()
        with memoryview(self._buffer) as view:
            data = bytes(view[:limit])  # one copy, not a bytearray slice and then bytes
        del self._buffer[:limit]
        self._maybe_resume()
        return data

    async def skip(self, size: int) -> None:
        """Read and forget `size` bytes (a literal we refused but must not misparse)."""
        while size > 0:
            if not self._buffer:
                await self._wait_for_data()
            taken = min(size, len(self._buffer))
            del self._buffer[:taken]
            size -= taken
            self._maybe_resume()

    async def _skip_line(self) -> None:
        while True:
            index = self._buffer.find(b"\n")
            if index >= 0:
                del self._buffer[: index + 1]
                self._maybe_resume()
                return
            self._buffer.clear()
            self._maybe_resume()
            await self._wait_for_data()

    async def _wait_for_data(self) -> None:
        if self._codec is not None and self._codec.pending:
            added = self._inflate()
            self._maybe_resume()
            if added:
                return
        if self._eof:
            raise ConnectionClosedError()
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._closed:
            raise ConnectionClosedError()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _over_high_water(self) -> bool:
        compressed = self._codec.pending if self._codec is not None else 0
        return len(self._buffer) > max(READ_HIGH_WATER, self._want) or compressed > READ_HIGH_WATER

    def _maybe_resume(self) -> None:
        if self._paused_reading and not self._over_high_water():
            assert self.transport is not None
            self._paused_reading = False
            self.transport.resume_reading()

    # --- writing ------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            if self._codec is not None:
                data = self._codec.deflate(data)
            self.bytes_out += len(data)
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's send buffer is above its high-water mark."""
        if not self._write_paused or self._closed:
            return
        loop = asyncio.get_running_loop()
        self._drain_waiter = loop.create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade in place; input pipelined before the handshake is discarded."""
        assert self.transport is not None
        self._buffer.clear()
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(self.transport, self, context, server_side=True)
        if transport is None:
            raise ConnectionClosedError()
        self.transport = transport
        self.tls = True

    # --- COMPRESS DEFLATE ----------------------------------------------------------------

    @property
    def compressed(self) -> bool:
        return self._codec is not None

    def start_compression(self) -> None:
        """Deflate both ways from here on (the tagged OK went out uncompressed before).

        What is buffered already follows the COMPRESS command, so the client
        compressed it: it is inflated like everything after it.
        """
        codec = DeflateCodec()
        codec.feed(bytes(self._buffer))
        self._buffer.clear()
        self._codec = codec
        self._inflate()

    def _inflate(self) -> bool:
        """Inflate waiting input into the buffer, up to what the reader may hold; any added?"""
        codec = self._codec
        assert codec is not None
        room = max(READ_HIGH_WATER, self._want) - len(self._buffer)
        added = False
        while room > 0 and codec.pending:
            try:
                data = codec.inflate(room)
            except CompressionError as exc:
                log.info("closing connection from %s: %s", self.peer, exc)
                self._codec = None
                self._eof = True
                self.abort()
                break
            if not data:
                break
            self._buffer += data
            room -= len(data)
            added = True
        return added
