"""CONDSTORE and QRESYNC (RFC 7162) through imaplib and imapclient, and a session's
reaction to changes another process committed (`ChangedElsewhere`).

What Dovecot answers byte for byte is checked in
tests/dovecot/test_condstore_differential.py; these tests say what each
feature does for a client.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
from collections.abc import Callable
from typing import TypeVar

from imapclient import IMAPClient

from mailpush.imap.session import MailboxView
from mailpush.store import (
    ChangedElsewhere,
    FlagChange,
    FlagsChanged,
    MailboxChanges,
    MessageInfo,
    MessagesExpunged,
    NewMessage,
)
from mailpush.store import flags as F

from .conftest import PASSWORD, ImapStack

T = TypeVar("T")
RAW = b"Subject: hi\r\n\r\nbody\r\n"


async def imaplib_session(stack: ImapStack, work: Callable[[imaplib.IMAP4], T]) -> T:
    def run() -> T:
        client = imaplib.IMAP4(stack.host, stack.port, timeout=10)
        client.login("alice", PASSWORD)
        try:
            return work(client)
        finally:
            client.logout()

    return await asyncio.to_thread(run)


async def imapclient_session(stack: ImapStack, work: Callable[[IMAPClient], T]) -> T:
    def run() -> T:
        client = IMAPClient(stack.host, port=stack.port, ssl=False, timeout=10)
        client.login("alice", PASSWORD)
        try:
            return work(client)
        finally:
            client.logout()

    return await asyncio.to_thread(run)


async def three_messages(stack: ImapStack) -> None:
    await stack.store.append("alice", "INBOX", [NewMessage(RAW)] * 3)


def untagged(client: imaplib.IMAP4, tag: bytes, text: str) -> tuple[list[bytes], bytes]:
    """Send one command by hand; its untagged lines and its tagged reply."""
    client.send(tag + b" " + text.encode() + b"\r\n")
    lines: list[bytes] = []
    while True:
        line = client.readline().rstrip(b"\r\n")
        if line.startswith(tag + b" "):
            return lines, line[len(tag) + 1 :]
        lines.append(line)


# --- ENABLE, SELECT, STATUS ---------------------------------------------------------


async def test_capability_lists_condstore_and_qresync_and_enable_names_them(
    stack: ImapStack,
) -> None:
    def work(client: imaplib.IMAP4) -> tuple[list[bytes], list[bytes], list[bytes]]:
        capabilities = untagged(client, b"e0", "CAPABILITY")[0]
        enabled = untagged(client, b"e1", "ENABLE QRESYNC CONDSTORE X-UNKNOWN")[0]
        again = untagged(client, b"e2", "ENABLE condstore")[0]
        return capabilities, enabled, again

    capabilities, enabled, again = await imaplib_session(stack, work)
    assert {b"CONDSTORE", b"QRESYNC"} <= set(capabilities[0].split())
    assert enabled == [b"* ENABLED QRESYNC CONDSTORE"]
    assert again == [b"* ENABLED CONDSTORE"]  # named again, as Dovecot does


async def test_select_condstore_reports_highestmodseq_and_plain_select_does_not(
    stack: ImapStack,
) -> None:
    await three_messages(stack)
    highest = (await stack.store.status("alice", "INBOX")).highestmodseq

    def work(client: imaplib.IMAP4) -> tuple[list[bytes], list[bytes]]:
        plain = untagged(client, b"s1", "EXAMINE INBOX")[0]
        condstore = untagged(client, b"s2", "SELECT INBOX (CONDSTORE)")[0]
        return plain, condstore

    plain, condstore = await imaplib_session(stack, work)
    assert not any(b"HIGHESTMODSEQ" in line for line in plain)
    assert condstore[0] == b"* OK [CLOSED] Previous mailbox closed."
    assert f"* OK [HIGHESTMODSEQ {highest}] Highest".encode() in condstore


async def test_status_highestmodseq_follows_every_change(stack: ImapStack) -> None:
    await three_messages(stack)

    def work(client: imaplib.IMAP4) -> list[int]:
        seen = []
        for _ in range(2):
            _, data = client.status("INBOX", "(HIGHESTMODSEQ)")
            seen.append(int(re.findall(rb"HIGHESTMODSEQ (\d+)", data[0])[0]))
            client.select("INBOX")
            client.store("1", "+FLAGS", "\\Seen")
        return seen

    first, second = await imaplib_session(stack, work)
    assert second == first + 1


# --- FETCH MODSEQ, CHANGEDSINCE ----------------------------------------------------------


async def test_imapclient_fetches_modseq_and_only_what_changed_since(stack: ImapStack) -> None:
    await three_messages(stack)

    def work(client: IMAPClient) -> tuple[dict[bytes, object], dict[int, dict[bytes, object]]]:
        client.enable("CONDSTORE")
        selected = client.select_folder("INBOX")
        before = int(selected[b"HIGHESTMODSEQ"])
        client.add_flags([2], [b"\\Flagged"])
        changed = client.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {before}"])
        return selected, changed

    selected, changed = await imapclient_session(stack, work)
    assert list(changed) == [2]
    assert changed[2][b"MODSEQ"] == (int(selected[b"HIGHESTMODSEQ"]) + 1,)
    assert b"\\Flagged" in changed[2][b"FLAGS"]


async def test_fetch_modseq_enables_condstore_and_announces_highestmodseq(
    stack: ImapStack,
) -> None:
    await three_messages(stack)
    infos = await stack.store.messages("alice", "INBOX")

    def work(client: imaplib.IMAP4) -> list[bytes]:
        client.select("INBOX")
        return untagged(client, b"f1", "FETCH 1:* (UID MODSEQ)")[0]

    lines = await imaplib_session(stack, work)
    assert lines[0].startswith(b"* OK [HIGHESTMODSEQ ")
    assert lines[1:] == [
        b"* %d FETCH (UID %d MODSEQ (%d))" % (n, i.uid, i.modseq)
        for n, i in enumerate(infos, 1)
    ]


# --- STORE UNCHANGEDSINCE ------------------------------------------------------------------


async def test_store_unchangedsince_leaves_newer_messages_alone_and_names_them(
    stack: ImapStack,
) -> None:
    await three_messages(stack)

    def work(client: imaplib.IMAP4) -> tuple[list[bytes], bytes, list[bytes], bytes]:
        client.select("INBOX")
        _, data = client.fetch("3", "(MODSEQ)")
        limit = int(re.findall(rb"MODSEQ \((\d+)\)", data[0])[0])
        client.store("1", "+FLAGS", "\\Seen")  # message 1 now changed after `limit`
        lines, tagged = untagged(
            client, b"c1", f"STORE 1:3 (UNCHANGEDSINCE {limit}) +FLAGS (\\Answered)"
        )
        uid_lines, uid_tagged = untagged(
            client, b"c2", f"UID STORE 1:3 (UNCHANGEDSINCE {limit}) +FLAGS.SILENT (\\Draft)"
        )
        return lines, tagged, uid_lines, uid_tagged

    lines, tagged, uid_lines, uid_tagged = await imaplib_session(stack, work)
    assert tagged == b"OK [MODIFIED 1] Conditional store failed."
    assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (m)", line) for line in lines] == [
        b"* 2 FETCH (MODSEQ (m) FLAGS (\\Answered \\Recent))",
        b"* 3 FETCH (MODSEQ (m) FLAGS (\\Answered \\Recent))",
    ]
    assert uid_tagged == b"OK [MODIFIED 1:3] Conditional store failed."  # all changed now
    assert uid_lines == []
    flags = {i.uid: i.flags for i in await stack.store.messages("alice", "INBOX")}
    assert flags == {1: F.SEEN, 2: F.ANSWERED, 3: F.ANSWERED}


async def test_store_unchangedsince_keeps_a_change_the_session_has_not_heard_of_yet(
    stack: ImapStack,
) -> None:
    """Another process changed message 2 after the client's modseq, and this session has
    not yet heard (its view still holds the old modseq): the store's own check, inside
    the write, leaves message 2 alone and names it, instead of overwriting the change.
    The STORE's own record then comes past that commit, so the session reads it before
    answering and reports message 2's new flags too (session.py, `needs_read`)."""
    await three_messages(stack)
    loop = asyncio.get_running_loop()
    elsewhere = await asyncio.to_thread(stack.another_store)

    def work(client: imaplib.IMAP4) -> tuple[list[bytes], bytes]:
        client.select("INBOX")
        _, data = client.fetch("3", "(MODSEQ)")
        limit = int(re.findall(rb"MODSEQ \((\d+)\)", data[0])[0])
        asyncio.run_coroutine_threadsafe(
            elsewhere.update_flags("alice", "INBOX", [2], "add", F.FLAGGED), loop
        ).result(10)
        return untagged(client, b"c1", f"STORE 1:3 (UNCHANGEDSINCE {limit}) +FLAGS (\\Answered)")

    try:
        lines, tagged = await imaplib_session(stack, work)
    finally:
        await asyncio.to_thread(elsewhere.close)
    assert tagged == b"OK [MODIFIED 2] Conditional store failed."
    assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (m)", line) for line in lines] == [
        b"* 1 FETCH (MODSEQ (m) FLAGS (\\Answered \\Recent))",
        b"* 2 FETCH (MODSEQ (m) FLAGS (\\Flagged \\Recent))",
        b"* 3 FETCH (MODSEQ (m) FLAGS (\\Answered \\Recent))",
    ]
    flags = {i.uid: i.flags for i in await stack.store.messages("alice", "INBOX")}
    assert flags == {1: F.ANSWERED, 2: F.FLAGGED, 3: F.ANSWERED}


