"""LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819), as a client sees them over imaplib.

The mailbox tree used throughout (alice's, besides the default mailboxes):

    a/b/c      exists, subscribed; a and a/b exist only as its parents
    x, x/y     exist, both subscribed; x holds one message
    gone       subscribed, then deleted (a subscription without a mailbox)

The answers are Dovecot 2.3's (tests/dovecot/test_imap_extensions_differential.py
compares them with a real Dovecot).
"""

from __future__ import annotations

import asyncio
import imaplib
import time

from .conftest import PASSWORD, ImapStack
from .test_list_hardening import TEN_THOUSAND, command

MESSAGE = b"From: a@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


def _tree(client: imaplib.IMAP4) -> None:
    for line in ("CREATE a/b/c", "CREATE x", "CREATE x/y", "CREATE gone", "SUBSCRIBE a/b/c",
                 "SUBSCRIBE x", "SUBSCRIBE x/y", "SUBSCRIBE gone", "DELETE gone"):  # fmt: skip
        assert command(client, line)[-1].split()[1] == b"OK", line
    assert client.append("x", None, None, MESSAGE)[0] == "OK"


async def _answers(stack: ImapStack, *lines: str) -> list[list[bytes]]:
    """Each command's untagged lines (CRLF stripped) and then its tagged line."""

    def run() -> list[list[bytes]]:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=10)
        client.login("alice", PASSWORD)
        _tree(client)
        out = [[line.rstrip(b"\r\n") for line in command(client, text)] for text in lines]
        client.logout()
        return out

    return await asyncio.to_thread(run)


async def test_capabilities_are_advertised_after_login(stack: ImapStack) -> None:
    def capabilities() -> list[str]:
        client = imaplib.IMAP4(stack.host, stack.port)
        client.login("alice", PASSWORD)
        _, data = client.capability()
        client.logout()
        return data[0].decode().split()

    assert {"LIST-EXTENDED", "LIST-STATUS"} <= set(await asyncio.to_thread(capabilities))


async def test_plain_list_is_unchanged_and_extended_syntax_drops_child_flags(
    stack: ImapStack,
) -> None:
    plain, empty_options, empty_return = await _answers(
        stack, 'LIST "" a*', 'LIST () "" a*', 'LIST "" a* RETURN ()'
    )
    assert plain[:-1] == [
        b'* LIST (\\Noselect \\HasChildren) "/" a',
        b'* LIST (\\Noselect \\HasChildren) "/" a/b',
        b'* LIST (\\HasNoChildren) "/" a/b/c',
    ]
    # In extended form a name that exists only as a parent is \NonExistent.
    expected = [b'* LIST (\\NonExistent) "/" a', b'* LIST (\\NonExistent) "/" a/b',
                b'* LIST () "/" a/b/c', b"OK List completed."]  # fmt: skip
    for answer in (empty_options, empty_return):
        assert [*answer[:-1], answer[-1].split(b" ", 1)[1]] == expected


async def test_subscribed_selection_lists_subscriptions_even_without_a_mailbox(
    stack: ImapStack,
) -> None:
    (answer,) = await _answers(stack, 'LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)')
    assert answer[:-1] == [
        b'* LIST (\\Subscribed \\HasNoChildren) "/" a/b/c',
        b'* LIST (\\Subscribed \\NonExistent \\HasNoChildren) "/" gone',
        b'* LIST (\\Subscribed \\HasChildren) "/" x',
        b'* LIST (\\Subscribed \\HasNoChildren) "/" x/y',
    ]


async def test_recursivematch_lists_parents_of_unmatched_subscriptions_with_childinfo(
    stack: ImapStack,
) -> None:
    top, star, below_a = await _answers(
        stack,
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" "a/%"',
    )
    assert top[:-1] == [
        b'* LIST (\\NonExistent) "/" a (CHILDINFO ("SUBSCRIBED"))',
        b'* LIST (\\Subscribed \\NonExistent) "/" gone',
        b'* LIST (\\Subscribed) "/" x (CHILDINFO ("SUBSCRIBED"))',
    ]
    # a/b/c matches `*` itself, so its parents are not listed for it.
    assert star[:-1] == [
        b'* LIST (\\Subscribed) "/" a/b/c',
        b'* LIST (\\Subscribed \\NonExistent) "/" gone',
        b'* LIST (\\Subscribed) "/" x (CHILDINFO ("SUBSCRIBED"))',
        b'* LIST (\\Subscribed) "/" x/y',
    ]
    assert below_a[:-1] == [b'* LIST (\\NonExistent) "/" a/b (CHILDINFO ("SUBSCRIBED"))']


async def test_several_patterns_list_each_mailbox_once(stack: ImapStack) -> None:
    (answer,) = await _answers(stack, 'LIST "" ("x" "x*" "INBOX" "nomatch")')
    assert answer[:-1] == [b'* LIST () "/" INBOX', b'* LIST () "/" x', b'* LIST () "/" x/y']


