"""CONTEXT=SEARCH (RFC 5267): SEARCH RETURN (PARTIAL m:n), SEARCH RETURN (UPDATE) and
CANCELUPDATE, answered line for line as Dovecot 2.3.19 answers them.

The scripts follow imaptest's search-partial and search-context-update tests
and what a private Dovecot 2.3.19 answered to the same commands: an UPDATE
search reports `ADDTO (0 ...)` / `REMOVEFROM (0 ...)` (Dovecot always says
position 0) after the FETCH and EXISTS lines of a change, and a REMOVEFROM for
expunged messages before their `* n EXPUNGE`, numbered as the client still
knows them. Changes come from this session, from another session, and from
another process (a second store instance and `ChangedElsewhere`).
"""

# ruff: noqa: E501  (the transcripts hold protocol lines verbatim)

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from mailpush.imap.heavy_work import INLINE_BYTES
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

from .conftest import PASSWORD, ImapStack, StackFactory
from .two_sessions import Session, message

T = TypeVar("T")


def connect(stack: ImapStack, name: str) -> Session:
    return Session(stack.host, stack.port, "alice", PASSWORD, name)


def next_tag(session: Session) -> str:
    """The tag `session.run` gives its next command."""
    return f"{session.name}{session._count + 1}"


def fill(session: Session, mailbox: str, count: int) -> None:
    session.run(f"CREATE {mailbox}")
    for n in range(1, count + 1):
        session.run(f"APPEND {mailbox}", message(n))


async def in_thread(stack: ImapStack, work: Callable[[Session, Session], T]) -> T:
    """Run `work` with sessions A and B (logged in as alice) off the event loop."""

    def run() -> T:
        a, b = connect(stack, "A"), connect(stack, "B")
        try:
            return work(a, b)
        finally:
            a.close()
            b.close()

    return await asyncio.to_thread(run)


# --- capability and PARTIAL ----------------------------------------------------------------


async def test_capability_lists_context_search_but_not_context_sort(stack: ImapStack) -> None:
    def work(a: Session, b: Session) -> list[str]:
        return a.run("CAPABILITY")

    lines = await in_thread(stack, work)
    capabilities = lines[0].split()
    assert "CONTEXT=SEARCH" in capabilities
    assert "CONTEXT=SORT" not in capabilities  # Dovecot 2.3.19 does not offer it either


async def test_partial_returns_the_asked_range_of_the_result(stack: ImapStack) -> None:
    """imaptest's search-partial: positions count from 1 within the result, a reversed
    range is turned round, a range past the end answers NIL."""

    def work(a: Session, b: Session) -> list[list[str]]:
        fill(a, "part", 5)
        a.run("SELECT part")
        asked = [
            "SEARCH RETURN (PARTIAL 1:1) ALL",
            "SEARCH RETURN (PARTIAL 2:4) ALL",
            "SEARCH RETURN (PARTIAL 4:2) ALL",
            "SEARCH RETURN (PARTIAL 1:6) ALL",
            "SEARCH RETURN (PARTIAL 6:6) ALL",
            "SEARCH RETURN (PARTIAL 1:3) 1:2,4:5",
            "SEARCH RETURN (PARTIAL 2:3) 1:2,4:5",
            "SEARCH RETURN (PARTIAL 2:10) 1:2,4:5",
            "SEARCH RETURN (PARTIAL 1:2 COUNT) ALL",
            "SEARCH RETURN (PARTIAL 1:2 MIN MAX) ALL",
            "SEARCH RETURN (PARTIAL 01:4294967295) ALL",
        ]
        return [[line.split(") ", 1)[-1] for line in a.run(command)] for command in asked]

    assert await in_thread(stack, work) == [
        ["PARTIAL (1:1 1)", "OK Search completed."],
        ["PARTIAL (2:4 2:4)", "OK Search completed."],
        ["PARTIAL (2:4 2:4)", "OK Search completed."],
        ["PARTIAL (1:6 1:5)", "OK Search completed."],
        ["PARTIAL (6:6 NIL)", "OK Search completed."],
        ["PARTIAL (1:3 1:2,4)", "OK Search completed."],
        ["PARTIAL (2:3 2,4)", "OK Search completed."],
        ["PARTIAL (2:10 2,4:5)", "OK Search completed."],
        ["PARTIAL (1:2 1:2) COUNT 5", "OK Search completed."],
        ["MIN 1 MAX 5 PARTIAL (1:2 1:2)", "OK Search completed."],  # Dovecot's order
        ["PARTIAL (1:4294967295 1:5)", "OK Search completed."],
    ]


