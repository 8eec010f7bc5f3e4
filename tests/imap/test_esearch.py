"""ESEARCH (RFC 4731): SEARCH RETURN (MIN MAX ALL COUNT), answered as Dovecot 2.3 answers."""

from __future__ import annotations

import imaplib

import pytest
from imapclient import IMAPClient

from mailpush.imap.esearch import format_number_list

from .conftest import ImapStack
from .test_sort import with_corpus


def esearch(imap: imaplib.IMAP4, *arguments: str, uid: bool = False) -> bytes:
    """The `* ESEARCH` line of one SEARCH (imaplib files it under ESEARCH)."""
    if uid:
        typ, data = imap.uid("SEARCH", *arguments)
    else:
        typ, data = imap._simple_command("SEARCH", *arguments)
    assert typ == "OK", data
    _, lines = imap.response("ESEARCH")
    assert len(lines) == 1, lines
    line = lines[0]
    assert isinstance(line, bytes)
    return line


async def test_search_return_options_summarise_the_result(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> list[bytes]:
        assert client.has_capability("ESEARCH")
        imap = client._imap
        return [
            esearch(imap, "RETURN", "(MIN MAX ALL COUNT)", "ALL"),
            esearch(imap, "RETURN", "(COUNT ALL MAX MIN)", "SUBJECT", "plan"),
            esearch(imap, "RETURN", "()", "1,3,5:7"),
            esearch(imap, "RETURN", "(MIN COUNT)", "FROM", "amy", uid=True),
            esearch(imap, "RETURN", "(MAX)", "CHARSET", "UTF-8", "ALL"),
        ]

    lines = await with_corpus(stack, work)

    tags = [line.split(b")", 1)[0] for line in lines]
    assert all(tag.startswith(b'(TAG "') for tag in tags), lines
    # The items always come as MIN, MAX, ALL, COUNT, whatever order was asked.
    assert [line.split(b") ", 1)[1] for line in lines] == [
        b"MIN 1 MAX 15 ALL 1:15 COUNT 15",
        b"MIN 1 MAX 12 ALL 1:4,12 COUNT 5",
        b"ALL 1,3,5:7",  # RETURN () means ALL
        b"UID MIN 1 COUNT 3",
        b"MAX 15",
    ]


async def test_an_empty_result_has_only_its_count(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[bytes, bytes]:
        imap = client._imap
        typ, _ = imap._simple_command("SEARCH", "RETURN", "(MIN MAX ALL)", "NOT", "ALL")
        assert typ == "OK"
        bare = imap.response("ESEARCH")[1][0]
        return bare, esearch(imap, "RETURN", "(COUNT MIN)", "NOT", "ALL")

    bare, counted = await with_corpus(stack, work)

    assert bare.endswith(b'")')  # `* ESEARCH (TAG "x")` and nothing else
    assert counted.endswith(b'") COUNT 0')


async def test_the_response_carries_the_command_tag(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[bytes, bytes]:
        imap = client._imap
        tag = imap._command("SEARCH", "RETURN", "(COUNT)", "ALL")
        typ, _ = imap._command_complete("SEARCH", tag)
        assert typ == "OK"
        return tag, imap.response("ESEARCH")[1][0]

    tag, line = await with_corpus(stack, work)

    assert line == b'(TAG "' + tag + b'") COUNT 15'


async def test_unknown_and_save_options_are_refused(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> list[str]:
        imap = client._imap
        refused = []
        for options in ("(FOO)", "(SAVE)", "COUNT"):
            try:
                imap._simple_command("SEARCH", "RETURN", options, "ALL")
            except imaplib.IMAP4.error as exc:
                refused.append(str(exc))
        return refused

    refused = await with_corpus(stack, work)

    assert len(refused) == 3
    assert "Unknown SEARCH return option" in refused[0]
    assert "Unknown SEARCH return option" in refused[1]  # no SEARCHRES: `$` is not saved
    assert "Invalid RETURN options" in refused[2]


@pytest.mark.parametrize(
    ("numbers", "text"),
    [([5], "5"), ([1, 2, 3, 7], "1:3,7"), ([6, 4, 1, 2, 3, 5, 7], "6,4,1:3,5,7"),
     ([3, 2, 1], "3,2,1")],
)
def test_number_lists_keep_their_order_and_join_only_ascending_runs(
    numbers: list[int], text: str
) -> None:
    assert format_number_list(numbers) == text