# --- SEARCH MODSEQ ----------------------------------------------------------------------


async def test_search_modseq_matches_newer_messages_and_reports_their_highest(
    stack: ImapStack,
) -> None:
    await three_messages(stack)

    def work(client: IMAPClient) -> tuple[list[int], int | None, list[int]]:
        client.enable("CONDSTORE")
        highest = int(client.select_folder("INBOX")[b"HIGHESTMODSEQ"])
        client.add_flags([1], [b"$Done"])
        found = client.search(["MODSEQ", highest + 1])
        none = client.search(["MODSEQ", highest + 100])
        return list(found), found.modseq, list(none)

    found, modseq, none = await imapclient_session(stack, work)
    assert found == [1]
    assert modseq is not None and modseq > 0
    assert none == []


async def test_esearch_ends_with_the_highest_modseq(stack: ImapStack) -> None:
    await three_messages(stack)
    infos = await stack.store.messages("alice", "INBOX")

    def work(client: imaplib.IMAP4) -> list[bytes]:
        client.select("INBOX")
        return untagged(client, b"x1", "UID SEARCH RETURN (ALL COUNT) MODSEQ 1")[0]

    *announced, line = await imaplib_session(stack, work)
    assert announced[0].startswith(b"* OK [HIGHESTMODSEQ ")  # SEARCH MODSEQ enabled CONDSTORE
    assert line == b'* ESEARCH (TAG "x1") UID ALL 1:3 COUNT 3 MODSEQ %d' % infos[-1].modseq