async def test_uid_partial_counts_positions_in_the_uid_result(stack: ImapStack) -> None:
    def work(a: Session, b: Session) -> list[list[str]]:
        fill(a, "part", 5)
        a.run("SELECT part")
        out = [a.run("UID SEARCH RETURN (PARTIAL 2:2) ALL")]
        a.run("STORE 2 +FLAGS.SILENT (\\Deleted)")
        a.run("EXPUNGE")
        out.append(a.run("UID SEARCH RETURN (PARTIAL 2:2) ALL"))
        out.append(a.run("UID SEARCH RETURN (PARTIAL 5:10) ALL"))
        return out

    tags = ["A8", "A11", "A12"]
    assert await in_thread(stack, work) == [
        [f'* ESEARCH (TAG "{tags[0]}") UID PARTIAL (2:2 2)', "OK Search completed."],
        [f'* ESEARCH (TAG "{tags[1]}") UID PARTIAL (2:2 3)', "OK Search completed."],
        [f'* ESEARCH (TAG "{tags[2]}") UID PARTIAL (5:10 NIL)', "OK Search completed."],
    ]


async def test_broken_partial_ranges_and_conflicting_options_are_bad(stack: ImapStack) -> None:
    def work(a: Session, b: Session) -> list[list[str]]:
        fill(a, "part", 2)
        a.run("SELECT part")
        asked = [
            "SEARCH RETURN (PARTIAL 1) ALL",
            "SEARCH RETURN (PARTIAL 1:*) ALL",
            "SEARCH RETURN (PARTIAL *:1) ALL",
            "SEARCH RETURN (PARTIAL 0:1) ALL",
            "SEARCH RETURN (PARTIAL 1:4294967296) ALL",
            "SEARCH RETURN (PARTIAL) ALL",
            "SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
            "SEARCH RETURN (PARTIAL 1:2 PARTIAL 2:3) ALL",
            "SEARCH RETURN (UPDATE UPDATE) ALL",
            "SEARCH RETURN (UPDATE SAVE) ALL",
            "SEARCH RETURN (UPDATE (FLAGS)) ALL",
        ]
        return [a.run(command) for command in asked]

    prefix = "BAD Error in IMAP command SEARCH: "
    assert await in_thread(stack, work) == [
        [prefix + "PARTIAL range broken."],
        [prefix + "PARTIAL range broken."],
        [prefix + "PARTIAL range broken."],
        [prefix + "PARTIAL range broken."],
        [prefix + "PARTIAL range broken."],
        [prefix + "PARTIAL range missing."],
        [prefix + "PARTIAL conflicts with ALL."],
        [prefix + "PARTIAL can be used only once."],
        [prefix + "SEARCH return options have duplicate UPDATE."],
        # SAVE (SEARCHRES) is not offered: refused as Dovecot refuses what it does not know.
        [prefix + "Unknown SEARCH return option."],
        # Dovecot's UPDATE (fetch-att) extension is not offered either.
        [prefix + "SEARCH UPDATE with a fetch-att list is not supported."],
    ]


async def test_context_alone_means_all_and_update_or_partial_alone_return_only_themselves(
    stack: ImapStack,
) -> None:
    def work(a: Session, b: Session) -> list[str]:
        fill(a, "part", 2)
        a.run("SELECT part")
        asked = [
            "SEARCH RETURN (CONTEXT) ALL",
            "SEARCH RETURN () ALL",
            "SEARCH RETURN (UPDATE) ALL",
            "SEARCH RETURN (PARTIAL 1:1) ALL",
            "UID SEARCH RETURN (UPDATE COUNT) ALL",
        ]
        return [a.run(command)[0].split(") ", 1)[-1] for command in asked]

    assert await in_thread(stack, work) == [
        "ALL 1:2", "ALL 1:2", '* ESEARCH (TAG "A7")', "PARTIAL (1:1 1)", "UID COUNT 2",
    ]  # fmt: skip


# --- UPDATE: changes made by this session ------------------------------------------------------


