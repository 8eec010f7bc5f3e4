"""NOTIFY (RFC 5465): a session is told about mail it is not asking about.

Session A sets NOTIFY and waits without a command; session B (or a delivery
over LMTP) changes mail; A reads what it is told. What Dovecot answers line
for line is checked in tests/dovecot/test_notify_differential.py; these
tests say what each part of NOTIFY does for a client.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from collections.abc import Callable
from typing import TypeVar, cast

import pytest

from mailpush.imap.notify import (
    FilterKind,
    MailboxEvents,
    MailboxFilter,
    NotifyEvent,
    NotifySettings,
    StatusSnapshot,
    changed_events,
    status_items_for,
    wants,
)
from mailpush.imap.notify_watch import MAX_PENDING, MailboxWatch
from mailpush.store import ChangedElsewhere, MailboxCreated, MailStore, NewMessage

from .conftest import PASSWORD, ImapStack

T = TypeVar("T")
MESSAGE = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"
#: How long a test waits for a line it expects (the server writes it at once).
PATIENCE = 10.0


class Client:
    """One logged-in imaplib connection, read line by line."""

    def __init__(self, stack: ImapStack) -> None:
        self.imap = imaplib.IMAP4(stack.host, stack.port, timeout=PATIENCE)
        self.imap.login("alice", PASSWORD)
        self.count = 0

    def command(self, text: str, literal: bytes | None = None) -> tuple[list[bytes], bytes]:
        """Send one command; its untagged lines and its tagged reply."""
        self.count += 1
        tag = b"n%d" % self.count
        data = tag + b" " + text.encode()
        if literal is not None:
            data += b" {%d+}\r\n" % len(literal) + literal
        self.imap.send(data + b"\r\n")
        lines: list[bytes] = []
        while True:
            line = self.imap.readline().rstrip(b"\r\n")
            if line.startswith(tag + b" "):
                return lines, line[len(tag) + 1 :]
            lines.append(line)

    def told(self, count: int) -> list[bytes]:
        """The next `count` lines the server sends unasked."""
        return [self.imap.readline().rstrip(b"\r\n") for _ in range(count)]

    def told_until(self, last: bytes) -> list[bytes]:
        """Lines sent unasked, up to the first that starts with `last`."""
        lines = [self.imap.readline().rstrip(b"\r\n")]
        while not lines[-1].startswith(last):
            lines.append(self.imap.readline().rstrip(b"\r\n"))
        return lines

    def close(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


async def in_thread(work: Callable[[], T]) -> T:
    return await asyncio.to_thread(work)


def deliver(stack: ImapStack, raw: bytes = MESSAGE) -> None:
    with smtplib.LMTP("127.0.0.1", stack.lmtp_port) as lmtp:
        lmtp.sendmail("sender@example.net", ["alice@example.org"], raw)


async def two_clients(stack: ImapStack) -> tuple[Client, Client]:
    a = await in_thread(lambda: Client(stack))
    b = await in_thread(lambda: Client(stack))
    return a, b


# --- the command ------------------------------------------------------------------------


async def test_capability_lists_notify(stack: ImapStack) -> None:
    a, b = await two_clients(stack)
    try:
        untagged, _ = await in_thread(lambda: a.command("CAPABILITY"))
        assert b"NOTIFY" in untagged[0].split()
    finally:
        await in_thread(a.close)
        await in_thread(b.close)


@pytest.mark.parametrize(
    ("arguments", "reply"),
    [
        ("FOO", b"BAD Error in IMAP command NOTIFY: Invalid arguments."),
        ("SET (foo (MessageNew))", b"BAD Error in IMAP command NOTIFY: Invalid arguments."),
        ("SET (personal ())", b"BAD Error in IMAP command NOTIFY: Invalid arguments."),
        (
            "SET (selected (MessageNew))",
            b"BAD Error in IMAP command NOTIFY: MessageNew and MessageExpunge must be together",
        ),
        (
            "SET (selected (FlagChange))",
            b"BAD Error in IMAP command NOTIFY: FlagChange requires MessageNew and MessageExpunge",
        ),
        (
            "SET (selected NONE) (selected-delayed NONE)",
            b"BAD Error in IMAP command NOTIFY: Duplicate selected filter",
        ),
        (
            "SET (personal (AnnotationChange MessageNew ServerMetadataChange))",
            b"NO [BADEVENT AnnotationChange ServerMetadataChange] Unsupported NOTIFY events.",
        ),
        ("SET STATUS", b"OK NOTIFY completed."),
        ("NONE", b"OK NOTIFY completed."),
    ],
)
async def test_notify_arguments_are_read_as_dovecot_reads_them(
    stack: ImapStack, arguments: str, reply: bytes
) -> None:
    a = await in_thread(lambda: Client(stack))
    try:
        _, tagged = await in_thread(lambda: a.command(f"NOTIFY {arguments}"))
        assert tagged == reply
    finally:
        await in_thread(a.close)


async def test_more_than_100_names_in_a_filter_is_an_overflow(stack: ImapStack) -> None:
    a = await in_thread(lambda: Client(stack))
    names = " ".join(f"box{n}" for n in range(101))
    command = f"NOTIFY SET (mailboxes ({names}) (MessageNew))"
    try:
        _, tagged = await in_thread(lambda: a.command(command))
        assert tagged == b"NO [NOTIFICATIONOVERFLOW] Too many mailbox names"
    finally:
        await in_thread(a.close)


async def test_notify_set_status_answers_each_covered_mailbox_but_the_selected(
    stack: ImapStack,
) -> None:
    for name in ("box1", "box2", "other"):
        await stack.store.create_mailbox("alice", name)
    a = await in_thread(lambda: Client(stack))
    try:
        await in_thread(lambda: a.command("SELECT box2"))
        untagged, tagged = await in_thread(
            lambda: a.command("NOTIFY SET STATUS (mailboxes (box1 box2) (MessageNew))")
        )
        assert tagged == b"OK NOTIFY completed."
        assert len(untagged) == 1
        assert untagged[0].startswith(b"* STATUS box1 (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ")
        assert untagged[0].endswith(b" UNSEEN 0)")
    finally:
        await in_thread(a.close)


# --- other mailboxes ------------------------------------------------------------------


async def test_a_delivery_is_told_as_status_without_a_command(stack: ImapStack) -> None:
    await stack.store.ensure_mailboxes("alice", [("INBOX", None)])
    a = await in_thread(lambda: Client(stack))
    try:
        await in_thread(lambda: a.command("NOTIFY SET (inboxes (MessageNew MessageExpunge))"))
        await in_thread(lambda: deliver(stack))
        told = await in_thread(lambda: a.told(1))
        assert told == [b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]
    finally:
        await in_thread(a.close)


async def test_flag_changes_and_expunges_elsewhere_are_told_as_status(stack: ImapStack) -> None:
    await stack.store.create_mailbox("alice", "box")
    a, b = await two_clients(stack)
    try:
        await in_thread(lambda: a.command("ENABLE CONDSTORE"))
        await in_thread(
            lambda: a.command("NOTIFY SET (subtree box (MessageNew MessageExpunge FlagChange))")
        )
        await in_thread(lambda: b.command("APPEND box", MESSAGE))
        appended = await in_thread(lambda: a.told(1))
        await in_thread(lambda: b.command("SELECT box"))
        await in_thread(lambda: b.command("STORE 1 +FLAGS (\\Seen)"))
        seen = await in_thread(lambda: a.told(1))
        await in_thread(lambda: b.command("STORE 1 +FLAGS ($Label)"))
        keyword = await in_thread(lambda: a.told(1))
        await in_thread(lambda: b.command("STORE 1 +FLAGS (\\Deleted)"))
        await in_thread(lambda: a.told(1))
        await in_thread(lambda: b.command("EXPUNGE"))
        expunged = await in_thread(lambda: a.told(1))
    finally:
        await in_thread(a.close)
        await in_thread(b.close)
    assert appended[0].startswith(b"* STATUS box (MESSAGES 1 UIDNEXT 2 UNSEEN 1 HIGHESTMODSEQ ")
    assert seen[0].startswith(b"* STATUS box (UNSEEN 0 HIGHESTMODSEQ ")
    assert keyword[0].startswith(b"* STATUS box (HIGHESTMODSEQ ")  # only with CONDSTORE
    assert expunged[0].startswith(b"* STATUS box (MESSAGES 0 UIDNEXT 2 UNSEEN 0 HIGHESTMODSEQ ")


async def test_a_change_another_process_committed_is_told_too(stack: ImapStack) -> None:
    """`mailpush deliver` writes through its own store; the change feed publishes
    ChangedElsewhere, and the watch reads the mailbox's status."""
    await stack.store.create_mailbox("alice", "box")
    elsewhere = await in_thread(stack.another_store)
    a = await in_thread(lambda: Client(stack))
    try:
        await in_thread(lambda: a.command("NOTIFY SET (subtree box (MessageNew))"))
        await elsewhere.append("alice", "box", [NewMessage(MESSAGE)])
        stack.store.hub.publish([ChangedElsewhere("alice", None)])
        told = await in_thread(lambda: a.told(1))
    finally:
        await in_thread(a.close)
        await asyncio.to_thread(elsewhere.close)
    assert told == [b"* STATUS box (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"]


