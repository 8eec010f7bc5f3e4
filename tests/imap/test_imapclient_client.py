"""The same server through `imapclient`, which parses every response into Python values."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from imapclient import IMAPClient

from .conftest import PASSWORD, ImapStack

T = TypeVar("T")

MESSAGE = (
    b"From: =?utf-8?q?Jos=C3=A9?= <jose@example.net>\r\n"
    b"To: alice@example.org, bob@example.org\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?= plans\r\n"
    b"Date: Tue, 03 Jan 2023 08:30:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=C3=A9 at noon\r\n"
    b"--b1\r\n"
    b'Content-Type: application/pdf; name="plan.pdf"\r\n'
    b'Content-Disposition: attachment; filename="plan.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b1--\r\n"
)


async def with_client(stack: ImapStack, work: Callable[[IMAPClient], T]) -> T:
    def run() -> T:
        client = IMAPClient(stack.host, port=stack.port, ssl=False, timeout=5)
        client.login("alice", PASSWORD)
        try:
            return work(client)
        finally:
            client.logout()

    return await asyncio.to_thread(run)


async def test_imapclient_parses_bodystructure_and_envelope(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> dict[int, dict[bytes, Any]]:
        client.append("INBOX", MESSAGE)
        client.select_folder("INBOX")
        return client.fetch([1], ["ENVELOPE", "BODYSTRUCTURE", "BODY[1]", "BODY.PEEK[2.MIME]"])

    data = (await with_client(stack, work))[1]
    envelope = data[b"ENVELOPE"]
    assert envelope.subject == b"=?utf-8?q?Caf=C3=A9?= plans"
    assert [a.mailbox for a in envelope.to] == [b"alice", b"bob"]
    structure = data[b"BODYSTRUCTURE"]
    assert structure.is_multipart
    text, attachment = structure[0]
    assert text[:2] == (b"text", b"plain")
    assert attachment[:2] == (b"application", b"pdf")
    assert attachment[8] == (b"attachment", (b"filename", b"plan.pdf"))
    assert data[b"BODY[1]"] == b"Caf=C3=A9 at noon"
    assert data[b"BODY[2.MIME]"].startswith(b"Content-Type: application/pdf")


async def test_imapclient_search_decodes_headers_and_bodies(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[list[int], ...]:
        client.append("INBOX", MESSAGE)
        client.append("INBOX", b"Subject: other\r\n\r\nnothing\r\n")
        client.select_folder("INBOX")
        return (
            client.search(["SUBJECT", "café"], charset="UTF-8"),
            client.search(["BODY", "CAFÉ AT"], charset="UTF-8"),
            client.search(["FROM", "josé"], charset="UTF-8"),
            client.search(["SENTON", "3-Jan-2023"]),
            client.search(["OR", "LARGER", "400", "SUBJECT", "other"]),
            client.search(["NOT", "HEADER", "Subject", "other"]),
            client.search(["UID", "2:*"]),
        )

    results = await with_client(stack, work)
    assert results == ([1], [1], [1], [1], [1, 2], [1], [2])


async def test_imapclient_flags_keywords_and_permanentflags(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[Any, ...]:
        client.append("INBOX", MESSAGE, flags=[b"$Label1"])
        selected = client.select_folder("INBOX")
        added = client.add_flags([1], [b"\\Answered", b"Important"])
        removed = client.remove_flags([1], [b"$Label1"])
        replaced = client.set_flags([1], [b"\\Draft"])
        return selected, added, removed, replaced

    selected, added, removed, replaced = await with_client(stack, work)
    assert b"\\*" in selected[b"PERMANENTFLAGS"]
    assert b"$Label1" in selected[b"FLAGS"]
    assert set(added[1]) == {b"\\Answered", b"\\Recent", b"Important", b"$Label1"}
    assert set(removed[1]) == {b"\\Answered", b"\\Recent", b"Important"}
    assert set(replaced[1]) == {b"\\Draft", b"\\Recent"}


async def test_imapclient_folder_operations_and_special_use(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[Any, ...]:
        client.create_folder("Work")
        client.create_folder("Work/Reports")
        client.subscribe_folder("Work")
        sub = client.list_sub_folders()
        client.rename_folder("Work/Reports", "Work/Old")
        folders = client.list_folders()
        status = client.folder_status("Work/Old", [b"MESSAGES", b"UIDNEXT"])
        sent = client.find_special_folder(b"\\Sent")
        client.delete_folder("Work/Old")
        exists = client.folder_exists("Work/Old")
        namespace = client.namespace()
        ident = client.id_({"name": "pytest"})
        return sub, folders, status, sent, exists, namespace, ident

    sub, folders, status, sent, exists, namespace, ident = await with_client(stack, work)
    assert [name for _, _, name in sub] == ["Work"]
    names = {name: flags for flags, _, name in folders}
    assert b"\\HasChildren" in names["Work"]
    assert "Work/Old" in names
    assert status == {b"MESSAGES": 0, b"UIDNEXT": 1}
    assert sent == "Sent"
    assert exists is False
    assert namespace.personal == (("", "/"),)
    assert b"mailpush" in repr(ident).encode()


async def test_imapclient_copy_move_expunge_with_uidplus(stack: ImapStack) -> None:
    def work(client: IMAPClient) -> tuple[Any, ...]:
        for _ in range(3):
            client.append("INBOX", MESSAGE)
        client.select_folder("INBOX")
        client.copy([1, 2], "Trash")
        client.move([3], "Junk")
        client.delete_messages([1])
        expunged = client.uid_expunge([1])
        remaining = client.search()
        client.unselect_folder()
        return expunged, remaining

    expunged, remaining = await with_client(stack, work)
    assert remaining == [2]
    assert len(await stack.store.messages("alice", "Trash")) == 2


async def test_imapclient_idle_check_sees_new_mail(stack: ImapStack) -> None:
    from mailpush.store import NewMessage

    def work(client: IMAPClient) -> list[Any]:
        client.select_folder("INBOX")
        client.idle()
        asyncio.run_coroutine_threadsafe(
            stack.store.append("alice", "INBOX", [NewMessage(MESSAGE)]), loop
        ).result(5)
        responses = client.idle_check(timeout=5)
        client.idle_done()
        return list(responses)

    loop = asyncio.get_running_loop()
    responses = await with_client(stack, work)
    assert (1, b"EXISTS") in responses
