"""Dovecot's `%`-variables: one expander, each caller bringing its values and its policy
for a `%` that names nothing it has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import pytest

from mailpush.var_expand import (
    SHORT_NAMES,
    UnknownVariable,
    Value,
    describe_known,
    expand,
    keep_as_written,
    user_values,
)
from tests.test_import_graph import SOURCE_ROOT, import_graph

#: A user with a home, as Sieve paths and Lua scripts have one.
VALUES: Mapping[str, Value] = {
    **user_values("Alice@Example.ORG"),
    "home": "/home/Alice",
    "service": "imap",
}


class Refused(Exception):
    """What the test's refusing policy raises, carrying what the expander reported."""

    def __init__(self, unknown: UnknownVariable) -> None:
        super().__init__(unknown.reason)
        self.unknown = unknown


def refuse(unknown: UnknownVariable) -> NoReturn:
    raise Refused(unknown)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("static text", "static text"),
        ("", ""),
        ("%u", "Alice@Example.ORG"),
        ("%n|%d", "Alice|Example.ORG"),
        ("%h/%s", "/home/Alice/imap"),
        ("%{user}", "Alice@Example.ORG"),
        ("%{username}@%{domain}", "Alice@Example.ORG"),
        ("%{home}", "/home/Alice"),
        ("%Lu", "alice@example.org"),
        ("%Uu", "ALICE@EXAMPLE.ORG"),
        ("%L{domain}", "example.org"),
        ("%U{username}", "ALICE"),
        ("%LLn", "alice"),
        # Modifiers apply in order, as in Dovecot: the last case wins.
        ("%LUn", "ALICE"),
        ("%ULn", "alice"),
        ("%%", "%"),
        ("100%%%n", "100%Alice"),
        ("%%u", "%u"),
        ("%%%%", "%%"),
        ("x%%", "x%"),
        ("%Ln@mail.%Ld", "alice@mail.example.org"),
    ],
)
def test_every_form_expands_to_its_value(template: str, expected: str) -> None:
    assert expand(template, VALUES, refuse) == expected


def test_short_forms_are_dovecots_letters_for_long_names() -> None:
    assert dict(SHORT_NAMES) == {
        "u": "user", "n": "username", "d": "domain", "h": "home",
        "s": "service", "i": "uid", "p": "pid",
    }
    for letter, name in SHORT_NAMES.items():
        assert expand(f"%{letter}", {name: "v"}, refuse) == "v"


def test_a_value_holding_percent_is_not_expanded_again() -> None:
    assert expand("%u/%h", {"user": "100%u", "home": "%%d"}, refuse) == "100%u/%%d"


def test_a_function_value_is_called_only_when_the_template_names_it() -> None:
    calls: list[str] = []

    def home() -> str:
        calls.append("home")
        return "/home/x"

    values: dict[str, Value] = {**user_values("x"), "home": home}
    assert expand("/srv/%u", values, refuse) == "/srv/x"
    assert calls == []
    assert expand("%h/%Lh/%{home}", values, refuse) == "/home/x//home/x//home/x"
    assert calls == ["home"] * 3


def test_a_function_value_may_refuse_with_the_callers_error() -> None:
    def no_home() -> str:
        raise LookupError("x has no home")

    with pytest.raises(LookupError, match="no home"):
        expand("%h/sieve", {"home": no_home}, refuse)


# --- unknown variables: the caller's policy ----------------------------------------------

