"""Driver URLs with Dovecot's user variables: expanded per user, checked at start-up."""

from __future__ import annotations

import pytest

from mailpush.drivers.url_template import UrlTemplate
from mailpush.errors import SettingError

SECRET = "hunter2secret"


@pytest.mark.parametrize(
    ("template", "user", "expected"),
    [
        ("https://ox/push/%{user}", "alice@example.org", "https://ox/push/alice@example.org"),
        ("https://ox/%Ld/%Un", "Alice@Example.ORG", "https://ox/example.org/ALICE"),
        ("https://u:p%%40ss@ox/%n", "bob", "https://u:p%40ss@ox/bob"),
        # The name is percent-encoded where it goes: it cannot add a path, query or host.
        ("https://ox/push/%u?x=1", "a/../b?c#d", "https://ox/push/a%2F..%2Fb%3Fc%23d?x=1"),
        ("https://ox/push/%u", "a+tag@ex", "https://ox/push/a+tag@ex"),
        # A `%` in the name is inserted, never expanded again.
        ("https://ox/push/%n", "100%u", "https://ox/push/100%25u"),
    ],
)
def test_the_url_is_expanded_for_each_user(template: str, user: str, expected: str) -> None:
    assert UrlTemplate(template, "ox url").expand(user) == expected


def test_the_sample_is_the_url_of_an_example_user() -> None:
    assert UrlTemplate("https://ox/%d/%n", "ox url").sample == "https://ox/example.org/user"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (f"https://u:{SECRET}@ox/%x", "unknown variable '%x'"),
        (f"https://u:{SECRET}@ox/%{{home}}", "unknown variable '%{home}'"),
        (f"https://u:{SECRET}@ox/100%", "'%' at the end is incomplete"),
    ],
)
def test_an_unknown_variable_stops_start_up_naming_the_setting_without_the_password(
    template: str, reason: str
) -> None:
    with pytest.raises(SettingError) as raised:
        UrlTemplate(template, "ox url", "/etc/dovecot/conf.d/90-ox.conf:3")
    assert raised.value.setting == "ox url"
    assert raised.value.reason.startswith(reason + " in 'https://u:***@ox/")
    assert "write %% for a literal %" in raised.value.reason
    assert SECRET not in str(raised.value)