async def test_update_follows_this_sessions_stores_expunges_and_appends(stack: ImapStack) -> None:
    """imaptest's search-context-update: ADDTO after the STORE's FETCH lines, REMOVEFROM
    before the EXPUNGEs (in the numbering they remove), ADDTO after `* n EXISTS`."""

    def work(a: Session, b: Session) -> tuple[str, list[list[str]]]:
        fill(a, "ctx", 5)
        a.run("SELECT ctx")
        tag = next_tag(a)
        out = [a.run("SEARCH RETURN (UPDATE) BODY body SEEN")]
        out.append(a.run("STORE 1,2,4 +FLAGS (\\Seen)"))
        out.append(a.run("STORE 1,2 -FLAGS (\\Seen)"))
        out.append(a.run("STORE 3:5 +FLAGS.SILENT (\\Deleted)"))
        out.append(a.run("EXPUNGE"))
        out.append(a.run("APPEND ctx (\\Seen)", message(6))[:-1])
        out.append(a.run(f'CANCELUPDATE "{tag}"'))
        out.append(a.run("STORE 1 +FLAGS (\\Seen)"))
        return tag, out

    tag, out = await in_thread(stack, work)
    update = f'* ESEARCH (TAG "{tag}")'
    assert out == [
        [update, "OK Search completed."],
        [
            "* 1 FETCH (FLAGS (\\Seen \\Recent))",
            "* 2 FETCH (FLAGS (\\Seen \\Recent))",
            "* 4 FETCH (FLAGS (\\Seen \\Recent))",
            f"{update} ADDTO (0 1:2,4)",
            "OK Store completed.",
        ],
        [
            "* 1 FETCH (FLAGS (\\Recent))",
            "* 2 FETCH (FLAGS (\\Recent))",
            f"{update} REMOVEFROM (0 1:2)",
            "OK Store completed.",
        ],
        ["OK Store completed."],
        [
            f"{update} REMOVEFROM (0 4)",
            "* 3 EXPUNGE",
            "* 3 EXPUNGE",
            "* 3 EXPUNGE",
            "* 2 RECENT",
            "OK Expunge completed.",
        ],
        ["* 3 EXISTS", "* 3 RECENT", f"{update} ADDTO (0 3)"],
        ["OK Updates cancelled."],
        ["* 1 FETCH (FLAGS (\\Seen \\Recent))", "OK Store completed."],
    ]