#: template, what keeping it as written gives, the text reported, the reason reported.
UNKNOWN = [
    ("%x", "%x", "%x", "unknown variable '%x'"),
    ("a%Lxb", "a%Lxb", "%Lx", "unknown variable '%Lx'"),
    ("%{nope}", "%{nope}", "%{nope}", "unknown variable '%{nope}'"),
    ("%L{nope}", "%L{nope}", "%L{nope}", "unknown variable '%L{nope}'"),
    ("%{}", "%{}", "%{}", "unknown variable '%{}'"),
    # A letter Dovecot knows is still unknown where the caller has no value for it.
    ("%p", "%p", "%p", "unknown variable '%p'"),
    ("%{pid}", "%{pid}", "%{pid}", "unknown variable '%{pid}'"),
    # Only a bare %% is a literal %: Dovecot would give % for %L%, mailpush refuses it.
    ("%L%", "%L%", "%L%", "unknown variable '%L%'"),
    ("%", "%", "%", "'%' at the end is incomplete"),
    ("ab%L", "ab%L", "%L", "'%L' at the end is incomplete"),
    # No `}` anywhere after: only the `%` is taken, the rest is read as text.
    ("%{user", "%{user", "%", "'%{' has no closing '}'"),
    ("%L{user %u", "%L{user Alice@Example.ORG", "%L", "'%L{' has no closing '}'"),
    # Dovecot's other modifiers and field widths are named as such.
    ("%Mu", "%Mu", "%M", "'%M': Dovecot's %M modifier is not supported "
     "(mailpush knows the %L and %U modifiers)"),
    ("%LHn", "%LHn", "%LH", "'%LH': Dovecot's %H modifier is not supported "
     "(mailpush knows the %L and %U modifiers)"),
    ("%3u", "%3u", "%3", "'%3': Dovecot's field width and offset are not supported"),
    ("%.2n", "%.2n", "%.", "'%.': Dovecot's field width and offset are not supported"),
    ("%-1n", "%-1n", "%-", "'%-': Dovecot's field width and offset are not supported"),
]


@pytest.mark.parametrize(("template", "kept", "text", "reason"), UNKNOWN)
def test_keeping_as_written_leaves_an_unknown_variable_in_place(
    template: str, kept: str, text: str, reason: str
) -> None:
    assert expand(template, VALUES, keep_as_written) == kept


@pytest.mark.parametrize(("template", "kept", "text", "reason"), UNKNOWN)
def test_a_refusing_policy_is_told_what_and_why(
    template: str, kept: str, text: str, reason: str
) -> None:
    with pytest.raises(Refused) as raised:
        expand(template, VALUES, refuse)
    assert raised.value.unknown == UnknownVariable(template, text, reason)


def test_a_percent_encoded_url_survives_keeping_as_written() -> None:
    url = "http://push.example/a%20b/%7Euser?to=%n"
    assert expand(url, VALUES, keep_as_written) == "http://push.example/a%20b/%7Euser?to=Alice"


def test_a_policy_may_substitute_text_and_sees_every_unknown_in_order() -> None:
    seen: list[str] = []

    def placeholder(unknown: UnknownVariable) -> str:
        seen.append(unknown.text)
        return "?"

    assert expand("%x-%u-%{y}-%", VALUES, placeholder) == "?-Alice@Example.ORG-?-?"
    assert seen == ["%x", "%{y}", "%"]


def test_a_name_ends_at_the_first_closing_brace() -> None:
    assert expand("%{a{b}c}", {"a{b": "v"}, refuse) == "vc}"


def test_a_template_without_percent_is_returned_as_is() -> None:
    assert expand("no variables", {}, refuse) == "no variables"


def test_long_templates_are_expanded_exactly_as_short_ones() -> None:
    # Past the parse cache's length: same result, parsed each time.
    template = "%u/" * 500 + "%x"
    assert expand(template, VALUES, keep_as_written) == "Alice@Example.ORG/" * 500 + "%x"
    many_unterminated = "%{" * 20_000
    assert expand(many_unterminated, VALUES, keep_as_written) == many_unterminated


# --- the user variables and the message a caller shows -----------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("alice@example.org", ("alice", "example.org")),
        ("alice", ("alice", "")),
        # The domain starts after the first `@`, as in Dovecot.
        ("a@b@c", ("a", "b@c")),
        ("@example.org", ("", "example.org")),
    ],
)
def test_user_values_split_the_name_at_the_first_at_sign(
    user: str, expected: tuple[str, str]
) -> None:
    values = user_values(user)
    assert values == {"user": user, "username": expected[0], "domain": expected[1]}


def test_describe_known_lists_the_forms_the_values_allow() -> None:
    assert describe_known(user_values("x")) == (
        "%u, %n, %d, %{user}, %{username}, %{domain}, the %L and %U modifiers and %%"
    )
    assert describe_known({"home": "", "session": ""}) == (
        "%h, %{home}, %{session}, the %L and %U modifiers and %%"
    )


def test_the_expander_imports_nothing_from_mailpush() -> None:
    """Auth, Sieve and the drivers all use it; it must not make them depend on each other."""
    assert import_graph(SOURCE_ROOT, "mailpush")["mailpush.var_expand"] == set()
