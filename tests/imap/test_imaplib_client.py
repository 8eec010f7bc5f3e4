"""Every IMAP4rev1 command through Python's `imaplib`, against a real loopback server."""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import Callable
from typing import TypeVar

import pytest

from mailpush.store import flags as F

from .conftest import PASSWORD, ImapStack

T = TypeVar("T")

MESSAGE = (
    b"From: Joe <joe@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Meeting\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.net>\r\n"
    b"\r\n"
    b"Body about the quarterly plan.\r\n"
)


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


def connect(stack: ImapStack, user: str = "alice") -> imaplib.IMAP4:
    client = imaplib.IMAP4(stack.host, stack.port)
    client.login(user, PASSWORD)
    return client


def ok(result: tuple[str, list[object]]) -> list[object]:
    status, data = result
    assert status == "OK", data
    return data


async def test_greeting_capability_noop_and_logout(stack: ImapStack) -> None:
    def session() -> tuple[list[object], str]:
        client = imaplib.IMAP4(stack.host, stack.port)
        caps = ok(client.capability())
        ok(client.noop())
        status, _ = client.logout()
        return caps, status

    caps, status = await in_thread(session)
    assert b"AUTH=PLAIN" in caps[0]  # type: ignore[operator]
    assert status == "BYE"


async def test_login_reports_post_login_capabilities(stack: ImapStack) -> None:
    def session() -> list[str]:
        client = connect(stack)
        caps = ok(client.capability())[0].decode().split()  # type: ignore[union-attr]
        client.logout()
        return caps

    caps = await in_thread(session)
    for cap in ("IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "UNSELECT", "SPECIAL-USE", "CHILDREN"):
        assert cap in caps


async def test_wrong_password_is_refused_with_authenticationfailed(stack: ImapStack) -> None:
    def session() -> str:
        client = imaplib.IMAP4(stack.host, stack.port)
        try:
            client.login("alice", "wrong")
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            client.shutdown()
        return "accepted"

    assert "AUTHENTICATIONFAILED" in await in_thread(session)


async def test_authenticate_plain_logs_in(stack: ImapStack) -> None:
    def session() -> str:
        client = imaplib.IMAP4(stack.host, stack.port)
        status, _ = client.authenticate(
            "PLAIN", lambda _: f"\0alice\0{PASSWORD}".encode()
        )
        client.logout()
        return status

    assert await in_thread(session) == "OK"


async def test_first_login_creates_inbox_and_special_use_mailboxes(stack: ImapStack) -> None:
    def session() -> list[object]:
        client = connect(stack)
        listing = ok(client.list())
        client.logout()
        return listing

    listing = await in_thread(session)
    assert b'(\\HasNoChildren) "/" INBOX' in listing
    assert b'(\\HasNoChildren \\Sent) "/" Sent' in listing
    assert b'(\\HasNoChildren \\Trash) "/" Trash' in listing
    assert b'(\\HasNoChildren \\Drafts) "/" Drafts' in listing
    assert b'(\\HasNoChildren \\Junk) "/" Junk' in listing


async def test_create_rename_delete_and_hierarchy_attributes(stack: ImapStack) -> None:
    def session() -> dict[str, object]:
        client = connect(stack)
        out: dict[str, object] = {}
        ok(client.create("Projects/2024/Q1"))
        out["tree"] = ok(client.list('""', "Projects*"))
        out["dup"] = client.create("Projects/2024/Q1")
        ok(client.rename("Projects", "Archive"))
        out["renamed"] = ok(client.list('""', "Archive/%"))
        ok(client.delete("Archive/2024/Q1"))
        out["missing"] = client.delete("Archive/2024/Q1")
        out["inbox"] = client.delete("INBOX")
        client.logout()
        return out

    out = await in_thread(session)
    assert out["tree"] == [
        b'(\\Noselect \\HasChildren) "/" Projects',
        b'(\\Noselect \\HasChildren) "/" Projects/2024',
        b'(\\HasNoChildren) "/" Projects/2024/Q1',
    ]
    assert out["dup"] == ("NO", [b"[ALREADYEXISTS] Mailbox already exists: Projects/2024/Q1"])
    assert out["renamed"] == [b'(\\Noselect \\HasChildren) "/" Archive/2024']
    assert out["missing"] == ("NO", [b"[NONEXISTENT] Mailbox doesn't exist: Archive/2024/Q1"])
    assert out["inbox"][0] == "NO"  # type: ignore[index]


async def test_mailbox_names_travel_in_modified_utf7(stack: ImapStack) -> None:
    def session() -> list[object]:
        client = connect(stack)
        ok(client.create("Entw&APw-rfe"))
        listing = ok(client.list('""', "Entw*"))
        client.logout()
        return listing

    assert await in_thread(session) == [b'(\\HasNoChildren) "/" Entw&APw-rfe']
    assert "Entwürfe" in {box.name for box in await stack.store.list_mailboxes("alice")}


async def test_subscribe_lsub_unsubscribe_and_ghost_refused(stack: ImapStack) -> None:
    def session() -> dict[str, object]:
        client = connect(stack)
        out: dict[str, object] = {}
        ok(client.subscribe("Sent"))
        out["ghost"] = client.subscribe("Ghost")
        out["lsub"] = ok(client.lsub())
        ok(client.unsubscribe("Sent"))
        out["after"] = ok(client.lsub())
        client.logout()
        return out

    out = await in_thread(session)
    assert out["ghost"] == ("NO", [b"Mailbox doesn't exist: Ghost"])
    assert out["lsub"] == [b'() "/" Sent']
    assert out["after"] == [None]


async def test_append_select_status_and_examine(stack: ImapStack) -> None:
    def session() -> dict[str, object]:
        client = connect(stack)
        out: dict[str, object] = {}
        out["append"] = ok(
            client.append("INBOX", r"(\Flagged $Work)", '"02-Jan-2023 10:00:00 +0100"', MESSAGE)
        )
        out["select"] = ok(client.select("INBOX"))
        out["uidvalidity"] = client.untagged_responses.get("UIDVALIDITY")
        out["flags"] = client.untagged_responses.get("FLAGS")
        out["status"] = ok(client.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"))
        out["date"] = ok(client.fetch("1", "(INTERNALDATE FLAGS)"))
        out["examine"] = client.select("INBOX", readonly=True)
        out["missing"] = client.append("Nowhere", None, None, MESSAGE)
        client.logout()
        return out

    out = await in_thread(session)
    assert out["append"][0].startswith(b"[APPENDUID ")  # type: ignore[index]
    assert out["select"] == [b"1"]
    assert out["status"][0].startswith(b"INBOX (MESSAGES 1 RECENT 1 UIDNEXT 2 ")  # type: ignore[index]
    assert b'INTERNALDATE "02-Jan-2023 10:00:00 +0100"' in out["date"][0]  # type: ignore[index]
    assert b"FLAGS (\\Flagged \\Recent $Work)" in out["date"][0]  # type: ignore[index]
    assert out["examine"][0] == "OK"  # type: ignore[index]
    assert out["missing"][0] == "NO"  # type: ignore[index]
    assert b"[TRYCREATE]" in out["missing"][1][0]  # type: ignore[index]


async def test_fetch_items_envelope_bodystructure_sections_and_partial(stack: ImapStack) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    from mailpush.store import NewMessage

    await stack.store.append("alice", "INBOX", [NewMessage(MESSAGE)])

    def session() -> list[object]:
        client = connect(stack)
        client.select("INBOX")
        data = ok(
            client.fetch(
                "1",
                "(UID RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (SUBJECT)]"
                " BODY.PEEK[TEXT]<0.4> RFC822.HEADER)",
            )
        )
        client.logout()
        return data

    data = await in_thread(session)
    head = data[0][0]  # type: ignore[index]
    assert b"UID 1" in head
    assert f"RFC822.SIZE {len(MESSAGE)}".encode() in head
    assert (
        b'ENVELOPE ("Mon, 02 Jan 2023 10:00:00 +0100" "Meeting" (("Joe" NIL "joe" "example.net"))'
        in head
    )
    assert data[0][1] == b"Subject: Meeting\r\n\r\n"  # type: ignore[index]
    assert data[1][1] == b"Body"  # type: ignore[index]
    assert data[2][1] == MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n"  # type: ignore[index]


async def test_body_fetch_sets_seen_but_peek_does_not(stack: ImapStack) -> None:
    from mailpush.store import NewMessage

    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [NewMessage(MESSAGE), NewMessage(MESSAGE)])

    def session() -> tuple[list[object], list[object]]:
        client = connect(stack)
        client.select("INBOX")
        peek = ok(client.fetch("1", "(BODY.PEEK[])"))
        body = ok(client.fetch("2", "(RFC822)"))
        client.logout()
        return peek, body

    peek, body = await in_thread(session)
    assert b"FLAGS" not in b"".join(p if isinstance(p, bytes) else p[0] for p in peek)  # type: ignore[index]
    assert b"\\Seen" in body[1]  # type: ignore[operator]
    infos = await stack.store.messages("alice", "INBOX")
    assert [bool(i.flags & F.SEEN) for i in infos] == [False, True]


async def test_store_search_copy_move_expunge(stack: ImapStack) -> None:
    from mailpush.store import NewMessage

    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [NewMessage(MESSAGE) for _ in range(5)])

    def session() -> dict[str, object]:
        client = connect(stack)
        client.select("INBOX")
        out: dict[str, object] = {}
        out["store"] = ok(client.store("1:2", "+FLAGS", r"(\Deleted)"))
        out["silent"] = ok(client.store("3", "+FLAGS.SILENT", r"(\Seen Important)"))
        out["search"] = ok(client.search(None, "DELETED"))
        out["text"] = ok(client.search("UTF-8", "BODY", "quarterly", "UNDELETED"))
        out["keyword"] = ok(client.uid("SEARCH", "KEYWORD", "Important"))
        out["copy"] = ok(client.copy("3", "Trash"))
        out["move"] = ok(client.uid("MOVE", "4", "Sent"))
        out["expunge"] = ok(client.expunge())
        out["left"] = ok(client.search(None, "ALL"))
        client.logout()
        return out

    out = await in_thread(session)
    assert out["store"] == [b"1 (FLAGS (\\Deleted \\Recent))", b"2 (FLAGS (\\Deleted \\Recent))"]
    assert out["silent"] == [None]
    assert out["search"] == [b"1 2"]
    assert out["text"] == [b"3 4 5"]
    assert out["keyword"] == [b"3"]
    assert out["move"] == [None]
    assert out["expunge"][-2:] == [b"1", b"1"]
    assert out["left"] == [b"1 2"]
    assert len(await stack.store.messages("alice", "Trash")) == 1
    assert len(await stack.store.messages("alice", "Sent")) == 1