async def test_return_subscribed_marks_subscriptions_among_all_mailboxes(
    stack: ImapStack,
) -> None:
    (answer,) = await _answers(stack, 'LIST "" "%" RETURN (SUBSCRIBED CHILDREN)')
    assert b'* LIST (\\Subscribed \\HasChildren) "/" x' in answer
    assert b'* LIST (\\NonExistent \\HasChildren) "/" a' in answer
    assert not any(b"gone" in line for line in answer)  # only existing mailboxes


async def test_special_use_selection_and_return_option(stack: ImapStack) -> None:
    selection, returned = await _answers(
        stack, 'LIST (SPECIAL-USE) "" "*"', 'LIST "" "%" RETURN (SPECIAL-USE)'
    )
    assert selection[:-1] == [
        b'* LIST (\\Drafts) "/" Drafts', b'* LIST (\\Junk) "/" Junk',
        b'* LIST (\\Sent) "/" Sent', b'* LIST (\\Trash) "/" Trash',
    ]  # fmt: skip
    assert b'* LIST (\\Sent) "/" Sent' in returned and b'* LIST () "/" x' in returned


async def test_list_status_follows_each_existing_mailbox_in_dovecots_item_order(
    stack: ImapStack,
) -> None:
    every, subscribed = await _answers(
        stack,
        'LIST "" ("x" "a*") RETURN (STATUS (UNSEEN UIDNEXT MESSAGES))',
        'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (STATUS (MESSAGES))',
    )
    assert every[:-1] == [
        b'* LIST (\\NonExistent) "/" a',  # no STATUS for what does not exist
        b'* LIST (\\NonExistent) "/" a/b',
        b'* LIST () "/" a/b/c',
        b"* STATUS a/b/c (MESSAGES 0 UIDNEXT 1 UNSEEN 0)",
        b'* LIST () "/" x',
        b"* STATUS x (MESSAGES 1 UIDNEXT 2 UNSEEN 1)",
    ]
    assert subscribed[:-1] == [
        b'* LIST (\\NonExistent) "/" a (CHILDINFO ("SUBSCRIBED"))',
        b'* LIST (\\Subscribed \\NonExistent) "/" gone',
        b'* LIST (\\Subscribed) "/" x (CHILDINFO ("SUBSCRIBED"))',
        b"* STATUS x (MESSAGES 1)",
    ]


async def test_list_status_creates_inbox_on_first_use_and_counts_recent(
    stack: ImapStack,
) -> None:
    (answer,) = await _answers(stack, 'LIST "" INBOX RETURN (STATUS (MESSAGES RECENT))')
    assert answer[:-1] == [b'* LIST () "/" INBOX', b"* STATUS INBOX (MESSAGES 0 RECENT 0)"]


async def test_invalid_options_are_refused_with_dovecots_words(stack: ImapStack) -> None:
    answers = await _answers(
        stack,
        'LIST (FOO) "" %',
        'LIST (RECURSIVEMATCH) "" %',
        'LIST ("SUBSCRIBED") "" %',
        'LIST "" % RETURN (FOO)',
        'LIST "" % RETURN (STATUS)',
        'LIST "" % RETURN (STATUS ())',
        'LIST "" % RETURN (STATUS (SIZE))',
        'LIST "" % RETURN',
        'LIST "" % EXTRA',
    )
    reasons = [answer[-1].split(b": ", 1)[1] for answer in answers]
    assert all(answer[-1].split()[1] == b"BAD" for answer in answers)
    assert reasons == [
        b"Unknown select options", b"RECURSIVEMATCH must not be the only selection.",
        b"List options contains non-atoms.", b"Unknown return options",
        b"Unknown return options", b"Empty status list.", b"Invalid status item SIZE.",
        b"Extra arguments.", b"Extra arguments.",
    ]  # fmt: skip


async def test_remote_is_accepted_and_empty_patterns_list_nothing(stack: ImapStack) -> None:
    remote, empty_list, empty_pattern = await _answers(
        stack, 'LIST (REMOTE) "" x', 'LIST "" ()', 'LIST () "" ""'
    )
    assert remote[:-1] == [b'* LIST () "/" x']
    assert empty_list[:-1] == [] and empty_pattern[:-1] == []


async def test_subscribed_recursivematch_over_ten_thousand_mailboxes_stays_quick(
    stack: ImapStack,
) -> None:
    await stack.store.ensure_mailboxes("alice", TEN_THOUSAND)
    for name, _ in TEN_THOUSAND[100:]:
        await stack.store.subscribe("alice", name)

    def run() -> tuple[float, list[bytes]]:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=30)
        client.login("alice", PASSWORD)
        started = time.perf_counter()
        lines = command(client, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("%" "*/c0%" "*a*b*c*d")')
        elapsed = time.perf_counter() - started
        client.logout()
        return elapsed, lines

    elapsed, lines = await asyncio.to_thread(run)
    assert lines[-1].split()[1] == b"OK"
    assert b'* LIST () "/" p00 (CHILDINFO ("SUBSCRIBED"))\r\n' in lines
    assert b'* LIST (\\Subscribed) "/" p99/c09\r\n' in lines
    assert len(lines) == 1 + 100 + 100 * 10
    assert elapsed < 2.0, elapsed
