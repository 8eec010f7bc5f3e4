"""TLS for every HTTPS push endpoint: system CAs, optionally an internal CA, always verified.

One place decides how drivers (chronos, ox, webhook, and the Lua driver's
`dovecot.http`) check an endpoint's certificate, so they cannot drift apart:

- the system CAs are trusted by default;
- `ssl_client_ca_file` (a driver option, else the global setting of that name)
  adds the CAs of a PEM file, for endpoints signed by an internal CA;
- verification (chain and host name) is never turned off: options that would
  disable it are refused at start-up rather than silently ignored;
- a failed verification becomes an error naming the endpoint (password
  masked), what the certificate check said and which CAs were trusted.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from ..config import parse_bool
from ..errors import InvalidValueError, SettingError
from ..logging_config import mask_secrets
from .base import DriverServices
from .driver_config import DriverConfig
from .shared_options import SSL_CLIENT_CA_FILE

__all__ = [
    "CA_FILE_OPTION",
    "client_ssl_context",
    "driver_ca_file",
    "driver_ssl_context",
    "tls_failure_reason",
]

#: The driver option (and global setting) naming extra CAs.
CA_FILE_OPTION = SSL_CLIENT_CA_FILE.name

#: Options other software uses to switch verification off; mailpush refuses them.
_REQUIRE_VALID = ("ssl_client_require_valid_cert",)
_ALLOW_INVALID = ("ssl_allow_invalid_cert", "http_client_ssl_allow_invalid_cert")


def driver_ssl_context(config: DriverConfig, services: DriverServices) -> ssl.SSLContext:
    """The TLS context one driver instance uses for all its requests.

    Raises SettingError (naming the option and the driver's place in the
    configuration) for an unreadable CA file or an option that would disable
    verification.
    """
    _refuse_disabled_verification(config)
    ca_file = driver_ca_file(config, services)
    setting = (
        f"{config.instance} {CA_FILE_OPTION}"
        if config.options.get(CA_FILE_OPTION, "").strip()
        else CA_FILE_OPTION
    )
    return client_ssl_context(ca_file, setting=setting, where=config.where or None)


def driver_ca_file(config: DriverConfig, services: DriverServices) -> Path | None:
    """The driver's own `ssl_client_ca_file` option, else the global setting."""
    own = config.options.get(CA_FILE_OPTION, "").strip()
    return Path(own) if own else services.ssl_client_ca_file


def client_ssl_context(
    ca_file: Path | None, *, setting: str = CA_FILE_OPTION, where: str | None = None
) -> ssl.SSLContext:
    """System CAs plus those in `ca_file`, with certificate and host name checks on."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except FileNotFoundError:
            raise SettingError(setting, f"CA file {ca_file} does not exist", where) from None
        except (OSError, ssl.SSLError) as exc:
            raise SettingError(
                setting,
                f"cannot load CA certificates from {ca_file}: {exc} "
                "(it must hold PEM certificates, -----BEGIN CERTIFICATE-----)",
                where,
            ) from None
    # create_default_context already requires a valid chain and host name; say so
    # here too, so that no later edit can weaken it unnoticed.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    return context


def tls_failure_reason(exc: BaseException, ca_file: Path | None) -> str | None:
    """What went wrong if `exc` is a TLS failure, else None.

    Written to follow "<METHOD> <masked url> failed: ", and to tell the admin
    which CAs were trusted and what to set.
    """
    trusted = "the system CAs" + (f" and {ca_file}" if ca_file is not None else "")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        detail = getattr(cert_error, "verify_message", None) or str(cert_error)
        return (
            f"its TLS certificate was not accepted: {detail} (trusted: {trusted}). "
            f"If the endpoint's certificate comes from an internal CA, set "
            f"{CA_FILE_OPTION} to a PEM file holding that CA"
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS failed: {mask_secrets(str(exc))} (trusted: {trusted})"
    return None


def _refuse_disabled_verification(config: DriverConfig) -> None:
    options: Mapping[str, str] = config.options
    why = (
        "mailpush always verifies HTTPS certificates; to trust an internal CA, "
        f"set {CA_FILE_OPTION} to its PEM file instead"
    )
    for name in _REQUIRE_VALID:
        if name in options and not _true(options[name], f"{config.instance} {name}", config):
            raise SettingError(f"{config.instance} {name}", why, config.where or None)
    for name in _ALLOW_INVALID:
        if name in options and _true(options[name], f"{config.instance} {name}", config):
            raise SettingError(f"{config.instance} {name}", why, config.where or None)


def _true(text: str, setting: str, config: DriverConfig) -> bool:
    if text == "":
        return True  # a bare 2.3 option (`name` without `=`) means yes
    try:
        return parse_bool(text)
    except InvalidValueError as exc:
        raise SettingError(setting, str(exc), config.where or None) from None
