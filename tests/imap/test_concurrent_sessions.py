"""Two IMAP sessions on one mailbox get the answers Dovecot 2.3.19 gives.

Each test runs a script of `two_sessions` against mailpush and compares the
transcript with the one measured on Dovecot 2.3.19 (a fresh instance, as in
tests/dovecot/test_imap_concurrency_differential.py, which repeats the
comparison live). One difference is tolerated, and only for flag updates
caused by another session: mailpush writes `* 2 FETCH (UID 2 FLAGS ...)`
where Dovecot writes `* 2 FETCH (FLAGS ...)`.

Differences on purpose, each shown by its own test below: FETCH of a
message another session expunged answers RFC822.SIZE and BODYSTRUCTURE with
Dovecot's NIL forms (0, an empty text/plain) where Dovecot may still answer
from its index cache; and an implicit `\\Seen` on such a message is shown
once, at the end of its FETCH line, where Dovecot puts FLAGS first and
repeats it in an unsolicited FETCH.
"""

# ruff: noqa: E501  (the transcripts hold protocol lines verbatim)

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mailpush.store import NewMessage
from mailpush.store import flags as F

from .conftest import PASSWORD, ImapStack
from .two_sessions import SCRIPTS, Script, Session, expunged_by_b, message


def run_script(stack: ImapStack, steps: Callable[[Script], None]) -> Script:
    script = Script(lambda name: Session(stack.host, stack.port, "alice", PASSWORD, name))
    try:
        steps(script)
    finally:
        script.close()
    return script


async def transcript_of(stack: ImapStack, name: str) -> str:
    script = await asyncio.to_thread(run_script, stack, SCRIPTS[name])
    return script.render(uid_in_unsolicited_fetch=False)


async def test_store_changes_a_message_expunged_elsewhere_in_this_sessions_view_and_answers_ok(stack: ImapStack) -> None:
    """STORE on a set holding a message another session expunged: OK, a FETCH for every
    message of the set (the vanished one with its flags as this session now sees them),
    and the EXPUNGE with the new RECENT count at the next command that may send it."""
    assert await transcript_of(stack, "store_on_message_expunged_elsewhere") == DOVECOT["store_on_message_expunged_elsewhere"]


async def test_uid_store_leaves_a_message_expunged_elsewhere_out(stack: ImapStack) -> None:
    """UID STORE answers for the messages still in the store, then reports the expunge."""
    assert await transcript_of(stack, "uid_store_on_message_expunged_elsewhere") == DOVECOT["uid_store_on_message_expunged_elsewhere"]


async def test_fetch_answers_a_message_expunged_elsewhere_with_nil_forms(stack: ImapStack) -> None:
    """FETCH of a vanished message: FLAGS from the session's view, Dovecot's NIL forms for
    what the store no longer has, and `OK [EXPUNGEISSUED]` (not NO) as the tagged reply."""
    assert await transcript_of(stack, "fetch_of_message_expunged_elsewhere") == DOVECOT["fetch_of_message_expunged_elsewhere"]


async def test_search_and_copy_with_a_message_expunged_elsewhere(stack: ImapStack) -> None:
    """SEARCH still counts the vanished message where flags and numbers decide, leaves it out
    where its text would (`OK [EXPUNGEISSUED]`); COPY of a set holding it copies nothing."""
    assert await transcript_of(stack, "search_and_copy_with_message_expunged_elsewhere") == DOVECOT["search_and_copy_with_message_expunged_elsewhere"]


async def test_a_new_keyword_is_announced_before_the_fetch_that_shows_it(stack: ImapStack) -> None:
    """`* FLAGS` and PERMANENTFLAGS come before the first FETCH showing a new keyword, in the
    session that stored it and in the other one; `NIL` is a keyword, spelled as first stored."""
    assert await transcript_of(stack, "new_keyword_is_announced_before_use") == DOVECOT["new_keyword_is_announced_before_use"]