async def test_close_expunges_and_unselect_does_not(stack: ImapStack) -> None:
    from mailpush.store import NewMessage

    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append(
        "alice", "INBOX", [NewMessage(MESSAGE, F.DELETED), NewMessage(MESSAGE, F.DELETED)]
    )

    def session() -> None:
        client = connect(stack)
        client.select("INBOX")
        ok(client.uid("EXPUNGE", "1"))
        ok(client._simple_command("UNSELECT"))
        client.select("INBOX")
        ok(client.check())
        ok(client.close())
        client.logout()

    imaplib.Commands.setdefault("UNSELECT", ("SELECTED",))
    await in_thread(session)
    assert await stack.store.messages("alice", "INBOX") == []


async def test_namespace_id_and_enable(stack: ImapStack) -> None:
    def session() -> tuple[list[object], list[object], list[object]]:
        client = connect(stack)
        namespace = ok(client.namespace())
        ident = ok(client.xatom("ID", "NIL"))
        client.untagged_responses.clear()
        enable = ok(client.enable("CONDSTORE"))
        client.logout()
        return namespace, ident, enable

    namespace, ident, _ = await in_thread(session)
    assert namespace == [b'(("" "/")) NIL NIL']
    assert ident == [b"ID completed."]


async def test_selecting_a_missing_mailbox_leaves_nothing_selected(stack: ImapStack) -> None:
    def session() -> tuple[str, str]:
        client = connect(stack)
        client.select("INBOX")
        status, _ = client.select("Nope")
        try:
            client.fetch("1", "FLAGS")
        except imaplib.IMAP4.error as exc:
            fetched = str(exc)
        client.logout()
        return status, fetched

    status, fetched = await in_thread(session)
    assert status == "NO"
    assert "No mailbox selected" in fetched or "illegal in state" in fetched


@pytest.mark.parametrize("flag", [r"\Bogus"])
async def test_store_with_unknown_system_flag_is_bad(stack: ImapStack, flag: str) -> None:
    from mailpush.store import NewMessage

    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    await stack.store.append("alice", "INBOX", [NewMessage(MESSAGE)])

    def session() -> str:
        client = connect(stack)
        client.select("INBOX")
        try:
            client.store("1", "+FLAGS", f"({flag})")
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            client.logout()
        return "accepted"

    assert "Invalid system flag" in await in_thread(session)
