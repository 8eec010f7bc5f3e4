"""First-address splitting, with the display-name rules observed on Dovecot 2.3.19."""

from __future__ import annotations

import pytest

from mailpush.mime.addresses import FirstAddress, parse_first_address


@pytest.mark.parametrize(
    ("value", "address", "name"),
    [
        (
            "=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.net>",
            "joerg@example.net",
            "Jörg Müller",
        ),
        ('"Smith, John" <john@example.net>', "john@example.net", "Smith, John"),
        ("=?ISO-8859-1?B?SvZyZyDWaw==?= <j@example.net>", "j@example.net", "Jörg Ök"),
        ("gs@example.net (Group Sender)", "gs@example.net", "Group Sender"),
        ("plain@example.net", "plain@example.net", ""),
        ("undisclosed-recipients:;", "", "undisclosed-recipients"),
        ("<bracket@example.net>", "bracket@example.net", ""),
        ("localonly", "localonly", ""),
        ("Plain Sender <plain@example.net>", "plain@example.net", "Plain Sender"),
        ('"a\\"b" <q@example.net>', "q@example.net", 'a"b'),
        ("Jörg  Müller <raw@example.net>", "raw@example.net", "Jörg Müller"),
        ("John Smith", "", "John Smith"),
        ("<@relay.example:user@example.net>", "user@example.net", ""),
        ("user@[192.0.2.1]", "user@[192.0.2.1]", ""),
    ],
)
def test_splits_first_address(value: str, address: str, name: str) -> None:
    assert parse_first_address(value) == FirstAddress(address, name)


def test_first_of_three_recipients_is_used() -> None:
    value = '"Alice Example" <alice@example.org>, bob@example.org, carol@example.org'
    assert parse_first_address(value).address == "alice@example.org"


def test_folded_header_parses_across_lines() -> None:
    value = '"Alice\n Example"\n  <alice@example.org>'
    assert parse_first_address(value) == FirstAddress("alice@example.org", "Alice Example")


def test_missing_header_gives_empty_strings() -> None:
    assert parse_first_address(None) == FirstAddress("", "")
    assert parse_first_address("   ") == FirstAddress("", "")


def test_garbage_never_raises() -> None:
    for value in ("<<<", '"unterminated', "(((", "@", ":;", "a@", "\x00\ufffd<>"):
        parse_first_address(value)
