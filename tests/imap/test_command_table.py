"""The command table declares every command the server offers, in the states RFC 3501 allows."""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import inspect

import pytest

from mailpush.imap.command_spec import CommandSpec
from mailpush.imap.commands import COMMANDS
from mailpush.imap.parser import parse_command
from mailpush.imap.states import State

from .conftest import PASSWORD, ImapStack

ANY = frozenset(State)
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})

#: Every command and where it may run (RFC 3501 §6 and the extensions' RFCs).
EXPECTED_STATES = {
    "CAPABILITY": ANY, "NOOP": ANY, "LOGOUT": ANY, "ID": ANY,
    "STARTTLS": NOT_AUTH, "LOGIN": NOT_AUTH, "AUTHENTICATE": NOT_AUTH,
    "ENABLE": AUTH, "NAMESPACE": AUTH, "IDLE": AUTH, "SELECT": AUTH, "EXAMINE": AUTH,
    "CREATE": AUTH, "DELETE": AUTH, "RENAME": AUTH, "SUBSCRIBE": AUTH, "UNSUBSCRIBE": AUTH,
    "LIST": AUTH, "LSUB": AUTH, "STATUS": AUTH, "APPEND": AUTH,
    "GETMETADATA": AUTH, "SETMETADATA": AUTH,
    "CHECK": SELECTED, "CLOSE": SELECTED, "UNSELECT": SELECTED,
    "EXPUNGE": SELECTED, "UID EXPUNGE": SELECTED, "SEARCH": SELECTED, "UID SEARCH": SELECTED,
    "FETCH": SELECTED, "UID FETCH": SELECTED, "STORE": SELECTED, "UID STORE": SELECTED,
    "COPY": SELECTED, "UID COPY": SELECTED, "MOVE": SELECTED, "UID MOVE": SELECTED,
    "SORT": SELECTED, "UID SORT": SELECTED, "THREAD": SELECTED, "UID THREAD": SELECTED,
    "COMPRESS": AUTH, "NOTIFY": AUTH, "CANCELUPDATE": AUTH,
}  # fmt: skip

#: The commands a capability promises (STARTTLS is offered only with a TLS context).
COMMANDS_OF_CAPABILITY = {
    "IMAP4REV1": {
        "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT",
        "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB",
        "STATUS", "APPEND", "CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY",
        "UID SEARCH", "UID FETCH", "UID STORE", "UID COPY",
    },
    "AUTH=PLAIN": {"AUTHENTICATE"},
    "ID": {"ID"},
    "ENABLE": {"ENABLE"},
    "IDLE": {"IDLE"},
    "NAMESPACE": {"NAMESPACE"},
    "UIDPLUS": {"UID EXPUNGE"},
    "MOVE": {"MOVE", "UID MOVE"},
    "UNSELECT": {"UNSELECT"},
    "METADATA": {"GETMETADATA", "SETMETADATA"},
    "METADATA-SERVER": {"GETMETADATA", "SETMETADATA"},
    "SORT": {"SORT", "UID SORT"},
    "SORT=DISPLAY": {"SORT", "UID SORT"},
    "ESORT": {"SORT", "UID SORT"},
    "ESEARCH": {"SEARCH", "UID SEARCH"},
    "THREAD=REFERENCES": {"THREAD", "UID THREAD"},
    "THREAD=ORDEREDSUBJECT": {"THREAD", "UID THREAD"},
    "COMPRESS=DEFLATE": {"COMPRESS"},
    "BINARY": {"FETCH", "UID FETCH", "APPEND"},
    "CATENATE": {"APPEND"},
    "CONDSTORE": {"ENABLE", "SELECT", "EXAMINE", "FETCH", "UID FETCH", "STORE", "UID STORE",
                  "SEARCH", "UID SEARCH", "STATUS"},
    "QRESYNC": {"ENABLE", "SELECT", "EXAMINE", "UID FETCH", "UID EXPUNGE"},
    "LIST-EXTENDED": {"LIST"},
    "LIST-STATUS": {"LIST"},
    "NOTIFY": {"NOTIFY"},
    "CONTEXT=SEARCH": {"SEARCH", "UID SEARCH", "CANCELUPDATE"},
}  # fmt: skip


def test_every_command_is_declared_in_the_states_it_was_always_allowed_in() -> None:
    assert {name: spec.states for name, spec in COMMANDS.items()} == EXPECTED_STATES


def test_each_spec_is_filed_under_its_own_name_as_the_parser_spells_it() -> None:
    for name, spec in COMMANDS.items():
        assert spec.name == name
        assert parse_command(f"a1 {name.lower()}".encode()).name == name


def test_every_handler_takes_the_session_and_one_value_per_argument() -> None:
    for spec in COMMANDS.values():
        parameters = inspect.signature(spec.handler).parameters
        assert len(parameters) == 1 + len(spec.args), spec.name
        assert inspect.iscoroutinefunction(spec.handler), spec.name


def test_only_plain_fetch_store_search_sort_and_thread_hold_back_expunge_responses() -> None:
    # SORT and THREAD answer sequence numbers like SEARCH (RFC 5256 §4; Dovecot agrees).
    held_back = {name for name, spec in COMMANDS.items() if not spec.sends_expunge}
    assert held_back == {"FETCH", "STORE", "SEARCH", "SORT", "THREAD"}


def test_only_a_trailing_argument_is_optional() -> None:
    for spec in COMMANDS.values():
        for argument in spec.args[:-1]:
            assert argument.spacing != "optional", spec.name


async def test_every_advertised_capability_has_its_commands_declared(stack: ImapStack) -> None:
    def capabilities() -> tuple[set[str], set[str]]:
        client = imaplib.IMAP4(stack.host, stack.port)
        before = {c.upper() for c in client.capabilities}
        client.login("alice", PASSWORD)
        _, data = client.capability()
        after = {c.upper() for c in data[0].decode().split()}
        client.logout()
        return before, after

    before, after = await asyncio.to_thread(capabilities)
    advertised = before | after
    known_extensions = set(COMMANDS_OF_CAPABILITY) | {
        "SASL-IR", "LITERAL+", "CHILDREN", "SPECIAL-USE", "MULTIAPPEND", "LOGINDISABLED",
    }  # fmt: skip
    unexplained = {c for c in advertised if not c.startswith("APPENDLIMIT=")} - known_extensions
    assert not unexplained, f"capabilities without a known command list: {unexplained}"
    for capability in advertised:
        missing = COMMANDS_OF_CAPABILITY.get(capability, set()) - set(COMMANDS)
        assert not missing, f"{capability} is advertised but {missing} have no CommandSpec"


def test_command_specs_are_immutable_values() -> None:
    spec = COMMANDS["FETCH"]
    assert isinstance(spec, CommandSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "OTHER"  # type: ignore[misc]
