"""INBOX always exists for the client, though it is created only when first used.

Dovecot creates INBOX on first use (the MailboxCreate push event fires then), yet its
`mailbox_exists()` treats INBOX as existing all along: SUBSCRIBE INBOX and RENAME INBOX
work on a fresh account, and RENAME onto INBOX is refused. Each test logs in a fresh
user, over loopback, whose INBOX row does not exist yet.
"""

from __future__ import annotations

import asyncio

from mailpush.store import MailboxCreated

from .conftest import PASSWORD, ImapStack


async def _session(stack: ImapStack, commands: list[str]) -> list[list[str]]:
    """Log in as alice and send `commands`; each answer's lines, tagged line last."""
    reader, writer = await asyncio.open_connection(stack.host, stack.port)
    answers: list[list[str]] = []
    try:
        await reader.readline()
        for index, text in enumerate(["LOGIN alice " + PASSWORD, *commands]):
            tag = f"t{index}"
            writer.write(f"{tag} {text}\r\n".encode())
            await writer.drain()
            lines: list[str] = []
            while True:
                line = await asyncio.wait_for(reader.readline(), 5)
                assert line, f"connection closed during {text!r}"
                lines.append(line.decode().rstrip("\r\n"))
                if line.startswith(f"{tag} ".encode()):
                    break
            answers.append(lines)
    finally:
        writer.close()
    return answers[1:]


def _inbox_creations(stack: ImapStack) -> list[MailboxCreated]:
    created: list[MailboxCreated] = []

    def record(change: object) -> None:
        if isinstance(change, MailboxCreated) and change.mailbox == "INBOX":
            created.append(change)

    stack.store.hub.subscribe(record, user="alice")
    return created


async def test_subscribe_inbox_before_first_use_succeeds_and_lsub_lists_it(
    stack: ImapStack,
) -> None:
    created = _inbox_creations(stack)
    subscribe, lsub = await _session(stack, ["SUBSCRIBE INBOX", 'LSUB "" *'])
    assert subscribe[-1].startswith("t1 OK")
    assert lsub == ['* LSUB () "/" INBOX', "t2 OK Lsub completed."]
    assert len(created) == 1


async def test_unsubscribe_inbox_before_first_use_succeeds(stack: ImapStack) -> None:
    unsubscribe, lsub = await _session(stack, ["UNSUBSCRIBE INBOX", 'LSUB "" *'])
    assert unsubscribe[-1].startswith("t1 OK")
    assert lsub == ["t2 OK Lsub completed."]


async def test_rename_inbox_before_first_use_succeeds(stack: ImapStack) -> None:
    created = _inbox_creations(stack)
    rename, listing = await _session(stack, ["RENAME INBOX old", 'LIST "" *'])
    assert rename[-1].startswith("t1 OK")
    assert '* LIST (\\HasNoChildren) "/" old' in listing
    assert '* LIST (\\HasNoChildren) "/" INBOX' in listing
    assert len(created) == 1


async def test_rename_onto_inbox_before_first_use_is_refused_as_dovecot(
    stack: ImapStack,
) -> None:
    _, rename = await _session(stack, ["CREATE foo", "RENAME foo INBOX"])
    assert rename == ["t2 NO [ALREADYEXISTS] Target mailbox already exists"]


async def test_create_inbox_creates_it_once_then_says_it_already_exists(
    stack: ImapStack,
) -> None:
    created = _inbox_creations(stack)
    first, second, select = await _session(stack, ["CREATE INBOX", "CREATE inbox", "SELECT INBOX"])
    assert first[-1].startswith("t1 OK")  # Dovecot 2.3.19 creates it here
    assert second[-1].startswith("t2 NO [ALREADYEXISTS] Mailbox already exists")
    assert select[-1].startswith("t3 OK [READ-WRITE]")
    assert len(created) == 1


async def test_delete_inbox_before_first_use_is_refused(stack: ImapStack) -> None:
    (delete,) = await _session(stack, ["DELETE INBOX"])
    assert delete == ["t1 NO INBOX can't be deleted."]


async def test_getmetadata_inbox_before_first_use_answers_nil(stack: ImapStack) -> None:
    (getmetadata,) = await _session(stack, ["GETMETADATA INBOX /private/comment"])
    assert getmetadata == [
        "* METADATA INBOX (/private/comment NIL)",
        "t1 OK Getmetadata completed.",
    ]


async def test_inbox_is_created_once_across_subscribe_select_and_status(
    stack: ImapStack,
) -> None:
    created = _inbox_creations(stack)
    answers = await _session(
        stack, ["SUBSCRIBE INBOX", "SELECT INBOX", "STATUS INBOX (MESSAGES)", "RENAME INBOX x"]
    )
    assert all(" OK" in answer[-1] for answer in answers)
    assert len(created) == 1
