"""A per-user endpoint (chronos, ox): the URL setting checked once, then one target per user."""

from __future__ import annotations

import base64
import ssl

import pytest

from mailpush.drivers.driver_config import DriverConfig
from mailpush.drivers.driver_options import DriverOptions
from mailpush.drivers.per_user_endpoint import PerUserEndpoint, checked_url_template
from mailpush.errors import SettingError

SECRET = "hunter2secret"


def options() -> DriverOptions:
    return DriverOptions(DriverConfig("ox", "ox", where="mailpush.conf:3"))


def endpoint(url: str) -> PerUserEndpoint:
    template = checked_url_template(options(), "url", "ox url", url)
    return PerUserEndpoint(
        template, ssl.create_default_context(), None, timeout=2.0, attempts=2,
        response_max_size=1024,
    )


def test_each_user_gets_the_url_expanded_for_them_with_basic_auth_apart() -> None:
    target = endpoint(f"https://login:{SECRET}@ox:8009/notify/%n?domain=%d").target(
        "ann smith@example.org"
    )
    assert str(target.url) == "https://ox:8009/notify/ann%20smith?domain=example.org"
    assert target.authorization == "Basic " + base64.b64encode(
        f"login:{SECRET}".encode()
    ).decode()
    assert SECRET not in target.shown
    assert (target.timeout, target.attempts, target.response_max_size) == (2.0, 2, 1024)


def test_a_user_name_cannot_change_the_urls_structure() -> None:
    target = endpoint("https://ox/notify/%u").target("eve/../admin?x=1#")
    assert target.url.host == "ox" and target.url.path.startswith("/notify/")
    assert target.url.query_string == "" and target.url.fragment == ""


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"u:{SECRET}@ox/n", "an http:// or https:// URL is required (got u:***@ox/n)"),
        (f"ftp://u:{SECRET}@ox/n", "an http:// or https:// URL is required (got ftp://u:***@ox/n)"),
        (f"http://u:{SECRET}@ox:99999/n", "not a valid URL"),
        (f"http://u:{SECRET}@ox/%x", "unknown variable '%x'"),
    ],
)
def test_a_bad_url_is_refused_naming_the_option_with_its_password_masked(
    url: str, reason: str
) -> None:
    with pytest.raises(SettingError) as raised:
        checked_url_template(options(), "url", "ox url", url)
    assert str(raised.value).startswith("mailpush.conf:3: ox url: ")
    assert reason in str(raised.value)
    assert SECRET not in str(raised.value)
