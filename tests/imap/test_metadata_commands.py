"""RFC 5464 METADATA over IMAP: GETMETADATA / SETMETADATA with imaplib, imapclient and raw."""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import Callable
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.response_parser import parse_response

from .conftest import PASSWORD, ImapStack

T = TypeVar("T")

OX_OPT_IN = "/private/vendor/vendor.dovecot/http-notify"


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


def connect(stack: ImapStack, user: str = "alice") -> imaplib.IMAP4:
    client = imaplib.IMAP4(stack.host, stack.port)
    client.login(user, PASSWORD)
    return client


def command(client: imaplib.IMAP4, name: str, *args: str | bytes) -> tuple[str, str]:
    """(status, tagged text) of one command; NO and BAD come back rather than raise."""
    if name not in imaplib.Commands:
        imaplib.Commands[name] = ("AUTH", "SELECTED")
    try:
        status, data = client._simple_command(name, *args)
    except imaplib.IMAP4.error as exc:  # BAD
        return "BAD", str(exc)
    text = data[-1]
    return status, text.decode() if isinstance(text, bytes) else str(text)


def getmetadata(client: imaplib.IMAP4, *args: str) -> tuple[dict[str, Any], str]:
    """Entries of the `* METADATA` responses (value bytes or None) and the tagged text."""
    status, text = command(client, "GETMETADATA", *args)
    assert status == "OK", text
    _, untagged = client._untagged_response(status, [], "METADATA")
    # imaplib files the tagged `[METADATA LONGENTRIES n]` code under METADATA too.
    untagged = [item for item in untagged if item is not None
                and not (isinstance(item, bytes) and item.startswith(b"LONGENTRIES"))]
    entries: dict[str, Any] = {}
    if untagged:
        parsed = parse_response(untagged)
        for index in range(0, len(parsed), 2):
            pairs = parsed[index + 1]
            for name, value in zip(pairs[::2], pairs[1::2], strict=True):
                entries[name.decode()] = value
    return entries, text


def setmetadata(client: imaplib.IMAP4, mailbox: str, pairs: str) -> tuple[str, str]:
    return command(client, "SETMETADATA", mailbox, pairs)


async def test_metadata_is_advertised_after_login(stack: ImapStack) -> None:
    def session() -> tuple[bool, bool, bool]:
        client = IMAPClient(stack.host, stack.port, ssl=False)
        before = client.has_capability("METADATA")
        client.login("alice", PASSWORD)
        result = (before, client.has_capability("METADATA"),
                  client.has_capability("METADATA-SERVER"))
        client.logout()
        return result

    assert await in_thread(session) == (False, True, True)


async def test_server_entry_set_over_imap_is_what_the_store_api_reads(stack: ImapStack) -> None:
    def session() -> tuple[tuple[str, str], dict[str, Any]]:
        client = connect(stack)
        result = setmetadata(client, '""', f'({OX_OPT_IN} "user=11@3")')
        entries, _ = getmetadata(client, '""', OX_OPT_IN)
        client.logout()
        return result, entries

    result, entries = await in_thread(session)
    assert result == ("OK", "Setmetadata completed.")
    assert entries == {OX_OPT_IN: b"user=11@3"}
    assert await stack.store.get_metadata("alice", None, OX_OPT_IN) == "user=11@3"
    assert await stack.store.get_metadata("bob", None, OX_OPT_IN) is None


async def test_mailbox_entries_missing_ones_are_nil_and_names_ignore_case(
    stack: ImapStack,
) -> None:
    def session() -> dict[str, Any]:
        client = connect(stack)
        assert setmetadata(
            client, "inbox", '(/Private/Comment "mine" /shared/comment "ours")'
        )[0] == "OK"
        entries, _ = getmetadata(
            client, "INBOX", "(/private/comment /SHARED/comment /private/missing)"
        )
        client.logout()
        return entries

    assert await in_thread(session) == {
        "/private/comment": b"mine", "/shared/comment": b"ours", "/private/missing": None,
    }
    assert await stack.store.list_metadata("alice", None) == {}


