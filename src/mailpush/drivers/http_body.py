"""Reading a push endpoint's answer with a size cap, for every HTTP client of the drivers.

How long an answer is, is the endpoint's choice; the server's memory is not.
Both clients (http_target.py for chronos, ox and webhook; the Lua driver's
`dovecot.http` in lua/api/http_requests.py) read a body through
`read_at_most`, so neither can consume more than its limit + 1 bytes (after
decompression, so a small gzip bomb is cut off too). What a client does with
an answer over the limit is its own business: http_target quotes the start of
it in an error, the Lua API answers lib-http's "payload too large".
"""

from __future__ import annotations

import aiohttp

__all__ = ["read_at_most"]

#: Bytes asked of the connection at a time while reading a body.
_READ_CHUNK = 64 * 1024


async def read_at_most(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """(the body, True) if it is at most `limit` bytes, else (its first `limit`, False).

    Reads at most `limit` + 1 bytes: the one past the limit tells "exactly
    `limit`" from "longer". The caller closes a response cut short, rather than
    releasing it, so that the rest stays unread.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], False