async def test_uid_update_reports_uids_and_rereads_headers_of_changed_messages(
    stack: ImapStack,
) -> None:
    """imaptest's search-context-update3: a UID search mixing a flag and a header key
    re-evaluates the whole program on each message whose flags changed."""

    def work(a: Session, b: Session) -> tuple[str, list[list[str]]]:
        fill(a, "ctx", 6)
        a.run("SELECT ctx")
        a.run("STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.run("EXPUNGE")  # sequence numbers 1:5 are UIDs 2:6 now
        a.run("STORE 1,2 +FLAGS.SILENT (\\Seen)")
        tag = next_tag(a)
        out = [a.run("UID SEARCH RETURN (UPDATE ALL) OR SEEN SUBJECT m4")]
        out.append(a.run("STORE 3:5 +FLAGS.SILENT (\\Seen)"))
        out.append(a.run("STORE 1:5 -FLAGS.SILENT (\\Seen)"))
        out.append(a.run("UID STORE 4,5 +FLAGS.SILENT (\\Seen)"))
        a.run("STORE 3 +FLAGS.SILENT (\\Deleted)")
        out.append(a.run("EXPUNGE"))
        return tag, out

    tag, out = await in_thread(stack, work)
    update = f'* ESEARCH (TAG "{tag}") UID'
    assert out == [
        [f"{update} ALL 2:4", "OK Search completed."],
        [f"{update} ADDTO (0 5:6)", "OK Store completed."],
        # m4 (UID 4) still matches by its subject.
        [f"{update} REMOVEFROM (0 2:3,5:6)", "OK Store completed."],
        [f"{update} ADDTO (0 5)", "OK Store completed."],
        [f"{update} REMOVEFROM (0 4)", "* 3 EXPUNGE", "* 4 RECENT", "OK Expunge completed."],
    ]


async def test_update_of_a_search_without_flag_keys_looks_only_at_new_messages(
    stack: ImapStack,
) -> None:
    """Like Dovecot: a search whose keys do not read flags is not re-run when flags change;
    sequence numbers in it name the messages they named when it ran."""

    def work(a: Session, b: Session) -> tuple[list[str], list[list[str]]]:
        fill(a, "ctx", 3)
        a.run("SELECT ctx")
        tags = [next_tag(a)]
        out = [a.run("SEARCH RETURN (UPDATE) BODY 4")]
        tags.append(next_tag(a))
        out.append(a.run("SEARCH RETURN (UPDATE COUNT) 2:* SEEN"))
        out.append(a.run("STORE 1:3 +FLAGS.SILENT (\\Seen)"))
        out.append(a.run("APPEND ctx (\\Seen)", message(4))[:-1])
        return tags, out

    tags, out = await in_thread(stack, work)
    body, seen = (f'* ESEARCH (TAG "{tag}")' for tag in tags)
    assert out == [
        [body, "OK Search completed."],
        [f"{seen} COUNT 0", "OK Search completed."],
        [f"{seen} ADDTO (0 2:3)", "OK Store completed."],
        # `2:*` meant messages 2 and 3 when the search ran: the new message 4 is not in it.
        ["* 4 EXISTS", "* 4 RECENT", f"{body} ADDTO (0 4)"],
    ]


async def test_update_reads_large_new_mail_in_the_worker_pool(make_stack: StackFactory) -> None:
    """A body key over a new message larger than INLINE_BYTES is matched in the pool, as
    SEARCH does: following a search never parses much mail on the event loop."""
    stack = await make_stack(heavy_work_pool="thread")
    big = b"Subject: big\r\n\r\n" + b"filler line\r\n" * (INLINE_BYTES // 10) + b"needle\r\n"

    def work(a: Session, b: Session) -> tuple[str, bool, list[str]]:
        fill(a, "ctx", 2)
        a.run("SELECT ctx")
        tag = next_tag(a)
        a.run("SEARCH RETURN (UPDATE) BODY needle")
        started_before = stack.imap.heavy.pool_started
        b.run("APPEND ctx", big)
        return tag, started_before, a.run("NOOP")

    tag, started_before, noop = await in_thread(stack, work)
    assert not started_before  # two small messages: matched on the loop
    assert stack.imap.heavy.pool_started
    assert noop == ["* 3 EXISTS", "* 3 RECENT", f'* ESEARCH (TAG "{tag}") ADDTO (0 3)', "OK NOOP completed."]


# --- UPDATE: changes made by another session or process ----------------------------------------


async def test_update_reports_another_sessions_changes_at_the_next_command_and_in_idle(
    stack: ImapStack,
) -> None:
    def work(a: Session, b: Session) -> tuple[str, list[list[str]]]:
        fill(a, "ctx", 3)
        a.run("SELECT ctx")
        b.run("SELECT ctx")
        tag = next_tag(a)
        out = [a.run("SEARCH RETURN (UPDATE) SEEN")]
        b.run("STORE 2 +FLAGS.SILENT (\\Seen)")
        b.run("APPEND ctx (\\Seen)", message(4))
        out.append(a.run("NOOP"))
        b.run("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.run("EXPUNGE")
        out.append(a.run("FETCH 1 UID"))  # may not send EXPUNGE: nothing to say yet
        out.append(a.run("NOOP"))
        a.idle()
        b.run("STORE 1 +FLAGS.SILENT (\\Seen)")
        heard = [a.line(), a.line()]
        out.append(heard + a.done())
        return tag, out

    tag, out = await in_thread(stack, work)
    update = f'* ESEARCH (TAG "{tag}")'
    assert out == [
        [update, "OK Search completed."],
        [
            "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))",
            "* 4 EXISTS",
            f"{update} ADDTO (0 2,4)",
            "OK NOOP completed.",
        ],
        # The flag change of message 2 is said; its expunge waits for a command that may.
        ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2 FLAGS (\\Deleted \\Seen \\Recent))", "OK Fetch completed."],
        [f"{update} REMOVEFROM (0 2)", "* 2 EXPUNGE", "* 2 RECENT", "OK NOOP completed."],
        ["* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))", f"{update} ADDTO (0 1)", "OK Idle completed."],
    ]


async def test_update_is_pushed_between_commands_under_notify_selected(stack: ImapStack) -> None:
    """NOTIFY SET (SELECTED ...): new mail is pushed as it comes, its ESEARCH ADDTO after
    the `* n EXISTS` (what Dovecot 2.3.19 pushes too)."""

    def work(a: Session, b: Session) -> tuple[str, list[str]]:
        fill(a, "ctx", 2)
        a.run("SELECT ctx")
        a.run("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
        tag = next_tag(a)
        a.run("SEARCH RETURN (UPDATE) SEEN")
        b.run("APPEND ctx (\\Seen)", message(3))
        return tag, [a.line(), a.line(), a.line()]

    tag, pushed = await in_thread(stack, work)
    assert pushed == ["* 3 EXISTS", "* 3 RECENT", f'* ESEARCH (TAG "{tag}") ADDTO (0 3)']


async def test_update_reports_changes_another_process_committed(stack: ImapStack) -> None:
    """A second store instance changes flags, delivers and expunges; the change feed's
    ChangedElsewhere makes the session read them; its next command reports the ESEARCH."""
    await stack.store.append("alice", "INBOX", [NewMessage(message(n)) for n in (1, 2, 3)])
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    proceed = asyncio.Event()
    elsewhere = await asyncio.to_thread(stack.another_store)

    def work(a: Session, b: Session) -> tuple[str, list[list[str]]]:
        a.run("SELECT INBOX")
        tag = next_tag(a)
        out = [a.run("UID SEARCH RETURN (UPDATE ALL) UNSEEN")]
        loop.call_soon_threadsafe(ready.set)
        asyncio.run_coroutine_threadsafe(proceed.wait(), loop).result(10)
        out.append(a.run("NOOP"))
        return tag, out

    session = asyncio.ensure_future(in_thread(stack, work))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await elsewhere.update_flags("alice", "INBOX", [2], "add", F.SEEN)
        await elsewhere.update_flags("alice", "INBOX", [3], "add", F.DELETED)
        await elsewhere.expunge("alice", "INBOX")
        await elsewhere.append("alice", "INBOX", [NewMessage(message(4))])
        stack.store.hub.publish([ChangedElsewhere("alice", "INBOX")])
        await asyncio.sleep(0.3)  # the session reads the store in the background
        proceed.set()
        tag, out = await asyncio.wait_for(session, 20)
    finally:
        await asyncio.to_thread(elsewhere.close)
    update = f'* ESEARCH (TAG "{tag}") UID'
    assert out[0] == [f"{update} ALL 1:3", "OK Search completed."]
    # UID 3 leaves before its EXPUNGE; UID 2 (now seen) and the new UID 4 after EXISTS,
    # in one line (the \\Recent count is unchanged: 3 lost, 4 claimed).
    assert out[1] == [
        f"{update} REMOVEFROM (0 3)",
        "* 3 EXPUNGE",
        "* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))",
        "* 3 EXISTS",
        f"{update} REMOVEFROM (0 2) ADDTO (0 4)",
        "OK NOOP completed.",
    ]


async def test_an_idling_session_is_pushed_the_update_for_mail_another_process_delivered(
    stack: ImapStack,
) -> None:
    await stack.store.append("alice", "INBOX", [NewMessage(message(1))])
    loop = asyncio.get_running_loop()
    idling = asyncio.Event()
    elsewhere = await asyncio.to_thread(stack.another_store)

    def work(a: Session, b: Session) -> tuple[str, list[str]]:
        a.run("SELECT INBOX")
        tag = next_tag(a)
        a.run("SEARCH RETURN (UPDATE) SUBJECT m2")
        a.idle()
        loop.call_soon_threadsafe(idling.set)
        return tag, [a.line(), a.line(), a.line(), *a.done()]

    session = asyncio.ensure_future(in_thread(stack, work))
    try:
        await asyncio.wait_for(idling.wait(), 10)
        await asyncio.sleep(0.1)  # the IDLE is registered before the change lands
        await elsewhere.append("alice", "INBOX", [NewMessage(message(2))])
        stack.store.hub.publish([ChangedElsewhere("alice", "INBOX")])
        tag, heard = await asyncio.wait_for(session, 20)
    finally:
        await asyncio.to_thread(elsewhere.close)
    assert heard == [
        "* 2 EXISTS", "* 2 RECENT", f'* ESEARCH (TAG "{tag}") ADDTO (0 2)', "OK Idle completed.",
    ]  # fmt: skip


# --- limits and CANCELUPDATE -------------------------------------------------------------------


async def test_an_eleventh_update_search_is_answered_without_updates(stack: ImapStack) -> None:
    """Dovecot keeps at most 10 UPDATE searches per session; the eleventh is answered
    with `* NO [NOUPDATE "tag"]` and its result, and is not followed."""

    def work(a: Session, b: Session) -> tuple[list[str], list[str], list[str]]:
        fill(a, "ctx", 1)
        a.run("SELECT ctx")
        tags = []
        for _ in range(10):
            tags.append(next_tag(a))
            a.run("SEARCH RETURN (UPDATE) SEEN")
        tags.append(next_tag(a))
        eleventh = a.run("SEARCH RETURN (UPDATE) SEEN")
        return tags, eleventh, a.run("STORE 1 +FLAGS.SILENT (\\Seen)")

    tags, eleventh, store = await in_thread(stack, work)
    assert eleventh == [
        f'* NO [NOUPDATE "{tags[10]}"] Too many UPDATE searches (at most 10)',
        f'* ESEARCH (TAG "{tags[10]}")',
        "OK Search completed.",
    ]
    assert store == [f'* ESEARCH (TAG "{tag}") ADDTO (0 1)' for tag in tags[:10]] + [
        "OK Store completed."
    ]


async def test_cancelupdate_names_tags_and_stops_at_an_unknown_one(stack: ImapStack) -> None:
    def work(a: Session, b: Session) -> list[list[str]]:
        out = [a.run('CANCELUPDATE "x"')]  # allowed before SELECT, as in Dovecot
        fill(a, "ctx", 1)
        a.run("SELECT ctx")
        tags = [next_tag(a)]
        a.run("SEARCH RETURN (UPDATE) SEEN")
        tags.append(next_tag(a))
        a.run("SEARCH RETURN (UPDATE) SEEN")
        out.append(a.run(f'CANCELUPDATE "{tags[0]}" "nosuch" "{tags[1]}"'))
        out.append(a.run(f'CANCELUPDATE "{tags[0]}"'))  # the first was cancelled
        out.append(a.run("CANCELUPDATE"))
        out.append(a.run(f"CANCELUPDATE {tags[1]}"))
        out.append(a.run("STORE 1 +FLAGS.SILENT (\\Seen)"))
        out.append(a.run(f'CANCELUPDATE "{tags[1]}"'))
        return out

    assert await in_thread(stack, work) == [
        ["NO Unknown tag."],
        ["NO Unknown tag."],
        ["NO Unknown tag."],
        ["BAD Error in IMAP command CANCELUPDATE: Invalid parameters."],
        ["BAD Error in IMAP command CANCELUPDATE: Invalid parameters."],
        ['* ESEARCH (TAG "A6") ADDTO (0 1)', "OK Store completed."],
        ["OK Updates cancelled."],
    ]


async def test_a_tag_already_following_updates_cannot_start_another(stack: ImapStack) -> None:
    def work(a: Session, b: Session) -> list[bytes]:
        fill(a, "ctx", 1)
        a.run("SELECT ctx")
        replies = []
        for _ in range(2):
            a.imap.send(b"same SEARCH RETURN (UPDATE) SEEN\r\n")
            while not (line := a.imap.readline()).startswith(b"same "):
                pass
            replies.append(line.rstrip())
        return replies

    assert await in_thread(stack, work) == [
        b"same OK Search completed.",
        b"same BAD Error in IMAP command SEARCH: Duplicate search update tag.",
    ]


async def test_selecting_again_forgets_the_update_searches(stack: ImapStack) -> None:
    def work(a: Session, b: Session) -> tuple[str, list[list[str]]]:
        fill(a, "ctx", 1)
        a.run("SELECT ctx")
        tag = next_tag(a)
        a.run("SEARCH RETURN (UPDATE) SEEN")
        a.run("SELECT ctx")
        return tag, [a.run("STORE 1 +FLAGS.SILENT (\\Seen)"), a.run(f'CANCELUPDATE "{tag}"')]

    _, out = await in_thread(stack, work)
    assert out == [["OK Store completed."], ["NO Unknown tag."]]


# --- what the view collects for the UPDATE searches -------------------------------------------


def test_a_view_collects_changed_and_new_uids_only_while_searches_are_followed() -> None:
    """Without an UPDATE search nothing is collected; with one, flag changes and new
    messages (by their records or a resync) are, and expunged messages are not."""
    infos = [MessageInfo(uid, 0, (), 10, 0, 0, 2, False) for uid in (1, 2)]
    view = MailboxView("INBOX", 7, False, infos, (), highestmodseq=2)
    view.on_change(FlagsChanged("alice", "INBOX", 7, (FlagChange(1, 0, F.SEEN, (), (), 3),)))
    assert view.search_changes is None
    view.follow_search_changes()
    view.on_change(FlagsChanged("alice", "INBOX", 7, (FlagChange(2, 0, F.SEEN, (), (), 4),)))
    view.on_change(MessagesExpunged("alice", "INBOX", 7, (1,), 5))
    view.on_change(FlagsChanged("alice", "INBOX", 7, (FlagChange(1, F.SEEN, 0, (), (), 6),)))
    new = MailboxChanges(7, 7, 4, (MessageInfo(3, 0, (), 10, 0, 0, 7, False),), ())
    view.on_resync(new)
    assert view.search_changes == {2, 3}
