"""HTTPS endpoints: system CAs by default, an internal CA by setting, verification always on."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trustme

from mailpush.config import load_settings
from mailpush.dispatch import FrameworkServices
from mailpush.drivers import DriverConfig, driver_configs
from mailpush.drivers.chronos import ChronosDriver
from mailpush.drivers.http_target import HttpTarget
from mailpush.drivers.http_tls import client_ssl_context, driver_ssl_context
from mailpush.errors import EndpointCertificateError, SettingError
from mailpush.server import MailpushServer
from mailpush.store import SqliteStore
from tests.conftest import lmtp_port, write_config
from tests.drivers.calendar_messages import invite
from tests.drivers.ox_endpoints import LOGIN, OxReceiver


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="mailpush test CA")


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "internal-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_context(ca: trustme.CA, host: str = "127.0.0.1") -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    return context


@pytest.fixture
async def receiver(ca: trustme.CA) -> AsyncIterator[OxReceiver]:
    endpoint = OxReceiver("chronos", tls=server_context(ca))
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def chronos_config(url: str, options: str = "", extra: str = "") -> str:
    return (
        "mail_plugins = $mail_plugins notify push_notification push_notification_chronos\n"
        f"plugin {{\n  push_notification_driver = chronos:url={url} {options}\n}}\n"
        "mailpush_push_retry_initial = 100ms\nmailpush_push_retry_max_interval = 300ms\n" + extra
    )


def deliver(server: MailpushServer, raw: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp_port(server)) as client:
        client.ehlo("test")
        client.mail("organizer@example.net")
        client.rcpt("alice")
        code, _ = client.data(raw)
    assert code == 250


async def start(make_server: Callable[..., object], config: str) -> MailpushServer:
    server = await make_server(config)  # type: ignore[operator]
    assert isinstance(server, MailpushServer)
    return server


async def test_https_endpoint_signed_by_the_configured_ca_receives_the_push(
    receiver: OxReceiver, make_server: Callable[..., object], ca_file: Path
) -> None:
    assert receiver.url().startswith("https://")
    server = await start(
        make_server, chronos_config(receiver.url(), f"ssl_client_ca_file={ca_file}")
    )
    await asyncio.to_thread(deliver, server, invite())
    (request,) = await receiver.wait_for(1)
    assert request.json()["user"] == "alice"


async def test_https_endpoint_of_an_unknown_ca_fails_with_a_clear_error(
    receiver: OxReceiver, make_server: Callable[..., object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = await start(make_server, chronos_config(receiver.url()))
    await asyncio.to_thread(deliver, server, invite())
    deadline = time.monotonic() + 10
    while "was not accepted" not in caplog.text:
        assert time.monotonic() < deadline, caplog.text
        await asyncio.sleep(0.05)
    line = next(r.getMessage() for r in caplog.records if "was not accepted" in r.getMessage())
    url = f"https://{LOGIN}:***@127.0.0.1:{receiver.port}/chronos/v1/itip/pushmail"
    assert f"PUT {url} failed: its TLS certificate was not accepted" in line
    assert "unable to get local issuer certificate" in line
    assert "trusted: the system CAs" in line
    assert "set ssl_client_ca_file to a PEM file holding that CA" in line
    assert "s3cr" not in caplog.text
    assert receiver.attempts == 0 and receiver.accepted == []


async def test_https_certificate_for_another_host_is_refused_even_with_the_ca(
    ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    endpoint = OxReceiver("chronos", tls=server_context(ca, host="ox.example.test"))
    await endpoint.start()
    try:
        target = HttpTarget.from_url(
            endpoint.url().replace("%%", "%"),
            ssl_context=client_ssl_context(ca_file),
            ca_file=ca_file,
            timeout=5,
            attempts=2,
        )
        services = FrameworkServices(SqliteStore(tmp_path / "x.sqlite"), {}, lambda user: {})
        try:
            with pytest.raises(EndpointCertificateError) as raised:
                await target.send(services.http(), "PUT", b"{}", {})
        finally:
            await services.close()
    finally:
        await endpoint.stop()
    assert "mismatch" in str(raised.value) and f"and {ca_file}" in str(raised.value)
    assert endpoint.attempts == 0


async def test_global_ssl_client_ca_file_is_the_default_for_every_driver(
    receiver: OxReceiver, ca_file: Path, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, chronos_config(receiver.url(), extra=f"ssl_client_ca_file = {ca_file}\n")
    )
    settings = load_settings(config).settings
    assert settings.ssl_client_ca_file == ca_file
    services = FrameworkServices(
        SqliteStore(tmp_path / "x.sqlite"), settings.plugin, lambda user: {},
        ssl_client_ca_file=settings.ssl_client_ca_file,
    )
    (driver_config,) = driver_configs(settings)
    driver = ChronosDriver(driver_config, services)
    target = HttpTarget.from_url(
        driver.endpoint.url.expand("alice"), ssl_context=driver.endpoint.tls,
        ca_file=driver.endpoint.ca_file,
        timeout=5, attempts=1,
    )
    try:
        body = b'{"user":"alice","event":"MessageNew","folder":"INBOX","body":"Subject: x\\n\\n"}'
        status = await target.send(
            services.http(), "PUT", body, {"Content-Type": "application/json; charset=utf-8"}
        )
    finally:
        await services.close()
    assert status == 200 and len(receiver.accepted) == 1


def services_for(tmp_path: Path, ca_file: Path | None = None) -> FrameworkServices:
    return FrameworkServices(
        SqliteStore(tmp_path / "x.sqlite"), {}, lambda user: {}, ssl_client_ca_file=ca_file
    )


@pytest.mark.parametrize(
    "option",
    [
        {"ssl_client_require_valid_cert": "no"},
        {"ssl_allow_invalid_cert": "yes"},
        {"ssl_allow_invalid_cert": ""},
    ],
)
def test_options_that_would_disable_verification_are_refused(
    tmp_path: Path, option: dict[str, str]
) -> None:
    config = DriverConfig("chronos", "chronos", {"url": "https://ox/x", **option}, where="f:3")
    with pytest.raises(SettingError) as raised:
        driver_ssl_context(config, services_for(tmp_path))
    assert "mailpush always verifies HTTPS certificates" in str(raised.value)
    assert str(raised.value).startswith(f"f:3: chronos {next(iter(option))}")


def test_a_missing_ca_file_stops_start_up_naming_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    config = DriverConfig("ox", "ox", {"ssl_client_ca_file": str(missing)}, where="f:9")
    with pytest.raises(SettingError) as raised:
        driver_ssl_context(config, services_for(tmp_path))
    assert str(raised.value) == f"f:9: ox ssl_client_ca_file: CA file {missing} does not exist"


def test_a_ca_file_without_certificates_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(SettingError) as raised:
        driver_ssl_context(DriverConfig("ox", "ox", {}), services_for(tmp_path, junk))
    expected = f"ssl_client_ca_file: cannot load CA certificates from {junk}"
    assert str(raised.value).startswith(expected)


def test_the_context_verifies_chain_and_host_name(ca_file: Path) -> None:
    context = client_ssl_context(ca_file)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
