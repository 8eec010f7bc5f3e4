"""auth_username_format templates, and finding the passwd-file entry for an address."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpush.auth.passwd_file import PasswdFile
from mailpush.auth.username_format import format_username, resolve_user
from mailpush.errors import SettingError


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%u", "Alice@Example.ORG"),
        ("%Lu", "alice@example.org"),
        ("%n", "Alice"),
        ("%Ln", "alice"),
        ("%d", "Example.ORG"),
        ("%Ld", "example.org"),
        ("%{user}", "Alice@Example.ORG"),
        ("%L{username}", "alice"),
        ("%{domain}/%{username}", "Example.ORG/Alice"),
        ("%Ln@mail.%Ld", "alice@mail.example.org"),
        ("100%%%n", "100%Alice"),
        ("static", "static"),
    ],
)
def test_format_username_expands_variables(template: str, expected: str) -> None:
    assert format_username(template, "Alice@Example.ORG") == expected


def test_name_without_domain_is_its_own_local_part() -> None:
    assert format_username("%n|%d|%u", "alice") == "alice||alice"


def test_domain_starts_at_the_first_at_sign_as_in_dovecot() -> None:
    assert format_username("%n|%d", "a@b@c") == "a|b@c"


def test_upper_case_modifier_works_as_in_dovecot() -> None:
    assert format_username("%Un/%U{domain}", "Alice@Example.ORG") == "ALICE/EXAMPLE.ORG"


def test_an_error_names_the_template_and_what_is_known() -> None:
    with pytest.raises(SettingError) as info:
        format_username("%Ln@%h", "alice")
    assert info.value.reason == (
        "unknown variable '%h' in '%Ln@%h' (known: %u, %n, %d, %{user}, %{username}, "
        "%{domain}, the %L and %U modifiers and %%)"
    )


@pytest.mark.parametrize("template", ["%x", "%L", "%", "%{user", "%{nope}", "%Lx", "%L%"])
def test_unknown_or_incomplete_variable_is_a_setting_error(template: str) -> None:
    with pytest.raises(SettingError, match="auth_username_format") as info:
        format_username(template, "alice")
    assert info.value.setting == "auth_username_format"
    assert "known:" in str(info.value)


@pytest.fixture
def passwd(tmp_path: Path) -> PasswdFile:
    path = tmp_path / "users"
    path.write_text(
        "alice:{PLAIN}local-alice\n"
        "alice@example.org:{PLAIN}full-alice\n"
        "bob:{PLAIN}bob\n"
        "carol@example.org:{PLAIN}carol\n"
    )
    return PasswdFile(path)


def test_full_address_entry_wins_over_local_part(passwd: PasswdFile) -> None:
    record = resolve_user(passwd, "Alice@Example.org")
    assert record is not None and record.password == "{PLAIN}full-alice"


def test_address_finds_a_local_part_entry(passwd: PasswdFile) -> None:
    record = resolve_user(passwd, "bob@example.org")
    assert record is not None and record.username == "bob"
    other = resolve_user(passwd, "alice@other.example")
    assert other is not None and other.password == "{PLAIN}local-alice"


def test_plain_login_name_resolves_directly(passwd: PasswdFile) -> None:
    record = resolve_user(passwd, "BOB")
    assert record is not None and record.username == "bob"


def test_full_address_entry_is_not_found_from_another_domain(passwd: PasswdFile) -> None:
    assert resolve_user(passwd, "carol@elsewhere.example") is None
    assert resolve_user(passwd, "carol") is None


def test_unknown_address_resolves_to_none(passwd: PasswdFile) -> None:
    assert resolve_user(passwd, "nobody@example.org") is None
    assert resolve_user(passwd, "@example.org") is None


def test_template_applies_before_lookup(passwd: PasswdFile) -> None:
    record = resolve_user(passwd, "Alice@Example.org", template="%Ln")
    assert record is not None and record.password == "{PLAIN}local-alice"
