"""Reading a DATA section off the wire in a few large steps, not one per line.

aiosmtpd reads DATA one `readuntil(b"\\r\\n")` per line, with a log call and
two joins each: for a 3 KB message of 45 lines that was about a sixth of the
CPU time of an LMTP delivery (py-spy on bench/compare.py's `lua_record_8`).
Here the stream is read up to `\\r\\n.\\r\\n` in one step. Only where what was
read so far ends with a beginning of that (at the start, after a chunk cut
at the reader's limit) are single bytes read, so that a client that sent
`.\\r\\n` and waits for the reply is never waited for.

The result is what aiosmtpd's reader gives, byte for byte
(tests/lmtp/test_data_reader.py runs both on the same input): the content
without the final `.\\r\\n`, dot-unstuffed (the first character of every
line that starts with `.` removed, lines being CRLF-delimited), or the same
refusal. aiosmtpd refuses a line longer than its line limit and data longer
than its size limit (the stuffed lines counted, the final dot not),
whichever its line-by-line reading meets first: a line whose CRLF is not
within the line limit of its start is refused as too long as soon as it is
seen; otherwise the line that takes the count past the size limit makes it
too much, and a line over the line limit that does not is too long. Either
way the rest is read to the end and discarded, so the client's next command
is read as one. Only when a limit may have been reached are the lines
walked one by one (`_refusal`), over at most the prefix that decides it.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

__all__ = ["DataRefusal", "ReadData", "read_data"]

#: The end of a DATA section: the line `.` after a line's CRLF.
_END = b"\r\n.\r\n"
_CRLF = b"\r\n"


class DataRefusal(enum.Enum):
    """Why a DATA section is refused, with aiosmtpd's reply."""

    LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
    TOO_MUCH_DATA = "552 Error: Too much mail data"


@dataclass(frozen=True, slots=True)
class ReadData:
    """A DATA section read: its content, or why it was refused (content then empty)."""

    content: bytes
    refusal: DataRefusal | None = None


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> ReadData:
    """Read up to and including the line `.`; raises what `reader` raises at EOF.

    `size_limit` None or 0: no size limit. At most `size_limit + line_limit + 3`
    bytes are kept, enough to decide a refusal; the rest of a refused section
    is read and dropped."""
    keep = None if not size_limit else size_limit + line_limit + 3
    pieces: list[bytes] = []
    kept = size = 0
    # The last bytes read: the stream starts a line, as if after a CRLF.
    tail = _CRLF
    while True:
        if _begins_end(tail):
            # What comes next may finish `\r\n.\r\n` (or, at the start, be `.\r\n`):
            # a byte at a time, never waiting for more than the client must send.
            piece = await reader.readexactly(1)
        else:
            try:
                piece = await reader.readuntil(_END)
            except asyncio.LimitOverrunError as exc:
                # No end within the reader's limit: take what cannot hold its start.
                piece = await reader.readexactly(exc.consumed)
        if keep is None or kept < keep:
            pieces.append(piece)
            kept += len(piece)
        size += len(piece)
        tail = (tail + piece[-len(_END):])[-len(_END):]  # not a copy of the whole piece
        if tail == _END:
            break
    data = b"".join(pieces)
    if kept < size:
        return ReadData(b"", _refusal(data, size_limit, line_limit) or DataRefusal.TOO_MUCH_DATA)
    data = data[:-3]  # the line `.`
    if len(data) > line_limit or (size_limit and len(data) > size_limit):
        refusal = _refusal(data, size_limit, line_limit)
        if refusal is not None:
            return ReadData(b"", refusal)
    if data.startswith(b"."):
        data = data[1:]
    return ReadData(data.replace(b"\r\n.", _CRLF))


def _begins_end(tail: bytes) -> bool:
    """Whether `tail` ends with the beginning of the end (`\\r\\n.\\r\\n`), not all of it."""
    return tail.endswith((b"\r", b"\r\n", b"\r\n.", b"\r\n.\r"))


def _refusal(data: bytes, size_limit: int | None, line_limit: int) -> DataRefusal | None:
    """What aiosmtpd's line-by-line reading refuses `data` (the stuffed lines, or the
    prefix of them `read_data` kept) for, if anything (see the module docstring)."""
    counted = 0
    start = 0
    while start < len(data):
        end = data.find(_CRLF, start)
        if end < 0:
            # `read_data` kept up to here only: a line reaching past what decides
            # (see `keep`) is longer than the line limit, unless the size was passed.
            if len(data) - start > line_limit:
                return DataRefusal.LINE_TOO_LONG
            return DataRefusal.TOO_MUCH_DATA
        length = end + 2 - start
        if end - start > line_limit:
            return DataRefusal.LINE_TOO_LONG
        if size_limit and counted + length > size_limit:
            return DataRefusal.TOO_MUCH_DATA
        if length > line_limit:
            return DataRefusal.LINE_TOO_LONG
        counted += length
        start = end + 2
    return None
