"""The variables of a Lua script's user: strict for `mail_user:var_expand()`, kept as
written in settings read with `plugin_getenv`."""

from __future__ import annotations

import os
import socket

import pytest

from mailpush.drivers.lua.var_expand import UnknownVariableError, UserVariables, expand

ALICE = UserVariables(
    "Alice@Example.org", home="/home/alice", service="lmtp", session="s1", uid="1000",
    gid="100",
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%u|%n|%d|%h|%s|%i", "Alice@Example.org|Alice|Example.org|/home/alice|lmtp|1000"),
        ("%{session}|%{gid}|%{uid}|%{home}", "s1|100|1000|/home/alice"),
        ("%Lu|%U{domain}|%%", "alice@example.org|EXAMPLE.ORG|%"),
        ("%p|%{pid}", f"{os.getpid()}|{os.getpid()}"),
        ("%{hostname}", socket.gethostname()),
    ],
)
def test_a_scripts_user_has_dovecots_mail_user_variables(template: str, expected: str) -> None:
    assert expand(template, ALICE, strict=True) == expected
    assert expand(template, ALICE, strict=False) == expected


@pytest.mark.parametrize(
    ("template", "kept", "message"),
    [
        ("%{nonsense}", "%{nonsense}", "Unknown variable '%{nonsense}'"),
        ("http://push/a%20b/%n", "http://push/a%20b/Alice", "Unknown variable '%2'"),
        ("%x", "%x", "Unknown variable '%x'"),
        ("%L%", "%L%", "Unknown variable '%L%'"),
        ("100%", "100%", "Unknown variable '%'"),
        ("%{open %u", "%{open Alice@Example.org", "Unknown variable '%'"),
    ],
)
def test_unknown_variables_are_kept_in_settings_and_refused_by_var_expand(
    template: str, kept: str, message: str
) -> None:
    assert expand(template, ALICE, strict=False) == kept
    with pytest.raises(UnknownVariableError) as raised:
        expand(template, ALICE, strict=True)
    assert str(raised.value) == message