async def test_a_mailbox_outside_the_filters_is_not_told(stack: ImapStack) -> None:
    for name in ("watched", "ignored"):
        await stack.store.create_mailbox("alice", name)
    a, b = await two_clients(stack)
    try:
        await in_thread(lambda: a.command("NOTIFY SET (mailboxes watched (MessageNew))"))
        await in_thread(lambda: b.command("APPEND ignored", MESSAGE))
        await in_thread(lambda: b.command("APPEND watched", MESSAGE))
        told = await in_thread(lambda: a.told(1))
    finally:
        await in_thread(a.close)
        await in_thread(b.close)
    assert told[0].startswith(b"* STATUS watched ")


async def test_a_mailbox_created_after_notify_is_told_as_new_in_every_way(
    stack: ImapStack,
) -> None:
    """Dovecot judges a change against the status its list index had when NOTIFY was
    set; a mailbox created since has none there, so every change tells everything."""
    a, b = await two_clients(stack)
    try:
        await in_thread(lambda: a.command("NOTIFY SET (personal (MessageNew))"))
        await in_thread(lambda: b.command("CREATE later"))
        await in_thread(lambda: b.command("APPEND later", MESSAGE))
        first = await in_thread(lambda: a.told(1))
        await in_thread(lambda: b.command("APPEND later", MESSAGE))
        second = await in_thread(lambda: a.told(1))
    finally:
        await in_thread(a.close)
        await in_thread(b.close)
    for told, count in ((first, 1), (second, 2)):
        assert told[0].startswith(b"* STATUS later (MESSAGES %d UIDNEXT %d UIDVALIDITY " % (
            count, count + 1))
        assert told[0].endswith(b" UNSEEN %d)" % count)


