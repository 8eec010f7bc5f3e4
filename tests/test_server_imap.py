"""`mailpush serve` runs IMAP beside LMTP: listeners from the config, TLS from ssl_cert/ssl_key."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
import textwrap
from pathlib import Path

import pytest
import trustme

from mailpush.config import load_settings
from mailpush.errors import SettingError
from mailpush.server import MailpushServer

from .conftest import free_port, lmtp_port, write_config

MESSAGE = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def imap_port(server: MailpushServer, service: str = "imap") -> int:
    return next(item.port for item in server.listeners if item.service == service)


def imap_config(tmp_path: Path, extra: str = "", imaps_port: int = 0) -> Path:
    config = write_config(
        tmp_path,
        textwrap.dedent(
            f"""\
            protocols = imap lmtp
            service imap-login {{
              inet_listener imap {{
                address = 127.0.0.1
                port = {free_port()}
              }}
              inet_listener imaps {{
                address = 127.0.0.1
                port = {imaps_port}
              }}
            }}
            """
        )
        + extra,
    )
    return config


@pytest.fixture
def certificate_authority() -> trustme.CA:
    return trustme.CA()


def tls_settings(tmp_path: Path, ca: trustme.CA) -> str:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return f"ssl = yes\nssl_cert = <{cert_path}\nssl_key = <{key_path}\n"


async def started(config: Path) -> MailpushServer:
    server = MailpushServer(load_settings(config).settings)
    await server.start()
    return server


async def test_serve_delivers_over_lmtp_and_shows_the_mail_over_imap(tmp_path: Path) -> None:
    server = await started(imap_config(tmp_path))
    try:

        def exchange() -> list[bytes]:
            with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as lmtp:
                lmtp.sendmail("a@example.org", ["alice"], MESSAGE)
            with imaplib.IMAP4("127.0.0.1", imap_port(server)) as imap:
                imap.login("alice", "secret")
                imap.select("INBOX")
                _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                imap.logout()
            return [part[1] for part in data if isinstance(part, tuple)]

        assert await asyncio.to_thread(exchange) == [b"Subject: hi\r\n\r\n"]
    finally:
        await server.stop()


async def test_imaps_and_starttls_use_the_configured_certificate(
    tmp_path: Path, certificate_authority: trustme.CA
) -> None:
    config = imap_config(
        tmp_path, tls_settings(tmp_path, certificate_authority), imaps_port=free_port()
    )
    server = await started(config)
    try:
        context = ssl.create_default_context()
        certificate_authority.configure_trust(context)

        def logins() -> tuple[str, str]:
            imaps_port = imap_port(server, "imaps")
            with imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=context) as imaps:
                implicit = imaps.login("alice", "secret")[0]
            with imaplib.IMAP4("127.0.0.1", imap_port(server)) as imap:
                imap.starttls(context)
                upgraded = imap.login("alice", "secret")[0]
            return implicit, upgraded

        assert await asyncio.to_thread(logins) == ("OK", "OK")
    finally:
        await server.stop()


async def test_imaps_refuses_a_client_that_does_not_trust_the_certificate(
    tmp_path: Path, certificate_authority: trustme.CA
) -> None:
    config = imap_config(
        tmp_path, tls_settings(tmp_path, certificate_authority), imaps_port=free_port()
    )
    server = await started(config)
    try:

        def connect() -> None:
            imaplib.IMAP4_SSL(
                "127.0.0.1", imap_port(server, "imaps"), ssl_context=ssl.create_default_context()
            )

        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(connect)
    finally:
        await server.stop()


async def test_an_unreadable_key_stops_start_up_naming_ssl_cert(
    tmp_path: Path, certificate_authority: trustme.CA
) -> None:
    settings_text = tls_settings(tmp_path, certificate_authority)
    (tmp_path / "key.pem").write_text("not a key\n")
    server = MailpushServer(load_settings(imap_config(tmp_path, settings_text)).settings)
    with pytest.raises(SettingError, match="ssl_cert"):
        await server.start()
    assert server.listeners == []
