"""imaplib with COMPRESS=DEFLATE (RFC 4978): what a compressing client does on the wire.

imaplib (and imapclient 3.0) cannot compress, so `DeflateIMAP4` adds it the
way a client must: after the tagged OK of `COMPRESS DEFLATE`, each command
goes out as raw deflate ended by a sync flush, and responses are inflated
before imaplib's own reader sees them. Everything else is imaplib's.
"""

from __future__ import annotations

import imaplib
import zlib

__all__ = ["DeflateIMAP4", "DeflateIMAP4_SSL", "deflate_burst"]

# imaplib refuses commands it has no state table entry for (how it is extended).
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


def deflate_burst(compressor: zlib._Compress, data: bytes) -> bytes:
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


class _Deflating:
    """Mixed into an imaplib class: `compress()` switches both directions to deflate."""

    sock: object
    file: object
    _compressor: zlib._Compress | None = None
    _inflater: zlib._Decompress | None = None
    _plain = b""
    #: Compressed bytes received so far (a test may inspect the framing).
    raw_received = b""

    def compress(self) -> tuple[str, list[object]]:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")  # type: ignore[attr-defined]
        if typ == "OK":
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            self._inflater = zlib.decompressobj(-15)
        return typ, data

    def send_raw_compressed(self, data: bytes) -> None:
        """Bytes as they are, compressed (a test's hand-made command or bomb)."""
        assert self._compressor is not None
        self.sock.sendall(deflate_burst(self._compressor, data))  # type: ignore[attr-defined]

    def send(self, data: bytes) -> None:
        if self._compressor is None:
            super().send(data)  # type: ignore[misc]
            return
        self.send_raw_compressed(data)

    def readline(self) -> bytes:
        if self._inflater is None:
            return super().readline()  # type: ignore[misc, no-any-return]
        while b"\n" not in self._plain:
            self._fill()
        line, _, self._plain = self._plain.partition(b"\n")
        return line + b"\n"

    def read(self, size: int) -> bytes:
        if self._inflater is None:
            return super().read(size)  # type: ignore[misc, no-any-return]
        while len(self._plain) < size:
            self._fill()
        data, self._plain = self._plain[:size], self._plain[size:]
        return data

    def _fill(self) -> None:
        assert self._inflater is not None
        chunk = self.sock.recv(65536)  # type: ignore[attr-defined]
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed by the server")
        self.raw_received += chunk
        self._plain += self._inflater.decompress(chunk)


class DeflateIMAP4(_Deflating, imaplib.IMAP4):
    pass


class DeflateIMAP4_SSL(_Deflating, imaplib.IMAP4_SSL):  # noqa: N801 (imaplib's spelling)
    pass