async def test_esearch_min_and_max_report_the_modseq_of_the_message_returned(
    stack: ImapStack,
) -> None:
    """imaptest's esearch-condstore: MIN alone carries the first match's modseq, MAX the
    last's, not the highest of every match (RFC 4731 §3.2; Dovecot answers so)."""
    await three_messages(stack)
    infos = {info.uid: info.modseq for info in await stack.store.messages("alice", "INBOX")}

    def work(client: imaplib.IMAP4) -> list[bytes]:
        client.select("INBOX")
        return [
            untagged(client, b"m1", "SEARCH RETURN (MIN) 1:3 MODSEQ 1")[0][-1],
            untagged(client, b"m2", "SEARCH RETURN (MAX) 1:2 MODSEQ 1")[0][-1],
            untagged(client, b"m3", "SEARCH RETURN (MIN MAX) 1:3 MODSEQ 1")[0][-1],
        ]

    lines = await imaplib_session(stack, work)
    assert lines == [
        b'* ESEARCH (TAG "m1") MIN 1 MODSEQ %d' % infos[1],
        b'* ESEARCH (TAG "m2") MAX 2 MODSEQ %d' % infos[2],
        b'* ESEARCH (TAG "m3") MIN 1 MAX 3 MODSEQ %d' % max(infos[1], infos[3]),
    ]


# --- QRESYNC -------------------------------------------------------------------------


async def test_qresync_reports_expunges_as_vanished_with_the_new_highestmodseq(
    stack: ImapStack,
) -> None:
    await three_messages(stack)

    def work(client: imaplib.IMAP4) -> tuple[list[bytes], bytes]:
        untagged(client, b"q1", "ENABLE QRESYNC")
        client.select("INBOX")
        client.store("2", "+FLAGS.SILENT", "\\Deleted")
        return untagged(client, b"q2", "EXPUNGE")

    lines, tagged = await imaplib_session(stack, work)
    highest = (await stack.store.status("alice", "INBOX")).highestmodseq
    assert [line for line in lines if not line.endswith(b"RECENT")] == [b"* VANISHED 2"]
    assert tagged == b"OK [HIGHESTMODSEQ %d] Expunge completed." % highest


