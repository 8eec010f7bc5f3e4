"""A service binds its socket through `listen` and fails with a ServiceError saying where."""

from __future__ import annotations

import asyncio
import socket
from typing import cast

import pytest

from mailpush.errors import ServiceError
from mailpush.listener import bound_address, listen, sharing_ports


class _Greeter(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance(transport, asyncio.Transport): uvloop's transports do not derive.
        writing = cast(asyncio.Transport, transport)
        writing.write(b"hello\r\n")
        writing.close()


async def test_listen_on_port_0_accepts_on_the_port_bound_address_reports() -> None:
    server = await listen("test", _Greeter, "127.0.0.1", 0)
    try:
        host, port = bound_address(server)
        assert host == "127.0.0.1" and port > 0
        reader, writer = await asyncio.open_connection(host, port)
        assert await reader.readline() == b"hello\r\n"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_listen_on_a_busy_port_names_the_service_address_and_reason() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServiceError) as caught:
            await listen("lmtp", _Greeter, "127.0.0.1", port)
    message = str(caught.value)
    assert message.startswith(f"lmtp: cannot listen on 127.0.0.1:{port}: ")
    assert "address already in use" in message.lower()


async def test_a_port_freed_a_moment_ago_can_be_bound_again_at_once() -> None:
    """SO_REUSEADDR: a restart is not refused while old connections sit in TIME_WAIT."""
    first = await listen("test", _Greeter, "127.0.0.1", 0)
    port = bound_address(first)[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.read()  # the server closes first, so its side goes to TIME_WAIT
    writer.close()
    first.close()
    await first.wait_closed()
    again = await listen("test", _Greeter, "127.0.0.1", port)
    again.close()
    await again.wait_closed()


async def test_inside_sharing_ports_two_listeners_take_one_port_and_both_accept() -> None:
    """Workers (docs/operations.md#workers): SO_REUSEPORT, the kernel spreads connections."""
    accepted: list[str] = []

    def counting(name: str) -> type[asyncio.Protocol]:
        class Counting(_Greeter):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.append(name)
                super().connection_made(transport)

        return Counting

    with sharing_ports():
        first = await listen("lmtp", counting("first"), "127.0.0.1", 0)
        port = bound_address(first)[1]
        second = await listen("lmtp", counting("second"), "127.0.0.1", port)
    try:
        for _ in range(32):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await reader.readline() == b"hello\r\n"
            writer.close()
        assert sorted(set(accepted)) == ["first", "second"]
        # A listener that does not share (another server) is refused as before.
        with pytest.raises(ServiceError, match=f"lmtp: cannot listen on 127.0.0.1:{port}: "):
            await listen("lmtp", _Greeter, "127.0.0.1", port)
    finally:
        for server in (first, second):
            server.close()
            await server.wait_closed()
