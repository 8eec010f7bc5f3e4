"""COMPRESS=DEFLATE (RFC 4978, docs/imap.md#compress): the codec under one connection.

After `COMPRESS DEFLATE` both directions are raw deflate (zlib with
`wbits=-15`, no header). Each response burst (one `ImapStream.write`) is
compressed and ended with a Z_SYNC_FLUSH, so a client can inflate it whole
without waiting for more: the same framing Dovecot's imap_zlib writes
(every burst ends `00 00 ff ff`).

Inflating is bounded. 64 KiB of deflate can expand to some 64 MiB (a
ratio near 1:1032), so input is never inflated all at once: compressed
bytes wait in `pending` and `inflate(limit)` produces at most `limit`
bytes, which the stream asks for only while its buffer is below the read
high-water mark (or the size of the literal being read). The stream's line
and literal limits then apply to the inflated bytes exactly as to plain
ones, and a deflate bomb costs its sender time, not our memory.
"""

from __future__ import annotations

import zlib

__all__ = ["COMPRESSION_LEVEL", "CompressionError", "DeflateCodec"]

#: Dovecot's default (imap_compress_deflate_level).
COMPRESSION_LEVEL = 6
#: Raw deflate: no zlib header or checksum (RFC 4978 §3).
_RAW_DEFLATE = -15


class CompressionError(Exception):
    """The client's compressed stream is not valid deflate (or it ended it)."""


class DeflateCodec:
    """Both directions of one compressed connection."""

    __slots__ = ("_deflater", "_inflater", "_tail", "_more_inside")

    def __init__(self, level: int = COMPRESSION_LEVEL) -> None:
        self._deflater = zlib.compressobj(level, zlib.DEFLATED, _RAW_DEFLATE)
        self._inflater = zlib.decompressobj(_RAW_DEFLATE)
        #: Compressed input not yet inflated.
        self._tail = b""
        #: The last inflate stopped at its limit: zlib may hold more output.
        self._more_inside = False

    def deflate(self, data: bytes) -> bytes:
        """One burst, compressed and sync-flushed so the client can read all of it now."""
        return self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)

    def feed(self, data: bytes) -> None:
        """Compressed bytes from the socket, to be inflated when the reader wants them."""
        self._tail += data

    @property
    def pending(self) -> int:
        """Compressed bytes waiting (1 when only zlib's own state may hold output)."""
        return len(self._tail) or int(self._more_inside)

    def inflate(self, limit: int) -> bytes:
        """At most `limit` inflated bytes of what was fed (b"" when nothing is ready)."""
        if limit <= 0 or not self.pending:
            return b""
        try:
            data = self._inflater.decompress(self._tail, limit)
        except zlib.error as exc:
            raise CompressionError(f"invalid deflate data from the client: {exc}") from None
        self._tail = self._inflater.unconsumed_tail
        self._more_inside = len(data) == limit
        if self._inflater.eof:
            # A client ends the stream only by closing; anything after it is not IMAP.
            raise CompressionError("the client ended its deflate stream")
        return data