async def test_recent_belongs_to_one_session_and_is_reported_when_its_count_changes(stack: ImapStack) -> None:
    """A message is \\Recent in one session only; `* n RECENT` goes out when that session's
    count changes (new messages it claimed, a recent message expunged), never otherwise."""
    assert await transcript_of(stack, "recent_belongs_to_one_session") == DOVECOT["recent_belongs_to_one_session"]


async def test_a_read_only_session_shows_recent_it_cannot_claim(stack: ImapStack) -> None:
    """EXAMINE claims no \\Recent but shows it on messages no session has claimed yet, at
    selection and when they arrive; once a read-write session claims one, it is not."""
    assert await transcript_of(stack, "recent_in_a_read_only_session") == DOVECOT["recent_in_a_read_only_session"]


async def test_envelope_keeps_groups_and_routes_and_search_matches_parsed_addresses(stack: ImapStack) -> None:
    """ENVELOPE shows every group (start and end entries) and source routes; SEARCH FROM/TO/
    CC/BCC match the addresses as Dovecot writes them back, comments dropped."""
    assert await transcript_of(stack, "envelope_and_address_search") == DOVECOT["envelope_and_address_search"]


async def test_list_pattern_that_is_not_modified_utf7_matches_nothing(stack: ImapStack) -> None:
    """A pattern that is not valid modified UTF-7 matches no mailbox; LIST still answers OK."""
    assert await transcript_of(stack, "list_pattern_that_is_not_modified_utf7") == DOVECOT["list_pattern_that_is_not_modified_utf7"]



# --- differences on purpose, and what only mailpush can show -----------------------------


async def test_size_and_structure_of_a_message_expunged_elsewhere_are_nil_forms(
    stack: ImapStack,
) -> None:
    """The store keeps nothing of an expunged message: RFC822.SIZE, BODYSTRUCTURE and BODY
    get Dovecot's NIL forms (Dovecot answers these from its index cache when it has them)."""

    def steps(script: Script) -> None:
        expunged_by_b(script, "vanish")
        script("A", "FETCH 2 (RFC822.SIZE BODYSTRUCTURE BODY)")

    script = await asyncio.to_thread(run_script, stack, steps)

    assert script.exchanges[-1][2] == [
        '* 2 FETCH (RFC822.SIZE 0 BODYSTRUCTURE ("text" "plain" NIL NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
        ' BODY ("text" "plain" NIL NIL NIL "7bit" 0 0))',
        "* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))",
        "OK [EXPUNGEISSUED] Some messages were already expunged.",
    ]


async def test_implicit_seen_of_a_message_expunged_elsewhere_changes_only_this_sessions_view(
    stack: ImapStack,
) -> None:
    """FETCH BODY[] sets \\Seen: in the store for the messages it still has, in this
    session's view for the vanished one (shown once; Dovecot shows FLAGS first and again
    in an unsolicited FETCH)."""

    def steps(script: Script) -> None:
        expunged_by_b(script, "vanish")
        script("A", "FETCH 2:3 BODY[]")
        script("A", "FETCH 2 FLAGS")
        script("B", "FETCH 1:2 FLAGS")

    script = await asyncio.to_thread(run_script, stack, steps)

    assert script.transcript.endswith(
        "A: FETCH 2:3 BODY[]\n"
        "   * 2 FETCH (BODY[] NIL FLAGS (\\Deleted \\Seen \\Recent))\n"
        "   * 3 FETCH (BODY[] {44}\nFrom: a@example.org\nSubject: m3\n\nbody 3\n FLAGS (\\Seen \\Recent))\n"
        "   OK [EXPUNGEISSUED] Some messages were already expunged.\n"
        "A: FETCH 2 FLAGS\n"
        "   * 2 FETCH (FLAGS (\\Deleted \\Seen \\Recent))\n"
        "   OK Fetch completed.\n"
        "B: FETCH 1:2 FLAGS\n"
        "   * 1 FETCH (FLAGS ())\n"
        "   * 2 FETCH (FLAGS (\\Seen))\n"
        "   * 2 FETCH (UID 3 FLAGS (\\Seen))\n"
        "   OK Fetch completed.\n"
    )