async def test_select_qresync_resynchronises_a_client_from_its_modseq(stack: ImapStack) -> None:
    await three_messages(stack)
    status = await stack.store.status("alice", "INBOX")
    known = status.highestmodseq
    await stack.store.update_flags("alice", "INBOX", [3], "add", F.FLAGGED)
    await stack.store.update_flags("alice", "INBOX", [1], "add", F.DELETED)
    await stack.store.expunge("alice", "INBOX")

    def work(client: imaplib.IMAP4) -> list[bytes]:
        untagged(client, b"q1", "ENABLE QRESYNC")
        return untagged(client, b"q2", f"SELECT INBOX (QRESYNC ({status.uidvalidity} {known}))")[0]

    lines = await imaplib_session(stack, work)
    flagged = (await stack.store.messages("alice", "INBOX", [3]))[0].modseq
    assert lines[-2:] == [
        b"* VANISHED (EARLIER) 1",
        b"* 2 FETCH (UID 3 FLAGS (\\Flagged \\Recent) MODSEQ (%d))" % flagged,
    ]


async def test_uid_fetch_vanished_lists_expunged_uids_of_the_set(stack: ImapStack) -> None:
    await stack.store.append("alice", "INBOX", [NewMessage(RAW)] * 5)
    since = (await stack.store.status("alice", "INBOX")).highestmodseq
    await stack.store.update_flags("alice", "INBOX", [1, 2, 4], "add", F.DELETED)
    await stack.store.expunge("alice", "INBOX")

    def work(client: imaplib.IMAP4) -> tuple[list[bytes], list[bytes], bytes]:
        untagged(client, b"v1", "ENABLE QRESYNC")
        client.select("INBOX")
        modifiers = f"(CHANGEDSINCE {since} VANISHED)"
        vanished = untagged(client, b"v2", f"UID FETCH 2:* (FLAGS) {modifiers}")[0]
        refused = untagged(client, b"v3", f"FETCH 1 (FLAGS) {modifiers}")
        return vanished, *refused

    vanished, _, refused = await imaplib_session(stack, work)
    assert vanished == [b"* VANISHED (EARLIER) 2,4"]
    assert refused == b"BAD Error in IMAP command FETCH: Unknown FETCH modifier"


async def test_select_qresync_needs_qresync_enabled(stack: ImapStack) -> None:
    def work(client: imaplib.IMAP4) -> bytes:
        return untagged(client, b"n1", "SELECT INBOX (QRESYNC (1 1))")[1]

    assert await imaplib_session(stack, work) == (
        b"BAD Error in IMAP command SELECT: QRESYNC not enabled"
    )


# --- changes another process committed ---------------------------------------------------


async def test_an_idling_session_hears_a_delivery_made_by_another_process(
    stack: ImapStack,
) -> None:
    """`mailpush deliver` writes through its own store; the change feed publishes
    ChangedElsewhere; the IDLE answers `* n EXISTS` and the UID is fetchable."""
    await three_messages(stack)
    loop = asyncio.get_running_loop()
    idling = asyncio.Event()
    elsewhere = await asyncio.to_thread(stack.another_store)

    def work(client: IMAPClient) -> tuple[list[object], list[int]]:
        client.select_folder("INBOX")
        client.idle()
        loop.call_soon_threadsafe(idling.set)
        heard = client.idle_check(timeout=10)
        client.idle_done()
        return heard, list(client.fetch([1, 2, 3, 4], ["UID"]))

    session = asyncio.ensure_future(imapclient_session(stack, work))
    try:
        await asyncio.wait_for(idling.wait(), 10)
        await asyncio.sleep(0.1)  # the IDLE is registered before the change lands
        saved = await elsewhere.append("alice", "INBOX", [NewMessage(RAW)])
        stack.store.hub.publish([ChangedElsewhere("alice", "INBOX")])
        heard, seqs = await asyncio.wait_for(session, 20)
    finally:
        await asyncio.to_thread(elsewhere.close)
    assert (4, b"EXISTS") in heard
    assert seqs == [1, 2, 3, 4]
    assert saved.messages[0].uid == 4