async def test_nil_unsets_an_entry(stack: ImapStack) -> None:
    await stack.store.set_metadata("alice", None, "/private/comment", "old")

    def session() -> dict[str, Any]:
        client = connect(stack)
        assert setmetadata(client, '""', "(/private/comment NIL)")[0] == "OK"
        entries, _ = getmetadata(client, '""', "/private/comment")
        client.logout()
        return entries

    assert await in_thread(session) == {"/private/comment": None}
    assert await stack.store.get_metadata("alice", None, "/private/comment") is None


async def test_depth_returns_children_one_level_or_all_levels(stack: ImapStack) -> None:
    for entry in ("/private/a", "/private/a/b", "/private/a/b/c", "/private/ab"):
        await stack.store.set_metadata("alice", None, entry, entry[9:])

    def session() -> list[dict[str, Any]]:
        client = connect(stack)
        results = [
            getmetadata(client, '""', "/private/a")[0],
            getmetadata(client, "(DEPTH 1)", '""', "/private/a")[0],
            getmetadata(client, "(DEPTH infinity)", '""', "/private/a")[0],
            getmetadata(client, "(DEPTH 1)", '""', "/private")[0],
            # RFC 5464's examples put the options after the mailbox.
            getmetadata(client, '""', "(DEPTH infinity)", "(/private/a)")[0],
        ]
        client.logout()
        return results

    only, one, every, root, after = await in_thread(session)
    assert only == {"/private/a": b"a"}
    assert one == {"/private/a": b"a", "/private/a/b": b"a/b"}
    assert every == {"/private/a": b"a", "/private/a/b": b"a/b", "/private/a/b/c": b"a/b/c"}
    assert root == {"/private": None, "/private/a": b"a", "/private/ab": b"ab"}
    assert after == every


async def test_maxsize_leaves_out_long_values_and_reports_the_longest(stack: ImapStack) -> None:
    await stack.store.set_metadata("alice", None, "/private/short", "x" * 10)
    await stack.store.set_metadata("alice", None, "/private/long", "y" * 500)
    await stack.store.set_metadata("alice", None, "/private/longer", "z" * 900)

    def session() -> tuple[dict[str, Any], str]:
        client = connect(stack)
        result = getmetadata(
            client, "(MAXSIZE 100)", '""', "(/private/short /private/long /private/longer)"
        )
        client.logout()
        return result

    entries, text = await in_thread(session)
    assert entries == {"/private/short": b"x" * 10}
    assert text.startswith("[METADATA LONGENTRIES 900]")


async def test_multi_line_and_8bit_values_travel_as_literals(stack: ImapStack) -> None:
    value = "Grüße\r\nzweite Zeile".encode()

    def session() -> dict[str, Any]:
        client = connect(stack)
        literal = b"{%d+}\r\n" % len(value) + value  # LITERAL+ inside the list
        status, _ = command(client, "SETMETADATA", "INBOX", b"(/private/comment " + literal + b")")
        assert status == "OK"
        entries, _ = getmetadata(client, "INBOX", "/private/comment")
        client.logout()
        return entries

    assert await in_thread(session) == {"/private/comment": value}
    assert await stack.store.get_metadata("alice", "INBOX", "/private/comment") == value.decode()


async def test_a_synchronising_literal_value_is_accepted(stack: ImapStack) -> None:
    reader, writer = await asyncio.open_connection(stack.host, stack.port)
    try:
        await reader.readline()
        writer.write(f"a LOGIN alice {PASSWORD}\r\n".encode())
        while not (await reader.readline()).startswith(b"a "):
            pass
        writer.write(b"b SETMETADATA \"\" (/shared/comment {5}\r\n")
        assert (await reader.readline()).startswith(b"+")
        writer.write(b"hello /private/comment ~{3}\r\n")
        assert (await reader.readline()).startswith(b"+")
        writer.write(b"abc)\r\n")
        assert await reader.readline() == b"b OK Setmetadata completed.\r\n"
        writer.write(b"c GETMETADATA \"\" (/shared/comment /private/comment)\r\n")
        untagged = await reader.readline()
        assert await reader.readline() == b"c OK Getmetadata completed.\r\n"
    finally:
        writer.close()
    assert untagged == b'* METADATA "" (/shared/comment "hello" /private/comment "abc")\r\n'