async def test_idle_reports_recent_claimed_and_recent_expunged(stack: ImapStack) -> None:
    """In IDLE too: EXISTS then RECENT for a message this session claims, EXPUNGE then the
    lower RECENT count when another session takes a recent message away."""

    def steps() -> list[str]:
        script = Script(lambda name: Session(stack.host, stack.port, "alice", PASSWORD, name))
        try:
            script.fill("idling", 1)
            script.quietly("B", "CREATE elsewhere")
            script.quietly("A", "SELECT idling")
            script.quietly("B", "SELECT idling")
            idler = script.session("A")
            seen = [idler.idle()]
            script.quietly("C", "APPEND idling", message(2))
            seen += [idler.line(), idler.line()]
            script.quietly("B", "MOVE 1 elsewhere")
            seen += [idler.line(), idler.line()]
            return seen + idler.done()
        finally:
            script.close()

    seen = await asyncio.to_thread(steps)

    assert seen == [
        "+ idling", "* 2 EXISTS", "* 2 RECENT", "* 1 EXPUNGE", "* 1 RECENT", "OK Idle completed.",
    ]  # fmt: skip


#: Measured on Dovecot 2.3.19 with the same scripts.
DOVECOT = {
    "store_on_message_expunged_elsewhere": """\
B: STORE 2 +FLAGS.SILENT (\\Deleted)
   OK Store completed.
B: EXPUNGE
   * 2 EXPUNGE
   OK Expunge completed.
A: STORE 1:3 +FLAGS (\\Seen)
   * 1 FETCH (FLAGS (\\Seen \\Recent))
   * 2 FETCH (FLAGS (\\Deleted \\Seen \\Recent))
   * 3 FETCH (FLAGS (\\Seen \\Recent))
   OK Store completed.
A: STORE 2 +FLAGS.SILENT (\\Flagged)
   OK Store completed.
A: STORE 2 -FLAGS (\\Flagged)
   * 2 FETCH (FLAGS (\\Deleted \\Seen \\Recent))
   OK Store completed.
A: FETCH 1:3 FLAGS
   * 1 FETCH (FLAGS (\\Seen \\Recent))
   * 2 FETCH (FLAGS (\\Deleted \\Seen \\Recent))
   * 3 FETCH (FLAGS (\\Seen \\Recent))
   OK Fetch completed.
A: NOOP
   * 2 EXPUNGE
   * 2 RECENT
   OK NOOP completed.
""",
    "uid_store_on_message_expunged_elsewhere": """\
B: STORE 2 +FLAGS.SILENT (\\Deleted)
   OK Store completed.
B: EXPUNGE
   * 2 EXPUNGE
   OK Expunge completed.
A: UID STORE 1:3 +FLAGS (\\Seen)
   * 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))
   * 3 FETCH (UID 3 FLAGS (\\Seen \\Recent))
   * 2 EXPUNGE
   * 2 RECENT
   OK Store completed.
A: NOOP
   OK NOOP completed.
""",
    "fetch_of_message_expunged_elsewhere": """\
B: STORE 2 +FLAGS.SILENT (\\Deleted)
   OK Store completed.
B: EXPUNGE
   * 2 EXPUNGE
   OK Expunge completed.
A: FETCH 2 BODY.PEEK[]
   * 2 FETCH (BODY[] NIL)
   * 2 FETCH (FLAGS (\\Deleted \\Recent))
   OK [EXPUNGEISSUED] Some messages were already expunged.
A: FETCH 1:3 BODY.PEEK[TEXT]
   * 1 FETCH (BODY[TEXT] {8}
body 1
)
   * 2 FETCH (BODY[TEXT] NIL)
   * 3 FETCH (BODY[TEXT] {8}
body 3
)
   OK [EXPUNGEISSUED] Some messages were already expunged.
A: FETCH 2 (FLAGS INTERNALDATE ENVELOPE)
   * 2 FETCH (FLAGS (\\Deleted \\Recent) INTERNALDATE "01-Jan-1970 00:00:00 +0000" ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))
   OK [EXPUNGEISSUED] Some messages were already expunged.
A: FETCH 2 RFC822.HEADER
   * 2 FETCH (RFC822.HEADER NIL)
   OK [EXPUNGEISSUED] Some messages were already expunged.
A: UID FETCH 2 FLAGS
   * 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))
   * 2 EXPUNGE
   * 2 RECENT
   OK Fetch completed.
A: NOOP
   OK NOOP completed.
""",
    "search_and_copy_with_message_expunged_elsewhere": """\
B: STORE 2 +FLAGS.SILENT (\\Deleted)
   OK Store completed.
B: EXPUNGE
   * 2 EXPUNGE
   OK Expunge completed.
A: SEARCH ALL
   * SEARCH 1 2 3
   * 2 FETCH (FLAGS (\\Deleted \\Recent))
   OK Search completed.
A: SEARCH DELETED
   * SEARCH 2
   OK Search completed.
A: SEARCH SUBJECT m
   * SEARCH 1 3
   OK [EXPUNGEISSUED] Search completed.
A: COPY 2:3 copies
   * 2 EXPUNGE
   * 2 RECENT
   NO [EXPUNGEISSUED] Some of the requested messages no longer exist.
A: STATUS copies (MESSAGES)
   * STATUS copies (MESSAGES 0)
   OK Status completed.
A: COPY 2 copies
   OK [COPYUID V 3 1] Copy completed.
A: STATUS copies (MESSAGES)
   * STATUS copies (MESSAGES 1)
   OK Status completed.
""",
    "new_keyword_is_announced_before_use": """\
A: STORE 1 +FLAGS ($Kw1)
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1)
   * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1 \\*)] Flags permitted.
   * 1 FETCH (FLAGS (\\Recent $Kw1))
   OK Store completed.
A: STORE 1 +FLAGS.SILENT ($Kw2)
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1 $Kw2)
   * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1 $Kw2 \\*)] Flags permitted.
   OK Store completed.
A: STORE 1:2 +FLAGS (NIL)
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1 $Kw2 NIL)
   * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1 $Kw2 NIL \\*)] Flags permitted.
   * 1 FETCH (FLAGS (\\Recent $Kw1 $Kw2 NIL))
   * 2 FETCH (FLAGS (\\Recent NIL))
   OK Store completed.
A: STORE 2 FLAGS (\\Seen nil)
   * 2 FETCH (FLAGS (\\Seen \\Recent NIL))
   OK Store completed.
B: FETCH 1:2 FLAGS
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1 $Kw2 NIL)
   * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Kw1 $Kw2 NIL \\*)] Flags permitted.
   * 1 FETCH (FLAGS ($Kw1 $Kw2 NIL))
   * 2 FETCH (FLAGS (\\Seen NIL))
   * 1 FETCH (FLAGS ($Kw1 $Kw2 NIL))
   * 2 FETCH (FLAGS (\\Seen NIL))
   OK Fetch completed.
B: NOOP
   OK NOOP completed.
""",
    "recent_belongs_to_one_session": """\
A: SELECT fresh
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
   * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.
   * 1 EXISTS
   * 1 RECENT
   * OK [UNSEEN 1] First unseen.
   * OK [UIDVALIDITY V] UIDs valid
   * OK [UIDNEXT 2] Predicted next UID
   OK [READ-WRITE] Select completed.
B: SELECT fresh
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
   * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.
   * 1 EXISTS
   * 0 RECENT
   * OK [UNSEEN 1] First unseen.
   * OK [UIDVALIDITY V] UIDs valid
   * OK [UIDNEXT 2] Predicted next UID
   OK [READ-WRITE] Select completed.
B: APPEND fresh
   * 2 EXISTS
   * 1 RECENT
   OK [APPENDUID V 2] Append completed.
A: NOOP
   * 2 EXISTS
   OK NOOP completed.
B: NOOP
   OK NOOP completed.
C: APPEND fresh
   OK [APPENDUID V 3] Append completed.
A: NOOP
   * 3 EXISTS
   * 2 RECENT
   OK NOOP completed.
B: NOOP
   * 3 EXISTS
   OK NOOP completed.
A: FETCH 1:* FLAGS
   * 1 FETCH (FLAGS (\\Recent))
   * 2 FETCH (FLAGS ())
   * 3 FETCH (FLAGS (\\Recent))
   OK Fetch completed.
B: SEARCH RECENT
   * SEARCH 2
   OK Search completed.
B: STORE 2 +FLAGS.SILENT (\\Deleted)
   OK Store completed.
B: EXPUNGE
   * 2 EXPUNGE
   * 0 RECENT
   OK Expunge completed.
A: NOOP
   * 2 EXPUNGE
   OK NOOP completed.
A: STORE 1 +FLAGS.SILENT (\\Deleted)
   OK Store completed.
A: EXPUNGE
   * 1 EXPUNGE
   * 1 RECENT
   OK Expunge completed.
B: NOOP
   * 1 EXPUNGE
   OK NOOP completed.
""",
    "recent_in_a_read_only_session": """\
A: EXAMINE watched
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
   * OK [PERMANENTFLAGS ()] Read-only mailbox.
   * 1 EXISTS
   * 1 RECENT
   * OK [UNSEEN 1] First unseen.
   * OK [UIDVALIDITY V] UIDs valid
   * OK [UIDNEXT 2] Predicted next UID
   OK [READ-ONLY] Examine completed.
C: APPEND watched
   OK [APPENDUID V 2] Append completed.
A: NOOP
   * 2 EXISTS
   * 2 RECENT
   OK NOOP completed.
B: SELECT watched
   * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
   * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.
   * 2 EXISTS
   * 2 RECENT
   * OK [UNSEEN 1] First unseen.
   * OK [UIDVALIDITY V] UIDs valid
   * OK [UIDNEXT 3] Predicted next UID
   OK [READ-WRITE] Select completed.
C: APPEND watched
   OK [APPENDUID V 3] Append completed.
B: NOOP
   * 3 EXISTS
   * 3 RECENT
   OK NOOP completed.
A: NOOP
   * 3 EXISTS
   OK NOOP completed.
A: FETCH 1:* FLAGS
   * 1 FETCH (FLAGS (\\Recent))
   * 2 FETCH (FLAGS (\\Recent))
   * 3 FETCH (FLAGS ())
   OK Fetch completed.
A: SEARCH RECENT
   * SEARCH 1 2
   OK Search completed.
""",
    "envelope_and_address_search": """\
A: FETCH 1 ENVELOPE
   * 1 FETCH (ENVELOPE (NIL "env" ((NIL NIL "user-from" "domain.org")) ((NIL NIL "user-from" "domain.org")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) ((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) (("Route" "@r1.example,@r2.example" "user" "domain.org")("Quoted Name" NIL "q" "x.org")(NIL NIL "user" "MISSING_DOMAIN")("Real" NIL "x" "y")) NIL NIL))
   OK Fetch completed.
A: SEARCH FROM user-from@domain.org
   * SEARCH 1
   OK Search completed.
A: SEARCH FROM comment
   * SEARCH
   OK Search completed.
A: SEARCH TO group2
   * SEARCH 1
   OK Search completed.
A: SEARCH TO "group: <g1@d1.org>, <g2"
   * SEARCH 1
   OK Search completed.
A: SEARCH TO ": g1"
   * SEARCH
   OK Search completed.
A: SEARCH CC "group:;, group2:;"
   * SEARCH 1
   OK Search completed.
A: SEARCH BCC "Route <@r1.example,@r2.example:user@domain.org>"
   * SEARCH 1
   OK Search completed.
A: SEARCH BCC "\\"Quoted Name\\" <q@x.org>"
   * SEARCH 1
   OK Search completed.
A: SEARCH BCC user@MISSING_DOMAIN
   * SEARCH 1
   OK Search completed.
A: SEARCH BCC "Real <x@y>"
   * SEARCH 1
   OK Search completed.
""",
    "list_pattern_that_is_not_modified_utf7": """\
A: LIST "" "&"
   OK List completed.
A: LIST "" "&Jjo"
   OK List completed.
A: LIST "" "foo&-"
   OK List completed.
A: LIST "" "&AGE-"
   OK List completed.
A: LIST "" "*&"
   OK List completed.
A: LIST "" "%&x"
   OK List completed.
A: LIST "" "&Jjo-*"
   OK List completed.
A: LIST "&" "*"
   OK List completed.
A: LSUB "" "&"
   OK Lsub completed.
""",
}


