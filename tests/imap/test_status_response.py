"""STATUS and LIST-STATUS write the same `* STATUS` line, items in Dovecot's order."""

from __future__ import annotations

import asyncio
import imaplib

from .conftest import PASSWORD, ImapStack
from .test_list_hardening import command


async def test_status_items_come_in_dovecots_order_whatever_the_request_order(
    stack: ImapStack,
) -> None:
    def run() -> tuple[list[bytes], list[bytes], list[bytes]]:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=10)
        client.login("alice", PASSWORD)
        client.append("INBOX", None, None, b"Subject: one\r\n\r\nx\r\n")
        plain = command(client, "STATUS INBOX (UNSEEN UIDNEXT MESSAGES unseen)")
        listed = command(client, 'LIST "" INBOX RETURN (STATUS (UNSEEN UIDNEXT MESSAGES))')
        unknown = command(client, "STATUS INBOX (MESSAGES SIZE)")
        client.logout()
        return plain, listed, unknown

    plain, listed, unknown = await asyncio.to_thread(run)
    assert plain[0] == b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"
    assert listed[1] == plain[0]
    assert unknown[-1].endswith(b" BAD Error in IMAP command STATUS: Invalid status item SIZE.\r\n")