async def test_mailbox_names_and_subscriptions_are_told_as_list(stack: ImapStack) -> None:
    a, b = await two_clients(stack)
    try:
        await in_thread(
            lambda: a.command("NOTIFY SET (personal (MailboxName SubscriptionChange))")
        )
        told = []
        for command in ("CREATE new", "RENAME new renamed", "SUBSCRIBE renamed",
                        "UNSUBSCRIBE renamed", "DELETE renamed"):  # fmt: skip
            await in_thread(lambda command=command: b.command(command))
            told += await in_thread(lambda: a.told(1))
    finally:
        await in_thread(a.close)
        await in_thread(b.close)
    assert told == [
        b'* LIST () "/" new',
        b'* LIST () "/" renamed ("OLDNAME" (new))',
        b'* LIST (\\Subscribed) "/" renamed',
        b'* LIST () "/" renamed',
        b'* LIST (\\NonExistent) "/" renamed',
    ]


# --- the selected mailbox --------------------------------------------------------------


async def test_selected_mailbox_changes_come_between_commands_with_the_fetch_asked_for(
    stack: ImapStack,
) -> None:
    await stack.store.create_mailbox("alice", "box")
    a, b = await two_clients(stack)
    try:
        await in_thread(lambda: a.command("SELECT box"))
        await in_thread(
            lambda: a.command(
                "NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange))"
            )
        )
        await in_thread(lambda: b.command("APPEND box", MESSAGE))
        new = await in_thread(lambda: a.told_until(b"* 1 FETCH"))
        await in_thread(lambda: b.command("SELECT box"))
        await in_thread(lambda: b.command("STORE 1 +FLAGS.SILENT (\\Deleted)"))
        flagged = await in_thread(lambda: a.told(1))
        await in_thread(lambda: b.command("EXPUNGE"))
        expunged = await in_thread(lambda: a.told(1))
    finally:
        await in_thread(a.close)
        await in_thread(b.close)
    assert new == [b"* 1 EXISTS", b"* 1 RECENT", b"* 1 FETCH (UID 1 FLAGS (\\Recent))"]
    assert flagged == [b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))"]
    assert expunged == [b"* 1 EXPUNGE"]


async def test_selected_delayed_keeps_expunges_for_a_command(stack: ImapStack) -> None:
    await stack.store.create_mailbox("alice", "box")
    a, b = await two_clients(stack)
    try:
        await in_thread(lambda: b.command("APPEND box", MESSAGE))
        await in_thread(lambda: a.command("SELECT box"))
        await in_thread(
            lambda: a.command("NOTIFY SET (selected-delayed (MessageNew MessageExpunge))")
        )
        await in_thread(lambda: b.command("SELECT box"))
        await in_thread(lambda: b.command("STORE 1 +FLAGS (\\Deleted)"))
        await in_thread(lambda: b.command("EXPUNGE"))
        await in_thread(lambda: b.command("UNSELECT"))
        await in_thread(lambda: b.command("APPEND box", MESSAGE))
        told = await in_thread(lambda: a.told_until(b"* 2 RECENT"))
        noop = await in_thread(lambda: a.command("NOOP"))
    finally:
        await in_thread(a.close)
        await in_thread(b.close)
    # The new message is told at once; the expunge, which came first, waited: the
    # expunged message keeps its number 1 until the NOOP.
    assert told == [b"* 2 EXISTS", b"* 2 RECENT"]
    assert noop == ([b"* 1 EXPUNGE", b"* 1 RECENT"], b"OK NOOP completed.")