async def test_a_keyword_another_session_adds_while_a_fetch_reads_is_announced_before_it_shows(
    stack: ImapStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FETCH reads bodies chunk by chunk; a keyword new to the mailbox that another
    session stores meanwhile is in the flags this FETCH shows, so `* FLAGS` goes first
    (imaptest: "Keyword used without being in FLAGS: $Label3")."""
    await stack.store.append("alice", "INBOX", [NewMessage(message(1)), NewMessage(message(2))])
    read_bodies = stack.store.raw_messages
    stored: list[bool] = []

    async def meanwhile(user: str, mailbox: str, uids: list[int]) -> dict[int, bytes]:
        if not stored:
            stored.append(True)
            await stack.store.update_flags("alice", "INBOX", [2], "add", 0, ["$Meanwhile"])
        return await read_bodies(user, mailbox, uids)

    monkeypatch.setattr(stack.store, "raw_messages", meanwhile)
    session = await asyncio.to_thread(Session, stack.host, stack.port, "alice", PASSWORD, "a")
    try:
        await asyncio.to_thread(session.run, "SELECT INBOX")
        lines = await asyncio.to_thread(session.run, "FETCH 1:2 (FLAGS BODY.PEEK[HEADER])")
    finally:
        await asyncio.to_thread(session.imap.logout)

    shown = next(i for i, line in enumerate(lines) if "FETCH" in line and "$Meanwhile" in line)
    announced = [i for i, line in enumerate(lines) if line.startswith("* FLAGS") and "$Meanwhile" in line]
    assert stored and announced and announced[0] < shown, lines


async def after_an_unheard_expunge(stack: ImapStack, *commands: str) -> list[list[str]]:
    """Messages 1 and 2 in INBOX, selected; another process (a store of its own, whose
    commits this session hears of only by reading) expunges 2; then `commands`' replies."""
    await stack.store.append("alice", "INBOX", [NewMessage(message(1)), NewMessage(message(2))])
    elsewhere = await asyncio.to_thread(stack.another_store)
    session = await asyncio.to_thread(Session, stack.host, stack.port, "alice", PASSWORD, "a")
    try:
        await asyncio.to_thread(session.run, "SELECT INBOX")
        await elsewhere.update_flags("alice", "INBOX", [2], "add", F.DELETED)
        await elsewhere.expunge("alice", "INBOX")
        return [await asyncio.to_thread(session.run, command) for command in commands]
    finally:
        await asyncio.to_thread(session.imap.logout)
        await asyncio.to_thread(elsewhere.close)


async def test_copy_of_a_message_another_process_expunged_unheard_is_expungeissued(
    stack: ImapStack,
) -> None:
    """The session has not heard of the expunge yet, so it names the message; the store
    finds it gone: `NO [EXPUNGEISSUED]` and nothing copied, as when the session knew
    (imaptest with two workers got `NO [SERVERBUG]` here)."""
    await stack.store.create_mailbox("alice", "copies")

    [lines] = await after_an_unheard_expunge(stack, "COPY 1:2 copies")

    assert lines[-1] == "NO [EXPUNGEISSUED] Some of the requested messages no longer exist."
    assert await stack.store.messages("alice", "copies") == []


async def test_search_reading_a_message_another_process_expunged_unheard_is_expungeissued(
    stack: ImapStack,
) -> None:
    """As when the session knew of the expunge: a key that reads the message cannot
    match it, and the answer says why with `OK [EXPUNGEISSUED]` (imaptest: "SEARCH result
    missing seq 10"); keys the view answers alone still count it."""
    by_text, by_size = await after_an_unheard_expunge(
        stack, "SEARCH SUBJECT m", "SEARCH LARGER 1"
    )

    assert by_text[-1] == "OK [EXPUNGEISSUED] Search completed."
    assert "* SEARCH 1" in by_text
    assert by_size[-1] == "OK [EXPUNGEISSUED] Search completed."
