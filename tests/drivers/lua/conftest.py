"""Lua driver tests: a mailpush server running a script against a real local HTTP endpoint,
and the driver alone over a real store for the calling protocol and the API."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mailpush.dispatch import FrameworkServices
from mailpush.drivers import DriverConfig
from mailpush.drivers.lua import LuaDriver
from mailpush.server import MailpushServer
from mailpush.store import SqliteStore
from tests.conftest import free_port, imap_listener, lmtp_port
from tests.support.http_receiver import HttpReceiver

FIXTURES = Path(__file__).parent / "fixtures"

#: The message the observed Dovecot run delivered
#: (docs/dovecot-reference.md#http-requests-of-the-example-scripts).
PLAIN_MESSAGE = (
    b"From: Plain Sender <plain@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Hello push\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0200\r\n"
    b"Message-ID: <plain.1@example.net>\r\n"
    b"\r\n"
    b"Body line one.\r\n"
    b"Body line two.\r\n"
)


@pytest.fixture
async def endpoint() -> AsyncIterator[HttpReceiver]:
    ep = HttpReceiver()
    await ep.start()
    yield ep
    await ep.stop()


def lua_server_config(script: Path | str, url: str, extra: str = "", *, imap: bool = True) -> str:
    """The configuration of Dovecot's Lua push documentation: `lua:file=…`, `push_lua_url`."""
    text = textwrap.dedent(
        f"""\
        mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
        plugin {{
          push_notification_driver = lua:file={script}
          push_lua_url = {url}
        }}
        """
    )
    if imap:
        text += imap_listener(free_port()) + textwrap.dedent(
            """\
            protocols = imap lmtp
            """
        )
    return text + extra


def imap_port(server: MailpushServer) -> int:
    return next(item.port for item in server.listeners if item.service == "imap")


def deliver(server: MailpushServer, recipients: list[str], raw: bytes = PLAIN_MESSAGE) -> None:
    """One LMTP transaction; LMTP answers DATA once per recipient, and each must be 250."""
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("sender@example.net")
        for recipient in recipients:
            code, _ = client.rcpt(recipient)
            assert code == 250
        code, _ = client.data(raw)
        codes = [code] + [client.getreply()[0] for _ in recipients[1:]]
    assert codes == [250] * len(recipients)


def imap_append(
    server: MailpushServer, user: str, raw: bytes, flags: str = "", mailbox: str = "INBOX"
) -> None:
    with imaplib.IMAP4("127.0.0.1", imap_port(server)) as client:
        client.login(user, "secret")
        typ, _ = client.append(mailbox, flags or None, None, raw)
        assert typ == "OK"
        client.logout()


def imap_status(server: MailpushServer, user: str, mailbox: str = "INBOX") -> bytes:
    with imaplib.IMAP4("127.0.0.1", imap_port(server)) as client:
        client.login(user, "secret")
        typ, data = client.status(mailbox, "(MESSAGES RECENT UNSEEN)")
        assert typ == "OK"
        client.logout()
    answer = data[0]
    assert isinstance(answer, bytes)
    return answer


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for something the dispatcher does in the background."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


DriverFactory = Callable[..., Awaitable[LuaDriver]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    mail = SqliteStore(tmp_path / "mail.sqlite", fsync="never")
    mail.open()
    yield mail
    await asyncio.to_thread(mail.close)


@pytest.fixture
async def make_driver(
    tmp_path: Path, store: SqliteStore
) -> AsyncIterator[DriverFactory]:
    """A LuaDriver for a script given as text, over a real store; closed afterwards."""
    drivers: list[LuaDriver] = []
    services_made: list[FrameworkServices] = []

    async def make(
        script: str,
        options: dict[str, str] | None = None,
        plugin: dict[str, str] | None = None,
        userdb: dict[str, dict[str, str]] | None = None,
        subsections: dict[str, dict[str, str]] | None = None,
        syntax: str = "2.3",
    ) -> LuaDriver:
        path = tmp_path / f"script{len(drivers)}.lua"
        path.write_text(textwrap.dedent(script))
        services = FrameworkServices(
            store, plugin or {}, lambda user: (userdb or {}).get(user, {})
        )
        services_made.append(services)
        config = DriverConfig(
            "lua", "lua", {"file": str(path), **(options or {})}, subsections or {},
            where="test.conf:1", syntax=syntax,  # type: ignore[arg-type]
        )
        driver = LuaDriver(config, services)
        await driver.start()
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        await driver.close()
    for services in services_made:
        await services.close()
