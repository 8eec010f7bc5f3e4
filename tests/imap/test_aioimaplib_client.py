"""IDLE and the change hub through `aioimaplib`: deliveries and other sessions show up live."""

from __future__ import annotations

import asyncio
import smtplib

import aioimaplib

from mailpush.store import NewMessage

from .conftest import PASSWORD, ImapStack

MESSAGE = b"From: a@example.net\r\nTo: alice@example.org\r\nSubject: live\r\n\r\nhello\r\n"


async def login(stack: ImapStack, user: str = "alice") -> aioimaplib.IMAP4:
    client = aioimaplib.IMAP4(host=stack.host, port=stack.port, timeout=5)
    await client.wait_hello_from_server()
    response = await client.login(user, PASSWORD)
    assert response.result == "OK", response.lines
    return client


def deliver_over_lmtp(stack: ImapStack, raw: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", stack.lmtp_port) as lmtp:
        lmtp.sendmail("sender@example.net", ["alice@example.org"], raw)


async def idle_lines_until(client: aioimaplib.IMAP4, wanted: bytes) -> list[bytes]:
    """Collect pushed lines until one contains `wanted` (or 5 s pass)."""
    seen: list[bytes] = []
    async with asyncio.timeout(5):
        while not any(wanted in line for line in seen):
            pushed = await client.wait_server_push()
            seen.extend(line if isinstance(line, bytes) else line.encode() for line in pushed)
    return seen


async def test_idle_sees_an_lmtp_delivery_as_exists(stack: ImapStack) -> None:
    client = await login(stack)
    await client.select("INBOX")
    idle = await client.idle_start(timeout=10)
    await asyncio.to_thread(deliver_over_lmtp, stack, MESSAGE)
    lines = await idle_lines_until(client, b"EXISTS")
    assert b"1 EXISTS" in lines
    client.idle_done()
    assert (await asyncio.wait_for(idle, 5)).result == "OK"
    await client.logout()


async def test_idle_sees_a_flag_change_made_by_another_session(stack: ImapStack) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    watcher = await login(stack)
    await watcher.select("INBOX")
    actor = await login(stack)
    await actor.select("INBOX")
    idle = await watcher.idle_start(timeout=10)
    response = await actor.store("1", "+FLAGS", r"(\Flagged)")
    assert response.result == "OK"
    lines = await idle_lines_until(watcher, b"FETCH")
    assert any(b"FETCH (UID 1 FLAGS (\\Flagged" in line for line in lines), lines
    watcher.idle_done()
    await asyncio.wait_for(idle, 5)
    await watcher.logout()
    await actor.logout()


async def test_idle_sees_an_expunge_by_another_session(stack: ImapStack) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])
    watcher = await login(stack)
    await watcher.select("INBOX")
    actor = await login(stack)
    await actor.select("INBOX")
    idle = await watcher.idle_start(timeout=10)
    await actor.store("2", "+FLAGS.SILENT", r"(\Deleted)")
    await actor.expunge()
    lines = await idle_lines_until(watcher, b"EXPUNGE")
    assert b"2 EXPUNGE" in lines
    watcher.idle_done()
    await asyncio.wait_for(idle, 5)
    await watcher.logout()
    await actor.logout()


async def test_noop_reports_what_happened_while_not_idling(stack: ImapStack) -> None:
    client = await login(stack)
    await client.select("INBOX")
    await asyncio.to_thread(deliver_over_lmtp, stack, MESSAGE)
    response = await client.noop()
    assert b"1 EXISTS" in response.lines
    assert b"1 RECENT" in response.lines
    await client.logout()


async def test_own_store_is_not_reported_twice(stack: ImapStack) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [NewMessage(MESSAGE)])
    client = await login(stack)
    await client.select("INBOX")
    response = await client.store("1", "+FLAGS", r"(\Seen)")
    fetches = [line for line in response.lines if b"FETCH" in line]
    assert len(fetches) == 1
    response = await client.noop()
    assert not any(b"FETCH" in line for line in response.lines)
    await client.logout()


async def test_aioimaplib_append_fetch_search_copy_move_and_uid_commands(
    stack: ImapStack,
) -> None:
    client = await login(stack)
    response = await client.append(MESSAGE, mailbox="INBOX", flags=r"(\Seen)")
    assert response.result == "OK"
    await client.select("INBOX")
    response = await client.uid("fetch", "1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert response.result == "OK"
    assert any(b"Subject: live" in line for line in response.lines), response.lines
    response = await client.uid_search("SEEN")
    assert response.lines[0] == b"1"
    response = await client.uid("copy", "1", "Trash")
    assert b"COPYUID" in response.lines[-1]
    response = await client.uid("move", "1", "Junk")
    assert response.result == "OK"
    response = await client.status("Junk", "(MESSAGES)")
    assert b"Junk (MESSAGES 1)" in response.lines
    await client.logout()
