"""Which scripts run: Dovecot's sieve, sieve_before(N) and sieve_after(N) settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpush.errors import SettingError
from mailpush.sieve.locations import ScriptLocation, has_sieve_settings, script_locations


def test_order_is_before_then_personal_then_after() -> None:
    settings = {
        "sieve_after": "/after1.sieve",
        "sieve": "/home/alice/.dovecot.sieve",
        "sieve_before2": "/before2.sieve",
        "sieve_before": "/before1.sieve",
        "sieve_after2": "/after2.sieve",
    }
    assert script_locations(settings, "alice", None) == [
        ScriptLocation("sieve_before", Path("/before1.sieve"), False),
        ScriptLocation("sieve_before2", Path("/before2.sieve"), False),
        ScriptLocation("sieve", Path("/home/alice/.dovecot.sieve"), True),
        ScriptLocation("sieve_after", Path("/after1.sieve"), False),
        ScriptLocation("sieve_after2", Path("/after2.sieve"), False),
    ]


def test_numbered_settings_stop_at_the_first_gap() -> None:
    settings = {"sieve_before": "/one", "sieve_before3": "/three"}
    assert [loc.setting for loc in script_locations(settings, "alice", None)] == ["sieve_before"]


def test_user_variables_and_home_are_expanded() -> None:
    settings = {"sieve": "~/sieve/%n.sieve", "sieve_before": "/global/%d/%Lu.sieve"}
    locations = script_locations(settings, "Alice@Example.org", "/home/alice")
    assert [loc.path for loc in locations] == [
        Path("/global/Example.org/alice@example.org.sieve"),
        Path("/home/alice/sieve/Alice.sieve"),
    ]


def test_file_prefix_and_active_option_name_the_active_script() -> None:
    settings = {"sieve": "file:~/sieve;active=~/.dovecot.sieve", "sieve_after": "file:/after"}
    locations = script_locations(settings, "alice", "/home/alice")
    assert [loc.path for loc in locations] == [Path("/home/alice/.dovecot.sieve"), Path("/after")]


def test_relative_paths_are_relative_to_home() -> None:
    (location,) = script_locations({"sieve": "filters/main.sieve"}, "alice", "/home/alice")
    assert location.path == Path("/home/alice/filters/main.sieve")


def test_tilde_without_a_home_is_a_setting_error() -> None:
    with pytest.raises(SettingError) as caught:
        script_locations({"sieve": "~/.dovecot.sieve"}, "alice", None)
    assert caught.value.setting == "sieve"
    assert "home" in caught.value.reason


def test_other_location_types_are_refused() -> None:
    with pytest.raises(SettingError) as caught:
        script_locations({"sieve_before": "ldap:/etc/sieve-ldap.conf"}, "alice", None)
    assert caught.value.setting == "sieve_before"
    assert "'ldap:'" in caught.value.reason


def test_unknown_variable_names_the_sieve_setting() -> None:
    with pytest.raises(SettingError) as caught:
        script_locations({"sieve_after": "/sieve/%x"}, "alice", None)
    assert caught.value.setting == "sieve_after"
    assert "%x" in caught.value.reason


def test_unknown_variable_message_lists_what_sieve_paths_know() -> None:
    with pytest.raises(SettingError) as caught:
        script_locations({"sieve": "~/%{service}.sieve"}, "alice", "/home/alice")
    assert caught.value.reason == (
        "unknown variable '%{service}' in '~/%{service}.sieve' (known: %u, %n, %d, %h, "
        "%{user}, %{username}, %{domain}, %{home}, the %L and %U modifiers and %%)"
    )


def test_case_modifiers_apply_to_the_home_too() -> None:
    settings = {"sieve": "%L{home}/%Un.sieve", "sieve_after": "/x/%Lh"}
    locations = script_locations(settings, "alice", "/Home/Alice")
    assert [loc.path for loc in locations] == [
        Path("/home/alice/ALICE.sieve"),
        Path("/x/home/alice"),
    ]


def test_empty_values_mean_no_sieve() -> None:
    assert not has_sieve_settings({"sieve": " ", "push_notification_driver": "x"})
    assert has_sieve_settings({"sieve_after": "/x"})
    assert script_locations({"sieve": ""}, "alice", None) == []


def test_percent_h_is_the_home() -> None:
    settings = {"sieve": "%h/sieve/main.sieve", "sieve_after": "file:/srv/%{home}/after;x=1"}
    locations = script_locations(settings, "alice", "/home/alice")
    assert [loc.path for loc in locations] == [
        Path("/home/alice/sieve/main.sieve"),
        Path("/srv/home/alice/after"),
    ]


def test_percent_h_without_a_home_is_a_setting_error() -> None:
    with pytest.raises(SettingError) as caught:
        script_locations({"sieve_before": "%h/before.sieve"}, "alice", None)
    assert caught.value.setting == "sieve_before"
    assert "'%h/before.sieve' needs the user's home directory" in caught.value.reason


def test_a_home_containing_percent_is_not_expanded_again() -> None:
    settings = {"sieve": "~/%n.sieve", "sieve_after": "%h/after.sieve"}
    locations = script_locations(settings, "alice", "/home/100%u/%d")
    assert [loc.path for loc in locations] == [
        Path("/home/100%u/%d/alice.sieve"),
        Path("/home/100%u/%d/after.sieve"),
    ]


def test_a_literal_percent_h_is_written_as_double_percent() -> None:
    (location,) = script_locations({"sieve": "/sieve/%%h-%u"}, "alice", None)
    assert location.path == Path("/sieve/%h-alice")


def test_a_tilde_from_the_user_name_is_not_the_home() -> None:
    (location,) = script_locations({"sieve": "%u/x.sieve"}, "~", "/home/tilde")
    assert location.path == Path("/home/tilde/~/x.sieve")