async def test_refusals_carry_rfc_5464_response_codes(stack: ImapStack) -> None:
    stack.store.metadata.max_entries = 2
    too_big = "v" * (stack.store.metadata.max_value_size + 1)

    def session() -> list[tuple[str, str]]:
        client = connect(stack)
        results = [
            setmetadata(client, '""', '(/private/a "1" /private/b "2" /private/c "3")'),
            setmetadata(client, '""', '(/private/a "1" /private/b "2")'),
            setmetadata(client, '""', '(/private/a "again")'),
            command(client, "SETMETADATA", '""',
                    f"(/private/big {{{len(too_big)}+}}\r\n{too_big})"),
            setmetadata(client, "Nope", '(/private/comment "x")'),
            command(client, "GETMETADATA", "Nope", "/private/comment"),
            setmetadata(client, '""', '(/vendor/x "x")'),
            setmetadata(client, '""', '(/private/a* "x")'),
            setmetadata(client, '""', '(/private "x")'),
            command(client, "GETMETADATA", "(DEPTH 2)", '""', "/private"),
            command(client, "GETMETADATA", '""', "comment"),
        ]
        client.logout()
        return results

    results = await in_thread(session)
    (too_many, fits, replace, big, missing_set, missing_get, *bad) = results
    assert too_many[0] == "NO" and too_many[1].startswith("[METADATA TOOMANY]")
    assert fits[0] == replace[0] == "OK"
    assert big[0] == "NO" and big[1].startswith("[METADATA MAXSIZE 65536]")
    assert missing_set[0] == "NO" and missing_set[1].startswith("[NONEXISTENT]")
    assert missing_get[0] == "NO" and missing_get[1].startswith("[NONEXISTENT]")
    assert [status for status, _ in bad] == ["BAD"] * 5
    assert await stack.store.list_metadata("alice", None) == {
        "/private/a": "again", "/private/b": "2",
    }


async def test_entries_follow_a_rename_and_go_with_a_delete(stack: ImapStack) -> None:
    def session() -> tuple[dict[str, Any], tuple[str, str], tuple[str, str]]:
        client = connect(stack)
        client.create("Projects/Alpha")
        assert setmetadata(client, "Projects/Alpha", '(/private/comment "alpha")')[0] == "OK"
        client.rename("Projects", "Archive")
        moved, _ = getmetadata(client, "Archive/Alpha", "/private/comment")
        client.delete("Archive/Alpha")
        client.create("Archive/Alpha")
        fresh = command(client, "GETMETADATA", "Archive/Alpha", "/private/comment")
        old = command(client, "GETMETADATA", "Projects/Alpha", "/private/comment")
        client.logout()
        return moved, fresh, old

    moved, fresh, old = await in_thread(session)
    assert moved == {"/private/comment": b"alpha"}
    assert fresh[0] == "OK"
    assert old[0] == "NO"
    assert await stack.store.get_metadata("alice", "Archive/Alpha", "/private/comment") is None


async def test_imapclient_reads_and_writes_metadata_with_raw_commands(stack: ImapStack) -> None:
    def session() -> tuple[Any, ...]:
        client = IMAPClient(stack.host, stack.port, ssl=False)
        client.login("alice", PASSWORD)
        client.create_folder("Entwürfe")
        typ, _ = client._raw_command(
            b"SETMETADATA", [b"Entw&APw-rfe", b"(/shared/comment", b'"drafts")'], uid=False
        )
        assert typ == "OK"
        data = client._raw_command_untagged(
            b"GETMETADATA", [b"Entw&APw-rfe", b"/shared/comment"], response_name="METADATA",
            uid=False,
        )
        client.logout()
        return parse_response(data)

    assert await in_thread(session) == (b"Entw&APw-rfe", (b"/shared/comment", b"drafts"))
    assert await stack.store.get_metadata("alice", "Entwürfe", "/shared/comment") == "drafts"
