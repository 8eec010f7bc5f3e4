"""Shared fixtures: a configured mailpush on loopback, with real users and free ports."""

from __future__ import annotations

import random
import socket
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailpush.auth import add_user
from mailpush.config import load_settings
from mailpush.server import MailpushServer

USERS = ("alice", "bob", "carol")


#: Ports for the servers tests start come from below the kernel's ephemeral range
#: (32768-60999 on Linux): a client socket of another test, which takes an
#: ephemeral port, cannot then grab the port between its choice and the bind.
_SERVER_PORTS = range(20000, 32000)


def free_port() -> int:
    for _ in range(200):
        port = random.choice(_SERVER_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port in 20000-31999 for a test server")


def imap_listener(port: int) -> str:
    """Config lines for one plain IMAP listener on loopback (and no IMAPS one)."""
    return textwrap.dedent(
        f"""\
        service imap-login {{
          inet_listener imap {{
            address = 127.0.0.1
            port = {port}
          }}
          inet_listener imaps {{
            port = 0
          }}
        }}
        """
    )


def write_config(directory: Path, extra: str = "", lmtp_port: int | None = None) -> Path:
    """A config file with its data dir and passwd-file inside `directory`."""
    if lmtp_port is None:
        lmtp_port = free_port()
    (directory / "data").mkdir(exist_ok=True)
    users = directory / "users"
    if not users.exists():
        for name in USERS:
            add_user(users, name, "secret", "PLAIN")
    config = directory / "mailpush.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            protocols = lmtp
            mailpush_data_dir = {directory / "data"}
            passdb {{
              driver = passwd-file
              args = {users}
            }}
            service lmtp {{
              inet_listener lmtp {{
                address = 127.0.0.1
                port = {lmtp_port}
              }}
            }}
            """
        )
        + extra
        # One process, as the features were written for, unless the test is about workers
        # (the default is one per core: tests/test_workers*.py, test_server_defaults).
        + ("" if "mailpush_workers" in extra else "mailpush_workers = 1\n")
    )
    return config


ServerFactory = Callable[..., "AsyncIterator[MailpushServer]"]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Start an in-process server (optionally with extra config); stopped after the test."""
    started: list[MailpushServer] = []

    async def start(extra: str = "") -> MailpushServer:
        config = write_config(tmp_path, extra)
        server = MailpushServer(load_settings(config).settings)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def server(make_server: Callable[..., object]) -> MailpushServer:
    result = await make_server()  # type: ignore[operator]
    assert isinstance(result, MailpushServer)
    return result


def lmtp_port(server: MailpushServer) -> int:
    return next(listener.port for listener in server.listeners if listener.service == "lmtp")
