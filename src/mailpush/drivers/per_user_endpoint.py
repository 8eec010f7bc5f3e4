"""An endpoint whose URL holds `%` user variables: how chronos and ox reach OX App Suite.

Both drivers take a `url` with Dovecot's user variables (`UrlTemplate`) and
Basic auth in its userinfo, and send each user's request to that user's
expansion. Checking the setting at start-up (an http(s) URL with a host,
its password masked in every error) and making a user's `HttpTarget` with
the driver's TLS, timeout and attempts happen here, once for both, so the
two drivers cannot come to disagree about either. Both make one retry at
once by default (`max_retries = 1`), as Dovecot's OX and Chronos drivers do.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from ..logging_config import mask_secrets
from .base import DriverServices
from .driver_config import DriverConfig
from .driver_options import DriverOptions
from .http_target import HttpTarget, check_http_url, response_max_size
from .http_tls import driver_ca_file, driver_ssl_context
from .shared_options import HTTP_CLIENT_REQUEST_MAX_ATTEMPTS, MAX_RETRIES
from .url_template import UrlTemplate

__all__ = ["REQUEST_ATTEMPTS", "REQUEST_RETRIES", "PerUserEndpoint", "checked_url_template"]

REQUEST_RETRIES = MAX_RETRIES.with_default("1")
REQUEST_ATTEMPTS = HTTP_CLIENT_REQUEST_MAX_ATTEMPTS.with_default("2")


def checked_url_template(
    options: DriverOptions, option: str, setting: str, url: str
) -> UrlTemplate:
    """`url`, the value of `option` (as `setting` names it), as a per-user endpoint URL.

    Raises SettingError naming the option when `url` is no http(s) URL with a
    host, or uses an unknown `%` variable; the password is masked in each.
    """
    if not url.startswith(("http://", "https://")):
        # Checked before the template, which would quote a scheme-less value unmasked.
        raise options.error(
            option, f"an http:// or https:// URL is required (got {_shown_url(url)})"
        )
    template = UrlTemplate(url, setting, options.config.where or None)
    problem = check_http_url(template.sample)
    if problem is not None:
        raise options.error(option, mask_secrets(f"{problem} (got {template.sample})"))
    return template


@dataclass(frozen=True, slots=True)
class PerUserEndpoint:
    """The URL template and how to send to it; `target` is one user's endpoint."""

    url: UrlTemplate
    tls: ssl.SSLContext
    ca_file: Path | None
    timeout: float
    attempts: int
    response_max_size: int

    @classmethod
    def for_driver(
        cls,
        url: UrlTemplate,
        options: DriverOptions,
        config: DriverConfig,
        services: DriverServices,
        *,
        timeout: float,
    ) -> PerUserEndpoint:
        """With the instance's attempts, `response_max_size` and TLS (`ssl_client_ca_file`)."""
        return cls(
            url,
            timeout=timeout,
            attempts=options.attempts(REQUEST_RETRIES, REQUEST_ATTEMPTS),
            response_max_size=response_max_size(options),
            tls=driver_ssl_context(config, services),
            ca_file=driver_ca_file(config, services),
        )

    def target(self, user: str) -> HttpTarget:
        """Where `user`'s requests go: the template expanded for them."""
        return HttpTarget.from_url(
            self.url.expand(user),
            ssl_context=self.tls,
            ca_file=self.ca_file,
            timeout=self.timeout,
            attempts=self.attempts,
            response_max_size=self.response_max_size,
        )


def _shown_url(url: str) -> str:
    """`url` for an error message, its password masked even when it lacks the scheme."""
    if "://" in url:
        return mask_secrets(url)
    return mask_secrets(f"x://{url}").removeprefix("x://")
