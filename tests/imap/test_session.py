"""The selected mailbox as one session numbers it (imap/session.py).

Sequence numbers follow UIDs, and a number once given never moves except by
`* n EXPUNGE` (RFC 3501 section 2.3.1.2). A session hears its own process's
commits as change records at once and other processes' commits only through
the change feed and a read of the store, so the two can arrive out of commit
order. imaptest (40 clients on 5 users over two workers) caught a session
that numbered UID 1621 before hearing of UID 1619, committed earlier by the
other worker, and then renumbered: "UID changed for sequence 24: 1621 -> 1619".
"""

from __future__ import annotations

import pytest

from mailpush.imap.session import MailboxView
from mailpush.store import MailboxChanges, MessageInfo, MessagesSaved
from mailpush.store.changes import FlagChange, FlagsChanged, MessagesExpunged, SavedMessage


def view_of(uids: list[int], highestmodseq: int) -> MailboxView:
    infos = [MessageInfo(uid, 0, (), 10, 0, 0, uid, False) for uid in uids]
    return MailboxView("INBOX", 7, False, infos, (), highestmodseq)


def saved(uid: int, modseq: int) -> MessagesSaved:
    return MessagesSaved(
        "alice", "INBOX", 7, (SavedMessage(uid, 0, (), 10, 0, modseq, None),), False
    )


def read_back(highestmodseq: int, *infos: tuple[int, int]) -> MailboxChanges:
    messages = tuple(MessageInfo(uid, 0, (), 10, 0, 0, modseq, False) for uid, modseq in infos)
    return MailboxChanges(7, highestmodseq, max(u for u, _ in infos) + 1, messages, ())


def test_a_record_right_after_what_the_view_knows_is_shown_at_once() -> None:
    view = view_of([1, 2], highestmodseq=5)

    assert view.on_change(saved(3, 6))
    assert not view.needs_read
    updates = view.take_updates(allow_expunge=True)

    assert updates.exists == 3
    assert view.uids == [1, 2, 3]


def test_a_record_past_an_unread_commit_waits_for_the_store_read() -> None:
    view = view_of([1, 2], highestmodseq=5)

    # Modseq 6 (UID 3) was committed by another process; this process's UID 4 came first.
    assert view.on_change(saved(4, 7))

    assert view.needs_read
    assert view.take_updates(allow_expunge=True).exists is None
    assert view.highestmodseq == 5  # a read from here still finds modseq 6

    view.on_resync(read_back(7, (3, 6), (4, 7)))
    updates = view.take_updates(allow_expunge=True)

    assert not view.needs_read
    assert updates.exists == 4
    assert view.uids == [1, 2, 3, 4]


def test_numbers_once_given_never_move(caplog: pytest.LogCaptureFixture) -> None:
    view = view_of([1, 2, 4], highestmodseq=7)

    # A UID below one already numbered can only come from a commit missed before:
    # it is left out of this session rather than slid in between.
    view.on_resync(read_back(8, (3, 8)))
    updates = view.take_updates(allow_expunge=True)

    assert view.uids == [1, 2, 4]
    assert updates.exists is None
    assert view.seq_of(3) is None
    assert "UIDs [3] came after UID 4 was numbered" in caplog.text


def test_flag_changes_and_expunges_past_an_unread_commit_wait_too() -> None:
    view = view_of([1, 2], highestmodseq=5)
    change = FlagChange(2, 0, 1, (), (), 7, False)

    view.on_change(FlagsChanged("alice", "INBOX", 7, (change,), ()))
    assert view.needs_read
    assert not view.take_updates(allow_expunge=True).flags

    other = view_of([1, 2], highestmodseq=5)
    other.on_change(MessagesExpunged("alice", "INBOX", 7, (2,), 7))
    assert other.needs_read
    assert not other.take_updates(allow_expunge=True).expunged


def test_every_keyword_a_message_carries_is_in_the_flags_list() -> None:
    """SELECT reads the mailbox's keyword list and its messages one after the other;
    another process may store a new keyword in between (imaptest on two nodes:
    "Keyword used without being in FLAGS", "Keyword dropped")."""
    infos = [MessageInfo(1, 0, ("$Label1",), 10, 0, 0, 1, False)]
    view = MailboxView("INBOX", 7, False, infos, ("Work",), 1)

    assert view.keyword_names == ["$Label1", "Work"]
