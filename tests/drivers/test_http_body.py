"""Reading an endpoint's answer with a cap (drivers/http_body.py), over a real loopback socket.

- A body of at most `limit` bytes is read whole.
- A longer one gives its first `limit` bytes and says it was cut, whether or
  not the endpoint declared its length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from mailpush.drivers.http_body import read_at_most
from tests.support.http_receiver import HttpReceiver

LIMIT = 100_000


@pytest.fixture
async def endpoint() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


async def read(endpoint: HttpReceiver, size: int, *, chunked: bool) -> tuple[bytes, bool]:
    endpoint.answer_size = size
    endpoint.answer_chunked = chunked
    async with aiohttp.ClientSession() as session, session.get(endpoint.url) as response:
        body, whole = await read_at_most(response, LIMIT)
        if not whole:
            response.close()
        return body, whole


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_of_exactly_the_limit_is_read_whole(
    endpoint: HttpReceiver, chunked: bool
) -> None:
    assert await read(endpoint, LIMIT, chunked=chunked) == (b"x" * LIMIT, True)


@pytest.mark.parametrize("chunked", [False, True])
async def test_one_byte_over_the_limit_gives_the_first_limit_bytes_and_says_so(
    endpoint: HttpReceiver, chunked: bool
) -> None:
    assert await read(endpoint, LIMIT + 1, chunked=chunked) == (b"x" * LIMIT, False)


async def test_a_huge_body_is_cut_at_the_limit(endpoint: HttpReceiver) -> None:
    body, whole = await read(endpoint, 50 * 1024 * 1024, chunked=True)
    assert (len(body), whole) == (LIMIT, False)


async def test_an_empty_body_is_whole(endpoint: HttpReceiver) -> None:
    endpoint.status = 204
    async with aiohttp.ClientSession() as session, session.get(endpoint.url) as response:
        assert await read_at_most(response, LIMIT) == (b"", True)