async def test_a_selected_session_hears_flags_and_expunges_made_elsewhere_at_its_next_command(
    stack: ImapStack,
) -> None:
    await three_messages(stack)
    loop = asyncio.get_running_loop()
    selected = asyncio.Event()
    proceed = asyncio.Event()
    elsewhere = await asyncio.to_thread(stack.another_store)

    def work(client: imaplib.IMAP4) -> list[bytes]:
        untagged(client, b"w1", "ENABLE CONDSTORE")
        client.select("INBOX")
        loop.call_soon_threadsafe(selected.set)
        asyncio.run_coroutine_threadsafe(proceed.wait(), loop).result(10)
        return untagged(client, b"w2", "NOOP")[0]

    session = asyncio.ensure_future(imaplib_session(stack, work))
    try:
        await asyncio.wait_for(selected.wait(), 10)
        flagged = await elsewhere.update_flags("alice", "INBOX", [2], "add", F.FLAGGED)
        await elsewhere.update_flags("alice", "INBOX", [3], "add", F.DELETED)
        await elsewhere.expunge("alice", "INBOX")
        stack.store.hub.publish([ChangedElsewhere("alice", None)])  # "some mailbox of alice"
        await asyncio.sleep(0.2)  # the session reads the store in the background
        proceed.set()
        lines = await asyncio.wait_for(session, 20)
    finally:
        await asyncio.to_thread(elsewhere.close)
    modseq = flagged.changes[0].modseq
    assert lines == [
        b"* 3 EXPUNGE",
        b"* 2 FETCH (MODSEQ (%d) FLAGS (\\Flagged \\Recent))" % modseq,
        b"* 2 RECENT",
    ]


async def test_qresync_idle_reports_vanished_then_the_new_highestmodseq(stack: ImapStack) -> None:
    await three_messages(stack)
    await stack.store.update_flags("alice", "INBOX", [2], "add", F.DELETED)
    loop = asyncio.get_running_loop()
    idling = asyncio.Event()

    def work(client: imaplib.IMAP4) -> list[bytes]:
        untagged(client, b"i0", "ENABLE QRESYNC")
        client.select("INBOX")
        client.send(b"i1 IDLE\r\n")
        assert client.readline().startswith(b"+ ")
        loop.call_soon_threadsafe(idling.set)
        heard = [client.readline().rstrip(b"\r\n")]
        while not heard[-1].startswith(b"* OK [HIGHESTMODSEQ"):
            heard.append(client.readline().rstrip(b"\r\n"))
        client.send(b"DONE\r\n")
        assert client.readline().startswith(b"i1 OK")
        return heard

    session = asyncio.ensure_future(imaplib_session(stack, work))
    await asyncio.wait_for(idling.wait(), 10)
    expunged = await stack.store.expunge("alice", "INBOX")
    heard = await asyncio.wait_for(session, 20)
    assert heard == [
        b"* VANISHED 2", b"* 2 RECENT", b"* OK [HIGHESTMODSEQ %d] Highest" % expunged.modseq,
    ]


def test_a_store_read_older_than_what_the_view_heard_changes_nothing() -> None:
    """A resync read may start before a local change lands in the view by its record:
    its older flags and an expunged message it still holds must not come back."""
    infos = [MessageInfo(uid, 0, (), 10, 0, 0, 2, False) for uid in (1, 2)]
    view = MailboxView("INBOX", 7, False, infos, (), highestmodseq=2)
    view.on_change(FlagsChanged("alice", "INBOX", 7, (FlagChange(1, 0, F.SEEN, (), (), 3),)))
    view.on_change(MessagesExpunged("alice", "INBOX", 7, (2,), 4))
    view.take_updates(allow_expunge=True)
    stale = MailboxChanges(7, 2, 3, (), ())
    older = MailboxChanges(7, 3, 3, (MessageInfo(2, 0, (), 10, 0, 0, 2, False),), ())
    assert not view.on_resync(stale)
    assert not view.on_resync(older)
    assert (view.uids, view.flag_state(1), view.highestmodseq) == ([1], (F.SEEN, ()), 4)
    newer = MailboxChanges(7, 5, 4, (MessageInfo(3, F.FLAGGED, (), 10, 0, 0, 5, False),), ())
    assert view.on_resync(newer)
    assert view.take_updates(allow_expunge=True).new_uids == [3]