async def test_without_the_selected_filter_nothing_is_said_about_the_selected_mailbox(
    stack: ImapStack,
) -> None:
    await stack.store.create_mailbox("alice", "box")
    await stack.store.create_mailbox("alice", "other")
    a, b = await two_clients(stack)
    try:
        await in_thread(lambda: a.command("SELECT box"))
        await in_thread(lambda: a.command("NOTIFY SET (mailboxes (box other) (MessageNew))"))
        await in_thread(lambda: b.command("APPEND box", MESSAGE))
        await in_thread(lambda: b.command("APPEND other", MESSAGE))
        told = await in_thread(lambda: a.told(1))
        noop = await in_thread(lambda: a.command("NOOP"))
        fetched = await in_thread(lambda: a.command("FETCH 1:* UID"))
        stored = await in_thread(lambda: a.command("STORE 1 +FLAGS (\\Deleted)"))
        expunged = await in_thread(lambda: a.command("EXPUNGE"))
        after = await in_thread(lambda: a.command("SEARCH ALL"))
    finally:
        await in_thread(a.close)
        await in_thread(b.close)
    assert told[0].startswith(b"* STATUS other ")  # not box: it is selected
    # As Dovecot: no EXISTS, no FETCH answering STORE, no EXPUNGE, even after the
    # session's own commands; the numbering still follows the mailbox.
    assert noop == ([], b"OK NOOP completed.")
    assert fetched[0] == [b"* 1 FETCH (UID 1)"]
    assert stored == ([], b"OK Store completed.")
    assert expunged == ([], b"OK Expunge completed.")
    assert after == ([b"* SEARCH"], b"OK Search completed.")


# --- what a change makes a client hear (notify.py) ----------------------------------------


def test_a_new_message_is_appends_and_seen_changes() -> None:
    before = StatusSnapshot(uidvalidity=7, uidnext=3, messages=2, unseen=0, highestmodseq=4)
    after = StatusSnapshot(uidvalidity=7, uidnext=4, messages=3, unseen=1, highestmodseq=5)
    changed = changed_events(before, after)
    assert changed == (
        MailboxEvents.APPENDS | MailboxEvents.SEEN_CHANGES | MailboxEvents.MODSEQ_CHANGES
    )
    assert wants(NotifyEvent.MESSAGE_NEW, changed)
    assert not wants(NotifyEvent.MESSAGE_EXPUNGE, changed)
    assert status_items_for(changed, condstore=False) == {"UIDNEXT", "MESSAGES", "UNSEEN"}


def test_a_keyword_change_says_something_only_under_condstore() -> None:
    before = StatusSnapshot(7, 3, 2, 0, 4)
    changed = changed_events(before, StatusSnapshot(7, 3, 2, 0, 5))
    assert changed == MailboxEvents.MODSEQ_CHANGES
    assert wants(NotifyEvent.FLAG_CHANGE, changed)
    assert status_items_for(changed, condstore=False) == set()
    assert status_items_for(changed, condstore=True) == {"HIGHESTMODSEQ"}


def test_a_mailbox_not_seen_before_is_new_in_every_way() -> None:
    changed = changed_events(StatusSnapshot(), StatusSnapshot(9, 1, 0, 0, 1))
    assert changed & MailboxEvents.UIDVALIDITY
    assert wants(NotifyEvent.FLAG_CHANGE, changed)
    assert status_items_for(changed, condstore=False) == {
        "UIDVALIDITY", "UIDNEXT", "MESSAGES", "UNSEEN",
    }  # fmt: skip


async def test_past_max_pending_notifications_the_client_hears_of_the_overflow() -> None:
    """What waits to be told is bounded: one notification too many drops them all, says
    `* OK [NOTIFICATIONOVERFLOW]` and stops watching other mailboxes (RFC 5465 §5.8)."""
    lines: list[bytes] = []
    everything = MailboxFilter(FilterKind.SUBTREE, NotifyEvent.MAILBOX_NAME, ("",))
    watch = MailboxWatch(
        NotifySettings(filters=(everything,)), cast(MailStore, None), "alice",
        emit=lines.append, selected=lambda: None, condstore=lambda: False,
    )  # fmt: skip
    for n in range(MAX_PENDING + 1):  # none is told meanwhile: the loop never yields
        watch.on_change(MailboxCreated("alice", f"box{n}", 1))
    await asyncio.sleep(0)
    watch.on_change(MailboxCreated("alice", "later", 1))
    await asyncio.sleep(0)
    assert lines == [b"* OK [NOTIFICATIONOVERFLOW] Too many notifications\r\n"]
