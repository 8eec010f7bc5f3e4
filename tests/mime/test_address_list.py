"""Whole address headers as Dovecot 2.3.19's lib-mail reads them for ENVELOPE and SEARCH."""

from __future__ import annotations

import pytest

from mailpush.mime.addresses import ListedAddress, format_address_list, parse_address_list

GROUP_END = ListedAddress(None, None, None, None)


def group(name: str) -> ListedAddress:
    return ListedAddress(None, None, name, None)


def mailbox(local: str, domain: str, name: str | None = None) -> ListedAddress:
    return ListedAddress(name, None, local, domain)


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        (
            "group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;",
            [group("group"), mailbox("g1", "d1.org"), mailbox("g2", "d2.org"), GROUP_END,
             group("group2"), mailbox("g3", "d3.org"), GROUP_END],
        ),
        ("group:;, group2: (foo) ;", [group("group"), GROUP_END, group("group2"), GROUP_END]),
        ("undisclosed-recipients:;", [group("undisclosed-recipients"), GROUP_END]),
        (
            "Route <@r1.example,@r2.example:user@domain.org>",
            [ListedAddress("Route", "@r1.example,@r2.example", "user", "domain.org")],
        ),
        ("<user-from (comment)@ (comment) domain.org>", [mailbox("user-from", "domain.org")]),
        ('"Quoted Name" <q@x.org>', [mailbox("q", "x.org", "Quoted Name")]),
        ("x@y (Real)", [mailbox("x", "y", "Real")]),
        ("user", [mailbox("user", "MISSING_DOMAIN")]),
        ("John Smith", [ListedAddress("John Smith", None, "MISSING_MAILBOX", "MISSING_DOMAIN")]),
        ("<>", [mailbox("MISSING_MAILBOX", "MISSING_DOMAIN")]),
        ("a@b, <broken", [mailbox("a", "b"), mailbox("broken", "SYNTAX_ERROR")]),
        ("a@b c@d", [mailbox("a", "b")]),
        ("user@[192.0.2.1]", [mailbox("user", "[192.0.2.1]")]),
        ("a@b,\r\n c@d", [mailbox("a", "b"), mailbox("c", "d")]),
    ],
)  # fmt: skip
def test_parses_every_address_and_group(value: str, entries: list[ListedAddress]) -> None:
    assert parse_address_list(value) == entries


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;",
         "group: <g1@d1.org>, <g2@d2.org>;, group2: <g3@d3.org>;"),
        ("group:;, group2: (foo) ;", "group:;, group2:;"),
        ('Route <@r1:u@d>, "Quoted Name" <q@x.org>, user',
         'Route <@r1:u@d>, "Quoted Name" <q@x.org>, <user@MISSING_DOMAIN>'),
        ("<user-from (comment)@ (comment) domain.org>", "<user-from@domain.org>"),
        ("=?UTF-8?Q?J=C3=B6rg?= <j@x.org>", "=?UTF-8?Q?J=C3=B6rg?= <j@x.org>"),
    ],
)  # fmt: skip
def test_writes_the_list_back_as_dovecot_does_for_search(value: str, written: str) -> None:
    assert format_address_list(parse_address_list(value)) == written


def test_hostile_headers_parse_without_recursion() -> None:
    """Nested comments are counted, not recursed into; each address is scanned a bounded
    number of times (these take milliseconds)."""
    nested = "(" * 50_000 + "a@b" + ")" * 50_000 + ", " + "x:" * 20_000

    assert parse_address_list(nested) == [
        mailbox("MISSING_MAILBOX", "MISSING_DOMAIN"), group("x"), mailbox("x", "MISSING_DOMAIN"),
        GROUP_END,
    ]  # fmt: skip
    assert parse_address_list("(" * 50_000 + "a@b, c@d") == []  # all one unclosed comment
    assert len(parse_address_list("a@b, " * 20_000)) == 20_000
