"""Commands on the selected mailbox: FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, CLOSE...

Message sets are resolved against the session's view (sequence numbers as
the client knows them), then the store is asked by UID. Work on many
messages goes in chunks, each answered with one write, so a FETCH of a
100,000-message mailbox neither holds all bodies in memory nor blocks the
loop for long. SEARCH keys that read headers or bodies, and FETCH items that
parse a message, run in `heavy_work`'s pool while holding one of the user's
heavy-command slots. `MESSAGE_COMMANDS` declares them; the UID forms share
the handlers' bodies.

A message another session expunged stays in this session's numbering until
`* n EXPUNGE` may be sent (see `session`); commands treat it as Dovecot
2.3.19 does. FETCH answers FLAGS and UID from the view and Dovecot's NIL
forms for what the store no longer has, then `OK [EXPUNGEISSUED]`; STORE
changes the view's flags only and answers OK (UID STORE leaves it out); SEARCH matches it on flags
and numbers (keys that need the message leave it out, `OK [EXPUNGEISSUED]`);
COPY and MOVE copy nothing and answer `NO [EXPUNGEISSUED]`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Literal

from ..errors import MailboxNotFoundError, MessageNotFoundError, StoreError, StoreFullError
from ..store import MessageInfo
from ..store import flags as F
from .binary_fetch import UNKNOWN_CTE_REPLY, UnknownCteError
from .command_arguments import FLAGS, MAILBOX_OR_EMPTY, SEQUENCE_SET
from .command_errors import CommandFailedError, store_error_text
from .command_spec import Argument, CommandSpec, command, optional
from .condstore import FetchModifiers, parse_fetch_modifiers, parse_store_modifiers
from .esearch import esearch_response
from .fetch import FetchPlan, parse_fetch_items, with_modseq
from .heavy_work import FetchRow, render_fetch_rows
from .mailbox_commands import parse_store_flags
from .parser import CommandSyntaxError, Tokenizer
from .responses import FLUSH_THRESHOLD, format_flags
from .search import SearchProgram, UnsupportedCharsetError, parse_search
from .search_context import parse_search_returns
from .search_matching import match_messages
from .search_updates import FollowedSearch, noupdate_line
from .sequence_set import (
    InvalidSequenceSetError,
    SequenceSet,
    format_uid_ranges,
    parse_sequence_set,
)
from .session import MailboxView
from .session_protocol import Session
from .states import SELECTED

__all__ = [
    "MESSAGE_COMMANDS", "SearchRequest", "StoreAction", "check", "close", "copy", "expunge",
    "fetch", "fetch_new_messages", "move", "search", "store", "uid_copy", "uid_expunge",
    "uid_fetch", "uid_move", "uid_search", "uid_store", "unselect",
]  # fmt: skip

#: Messages read from the store per round trip (raw bodies are the heavy part).
FETCH_CHUNK = 500
#: COPY/MOVE of a set holding a message another session expunged (Dovecot's words).
EXPUNGED_NOTICE = "NO [EXPUNGEISSUED] Some of the requested messages no longer exist."
#: FETCH that answered part of a message with NIL forms because it was expunged.
FETCH_LOST_NOTICE = "OK [EXPUNGEISSUED] Some messages were already expunged."
#: The flag state of a message the view has no flags for (as `MailboxView.flag_state`).
_NO_FLAGS: tuple[int, tuple[str, ...]] = (0, ())


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A parsed SEARCH program, with the command it came from: the worker pool parses it anew."""

    program: SearchProgram
    data: bytes
    start: int
    #: ESEARCH's RETURN options (RFC 4731); None for a plain `* SEARCH` answer.
    returns: frozenset[str] | None = None
    #: CONTEXT=SEARCH (RFC 5267): `RETURN (PARTIAL m:n)` and `RETURN (UPDATE)`.
    partial: tuple[int, int] | None = None
    update: bool = False


@dataclass(frozen=True, slots=True)
class StoreAction:
    """STORE's `[+|-]FLAGS[.SILENT]`."""

    mode: Literal["replace", "add", "remove"]
    silent: bool
    #: STORE (UNCHANGEDSINCE n): leave alone what changed after modseq n (CONDSTORE).
    unchanged_since: int | None = None


async def check(conn: Session) -> str:
    return "OK Check completed."


async def close(conn: Session) -> str:
    view = conn.require_view()
    conn.unselect()  # CLOSE reports no EXPUNGE responses
    if not view.readonly:
        await conn.store.expunge(conn.require_user(), view.name)
    return "OK Close completed."


async def unselect(conn: Session) -> str:
    conn.unselect()
    return "OK Unselect completed."


async def expunge(conn: Session) -> str:
    return await _expunge(conn, None)


async def uid_expunge(conn: Session, numbers: SequenceSet) -> str:
    return await _expunge(conn, numbers)


async def _expunge(conn: Session, numbers: SequenceSet | None) -> str:
    view = conn.require_view()
    uids = None if numbers is None else numbers.uids(view.uids)
    if view.readonly:
        raise CommandFailedError("[READ-ONLY] Mailbox is read-only.")
    if uids is None or uids:
        await conn.store.expunge(conn.require_user(), view.name, uids)
    return "OK Expunge completed."


async def search(conn: Session, request: SearchRequest) -> str:
    return await _search(conn, request, by_uid=False)


async def uid_search(conn: Session, request: SearchRequest) -> str:
    return await _search(conn, request, by_uid=True)


async def _search(conn: Session, request: SearchRequest, by_uid: bool) -> str:
    view = conn.require_view()
    program = request.program
    if program.uses_modseq:
        conn.enable_condstore()
    follow = request.update
    if follow and conn.search_updates.full:
        conn.out.line(noupdate_line(conn.tag))  # answered, but not followed (Dovecot)
        follow = False
    if follow:
        view.follow_search_changes()  # what changes while this runs is looked at again
    reads_store = program.needs_info or program.needs_raw
    candidates = view.uids
    lost = False
    if reads_store and view.has_pending_expunges:
        candidates = [uid for uid in view.uids if not view.is_expunged(uid)]
        lost = len(candidates) < len(view.uids)
    numbering = list(view.uids) if follow and program.uses_seq else None
    looked_up_to = view.uids[-1] if view.uids else 0
    matches = await match_messages(conn, view, program, request.data, request.start, candidates)
    lost = lost or matches.missing
    found = [uid if by_uid else seq for seq, uid in matches.pairs]
    #: Each match's modseq, which a MODSEQ search reports the highest of (RFC 7162 §3.1.5).
    modseqs: dict[int, int] = {}
    if program.uses_modseq:
        infos = matches.infos
        for seq, uid in matches.pairs:
            if uid in infos:
                modseqs[uid if by_uid else seq] = infos[uid].modseq
    if follow:
        conn.search_updates.follow(
            FollowedSearch(
                conn.tag, by_uid, program, request.data, request.start,
                {uid for _, uid in matches.pairs}, numbering, looked_up_to,
            )
        )  # fmt: skip
    if request.returns is not None:
        conn.out.line(
            esearch_response(
                conn.tag, by_uid, found, request.returns, modseqs, request.partial,
                request.update,
            )
        )  # fmt: skip
    else:
        highest = max(modseqs.values(), default=0)
        modseq = f" (MODSEQ {highest})" if highest else ""
        conn.out.line("* SEARCH" + "".join(f" {n}" for n in found) + modseq)
    return "OK [EXPUNGEISSUED] Search completed." if lost else "OK Search completed."


async def fetch(
    conn: Session, numbers: SequenceSet, plan: FetchPlan, modifiers: FetchModifiers | None
) -> str:
    return await _fetch(conn, numbers, plan, modifiers, by_uid=False)


async def uid_fetch(
    conn: Session, numbers: SequenceSet, plan: FetchPlan, modifiers: FetchModifiers | None
) -> str:
    return await _fetch(conn, numbers, plan, modifiers, by_uid=True)


async def _fetch(
    conn: Session,
    numbers: SequenceSet,
    plan: FetchPlan,
    modifiers: FetchModifiers | None,
    by_uid: bool,
) -> str:
    view = conn.require_view()
    pairs = _resolve(view, numbers, by_uid)
    user = conn.require_user()
    if modifiers is not None:
        if modifiers.vanished and not by_uid:
            raise CommandSyntaxError("Unknown FETCH modifier")  # Dovecot's words
        if modifiers.vanished and not conn.qresync:
            raise CommandSyntaxError("QRESYNC not enabled")
        if modifiers.vanished and modifiers.changed_since is None:
            raise CommandSyntaxError("VANISHED used without CHANGEDSINCE")
    if plan.has_modseq or (modifiers is not None and modifiers.changed_since is not None):
        conn.enable_condstore()
    if modifiers is not None and modifiers.changed_since is not None:
        since = modifiers.changed_since
        plan = with_modseq(plan)
        if modifiers.vanished:
            await _report_vanished_earlier(conn, view, numbers, since)
        pairs = [(seq, uid) for seq, uid in pairs if view.modseq_of(uid) > since]
    mailbox = view.name
    infos: dict[int, MessageInfo] = {}
    if plan.needs_info and pairs:
        wanted = [uid for _, uid in pairs if not view.is_expunged(uid)]
        infos = {i.uid: i for i in await conn.store.messages(user, mailbox, wanted)}
    cache = conn.structures
    out = conn.out
    heavy = conn.heavy
    if view.take_new_keywords():
        conn.write_flags_lines(view)  # before any FETCH FLAGS shows a new keyword
    lost = False
    # Looked up once, not per message: a FETCH 1:* spends ~2 µs on each message.
    reports_modseq = plan.has_modseq
    flag_states = view.flags
    modseqs = view.modseqs
    #: Messages the implicit \Seen changed: under CONDSTORE their new MODSEQ follows.
    seen_by_fetch: list[tuple[int, int]] = []
    async with AsyncExitStack() as held:
        holding_slot = False
        for start in range(0, len(pairs), FETCH_CHUNK):
            chunk = pairs[start : start + FETCH_CHUNK]
            uids = [uid for _, uid in chunk if not view.is_expunged(uid)]
            structures: dict[int, tuple[bytes, bytes, bytes]] = {}
            raws: dict[int, bytes] = {}
            if plan.needs_raw:
                missing = uids
                if plan.structure_only:
                    for uid in uids:
                        hit = cache.get((user, mailbox, view.uidvalidity, uid))
                        if hit is not None:
                            structures[uid] = hit
                    missing = [uid for uid in uids if uid not in structures]
                if missing:
                    raws = await conn.store.raw_messages(user, mailbox, missing)
            seen_now = await _mark_seen(conn, plan, view, uids)
            if plan.sets_seen and not view.readonly and len(uids) < len(chunk):
                seen_now |= _mark_vanished_seen(view, chunk)
            rows: list[FetchRow] = []
            for seq, uid in chunk:
                # Expunged by another session (or meanwhile): Dovecot's NIL forms.
                if (plan.needs_raw and uid not in raws and uid not in structures) or (
                    plan.needs_info and uid not in infos
                ):
                    lost = True
                state = flag_states.get(uid, _NO_FLAGS)
                modseq = modseqs.get(uid, 0)
                if reports_modseq:
                    view.fetched(modseq)
                rows.append(
                    (seq, uid, state, uid in view.recent, infos.get(uid), raws.get(uid),
                     structures.get(uid), uid in seen_now, modseq)
                )  # fmt: skip
                if uid in seen_now:
                    view.reported_flags(uid, state)
                    if conn.condstore and not view.is_expunged(uid):
                        seen_by_fetch.append((seq, uid))
            size = sum(len(raw) for raw in raws.values())
            del raws
            try:
                if plan.parses and size:
                    # Parsing is the client's choice of work: in the pool, within its slots.
                    if not holding_slot:
                        await held.enter_async_context(heavy.slot(user))
                        holding_slot = True
                    lines, computed = await heavy.run_sized(
                        size, render_fetch_rows, plan, rows
                    )
                    for uid, structure in computed.items():
                        cache.put((user, mailbox, view.uidvalidity, uid), structure)
                else:
                    lines, _ = render_fetch_rows(plan, rows)
            except UnknownCteError as exc:
                for line in exc.answered:  # what was rendered before, as Dovecot sends it
                    out.add(line)
                raise CommandFailedError(UNKNOWN_CTE_REPLY) from None
            del rows
            if view.take_new_keywords():
                # Another session's keyword came in while this chunk was read: its
                # FLAGS may show it, and a keyword is announced before its first use.
                conn.write_flags_lines(view)
            for line in lines:
                out.add(line)
                if out.size > FLUSH_THRESHOLD:
                    out.flush()
                    await conn.drain()
    for seq, uid in seen_by_fetch:
        # Dovecot's sync after the FETCH: FLAGS went out already, the new MODSEQ not.
        modseq = view.modseq_of(uid)
        view.fetched(modseq)
        prefix = f"UID {uid} " if conn.qresync or by_uid else ""
        out.line(f"* {seq} FETCH ({prefix}MODSEQ ({modseq}))")
    return FETCH_LOST_NOTICE if lost else "OK Fetch completed."


async def fetch_new_messages(conn: Session, plan: FetchPlan, uids: list[int]) -> None:
    """NOTIFY's `MessageNew (fetch-att)`: the new messages' FETCH, right after their
    EXISTS, as a UID FETCH of them would answer (a failure only ends the answer)."""
    if conn.view is None or not uids:
        return
    try:
        await _fetch(conn, parse_sequence_set(format_uid_ranges(uids)), plan, None, by_uid=True)
    except (CommandFailedError, CommandSyntaxError, StoreError):
        pass  # the messages went meanwhile, or the store failed: EXISTS was said


async def _report_vanished_earlier(
    conn: Session, view: MailboxView, numbers: SequenceSet, since: int
) -> None:
    """UID FETCH ... (CHANGEDSINCE n VANISHED): the UIDs of the set expunged since n."""
    changes = await conn.store.changes_since(conn.require_user(), view.name, since)
    top = view.uids[-1] if view.uids else 0
    gone = [uid for uid in changes.expunged if numbers.contains_uid(uid, top)]
    if gone:
        conn.out.line(f"* VANISHED (EARLIER) {format_uid_ranges(gone)}")


async def _mark_seen(
    conn: Session, plan: FetchPlan, view: MailboxView, uids: list[int]
) -> set[int]:
    """Set the implicit `\\Seen` of a FETCH; the UIDs that got it now.

    On a full disk the flag stays unset and the FETCH still answers, as reads
    must keep working when nothing can be written.
    """
    if not plan.sets_seen or view.readonly:
        return set()
    unseen = [uid for uid in uids if not view.is_seen(uid)]
    if not unseen:
        return set()
    try:
        # The implicit \Seen is a flag change like STORE's: same store call, same record.
        await conn.store.update_flags(
            conn.require_user(), view.name, unseen, "add", F.SEEN,
            recent_uids=frozenset(view.recent.intersection(unseen)),
        )  # fmt: skip
    except StoreFullError:
        return set()
    return set(unseen)


def _mark_vanished_seen(view: MailboxView, chunk: list[tuple[int, int]]) -> set[int]:
    """The implicit `\\Seen` on messages another session expunged: in the view only."""
    marked = set()
    for _, uid in chunk:
        if view.is_expunged(uid) and not view.is_seen(uid):
            view.store_vanished(uid, "add", F.SEEN, ())
            marked.add(uid)
    return marked


async def store(
    conn: Session, numbers: SequenceSet, action: StoreAction, names: list[str]
) -> str:
    return await _store(conn, numbers, action, names, by_uid=False)


async def uid_store(
    conn: Session, numbers: SequenceSet, action: StoreAction, names: list[str]
) -> str:
    return await _store(conn, numbers, action, names, by_uid=True)


async def _store(
    conn: Session, numbers: SequenceSet, action: StoreAction, names: list[str], by_uid: bool
) -> str:
    view = conn.require_view()
    flags, keywords = parse_store_flags(names)
    keywords = view.known_spelling(keywords)
    if view.readonly:
        raise CommandFailedError("[READ-ONLY] Mailbox is read-only.")
    if action.unchanged_since is not None:
        conn.enable_condstore()
    pairs = _resolve(view, numbers, by_uid)
    if by_uid:
        # UID STORE leaves a vanished message out (Dovecot); STORE changes the view's copy.
        pairs = [(seq, uid) for seq, uid in pairs if not view.is_expunged(uid)]
    modified: list[int] = []
    if action.unchanged_since is not None:
        # RFC 7162 §3.1.3: a message changed after the client's modseq is left alone
        # and named in [MODIFIED]. Judged first on this session's view, then again by
        # the store inside the write, so a change committed in between is kept too.
        limit = action.unchanged_since
        kept = [(seq, uid) for seq, uid in pairs if view.modseq_of(uid) <= limit]
        modified = [uid if by_uid else seq for seq, uid in pairs if view.modseq_of(uid) > limit]
        pairs = kept
    before = {uid: view.modseq_of(uid) for _, uid in pairs} if conn.condstore else {}
    uids = [uid for _, uid in pairs if not view.is_expunged(uid)]
    some_expunged = len(uids) < len(pairs)
    if uids:
        result = await conn.store.update_flags(
            conn.require_user(), view.name, uids, action.mode,
            flags, keywords, recent_uids=frozenset(view.recent.intersection(uids)),
            unchanged_since=action.unchanged_since,
        )  # fmt: skip
        if result.modified:
            changed_meanwhile = set(result.modified)
            modified += [uid if by_uid else seq for seq, uid in pairs if uid in changed_meanwhile]
            modified.sort()
            pairs = [(seq, uid) for seq, uid in pairs if uid not in changed_meanwhile]
    if some_expunged:
        for _, uid in pairs:
            if view.is_expunged(uid):
                view.store_vanished(uid, action.mode, flags, keywords)
    if view.take_new_keywords():
        conn.write_flags_lines(view)  # a new keyword is announced before its first use
    # NOTIFY without FlagChange for the selected mailbox: Dovecot, which answers STORE
    # through its sync, then says nothing, not even to the STORE itself.
    quiet = conn.notify is not None and not conn.notify.flag_changes
    for seq, uid in pairs:
        state = view.flag_state(uid)
        view.reported_flags(uid, state)
        if quiet:
            continue
        prefix = f"UID {uid} " if by_uid or conn.qresync else ""
        if conn.condstore:
            # Dovecot reports only the messages the STORE changed, with their new
            # MODSEQ, even for .SILENT (RFC 7162 §3.2.3).
            modseq = view.modseq_of(uid)
            if modseq == before.get(uid):
                continue
            view.fetched(modseq)
            if action.silent:
                conn.out.line(f"* {seq} FETCH ({prefix}MODSEQ ({modseq}))")
                continue
            text = format_flags(state[0], state[1], uid in view.recent)
            conn.out.line(f"* {seq} FETCH ({prefix}MODSEQ ({modseq}) FLAGS {text})")
            continue
        if action.silent:
            continue
        text = format_flags(state[0], state[1], uid in view.recent)
        conn.out.line(f"* {seq} FETCH ({prefix}FLAGS {text})")
    if modified:
        return f"OK [MODIFIED {format_uid_ranges(modified)}] Conditional store failed."
    return "OK Store completed."


async def copy(conn: Session, numbers: SequenceSet, dest: str) -> str:
    return await _copy_or_move(conn, numbers, dest, move=False, by_uid=False)


async def uid_copy(conn: Session, numbers: SequenceSet, dest: str) -> str:
    return await _copy_or_move(conn, numbers, dest, move=False, by_uid=True)


async def move(conn: Session, numbers: SequenceSet, dest: str) -> str:
    return await _copy_or_move(conn, numbers, dest, move=True, by_uid=False)


async def uid_move(conn: Session, numbers: SequenceSet, dest: str) -> str:
    return await _copy_or_move(conn, numbers, dest, move=True, by_uid=True)


async def _copy_or_move(
    conn: Session, numbers: SequenceSet, dest: str, *, move: bool, by_uid: bool
) -> str:
    view = conn.require_view()
    if move and view.readonly:
        raise CommandFailedError("[READ-ONLY] Mailbox is read-only.")
    uids = [uid for _, uid in _resolve(view, numbers, by_uid)]
    if any(view.is_expunged(uid) for uid in uids):
        return EXPUNGED_NOTICE  # all or nothing, as Dovecot
    verb = "Move" if move else "Copy"
    if not uids:
        return f"OK No messages found. {verb} completed."
    user = conn.require_user()
    await conn.ensure_inbox(dest)
    try:
        if move:
            saved, _ = await conn.store.move(user, view.name, uids, dest)
        else:
            saved = await conn.store.copy(user, view.name, uids, dest)
    except MailboxNotFoundError as exc:
        raise CommandFailedError(store_error_text(exc, trycreate=True)) from None
    except MessageNotFoundError:
        return EXPUNGED_NOTICE  # expunged elsewhere after this session numbered them
    sources = format_uid_ranges([m.source_uid or 0 for m in saved.messages])
    targets = format_uid_ranges([m.uid for m in saved.messages])
    code = f"COPYUID {saved.uidvalidity} {sources} {targets}"
    if move:
        conn.out.line(f"* OK [{code}] Moved UIDs.")
        return "OK Move completed."
    return f"OK [{code}] Copy completed."


def _resolve(view: MailboxView, numbers: SequenceSet, by_uid: bool) -> list[tuple[int, int]]:
    """(sequence number, uid) pairs named by a message set, in ascending order."""
    if numbers.saved:
        return []
    if by_uid:
        out = []
        for uid in numbers.uids(view.uids):
            seq = view.seq_of(uid)
            if seq is not None:
                out.append((seq, uid))
        return out
    try:
        seqs = numbers.numbers(view.exists)
    except InvalidSequenceSetError as exc:
        raise CommandSyntaxError(str(exc)) from None
    uids = view.uids
    return [(seq, uids[seq - 1]) for seq in seqs]



# --- arguments -------------------------------------------------------------------------


def _search_request(tokens: Tokenizer, conn: Session) -> SearchRequest:
    returns = parse_search_returns(tokens, conn.search_updates.follows(conn.tag))
    start = tokens.pos
    try:
        program = parse_search(tokens)
    except UnsupportedCharsetError:
        raise CommandFailedError("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset") from None
    if returns is None:
        return SearchRequest(program, tokens.data, start)
    return SearchRequest(
        program, tokens.data, start, returns.options, returns.partial, returns.update
    )


def _fetch_items(tokens: Tokenizer, conn: Session) -> FetchPlan:
    return parse_fetch_items(tokens, False)


def _uid_fetch_items(tokens: Tokenizer, conn: Session) -> FetchPlan:
    return parse_fetch_items(tokens, True)


_STORE_ACTIONS = {
    "FLAGS": StoreAction("replace", silent=False),
    "FLAGS.SILENT": StoreAction("replace", silent=True),
    "+FLAGS": StoreAction("add", silent=False),
    "+FLAGS.SILENT": StoreAction("add", silent=True),
    "-FLAGS": StoreAction("remove", silent=False),
    "-FLAGS.SILENT": StoreAction("remove", silent=True),
}


def _store_action(tokens: Tokenizer, conn: Session) -> StoreAction:
    """`[(UNCHANGEDSINCE n) ][+|-]FLAGS[.SILENT]`: the modifier list is read here too."""
    unchanged_since = None
    if tokens.peek_is(b"("):
        unchanged_since = parse_store_modifiers(tokens)
        tokens.space()
    action = tokens.atom("store action").upper()
    found = _STORE_ACTIONS.get(action)
    if found is None:
        raise CommandSyntaxError(f"Invalid STORE action {action}")
    if unchanged_since is not None:
        return replace(found, unchanged_since=unchanged_since)
    return found


_SEARCH_PROGRAM = Argument("search-program", _search_request)
_FETCH_ITEMS = Argument("fetch-att", _fetch_items)
_FETCH_MODIFIERS = optional(
    Argument("fetch-modifiers", lambda tokens, conn: parse_fetch_modifiers(tokens))
)
_UID_FETCH_ITEMS = Argument("fetch-att", _uid_fetch_items)
_STORE_ACTION = Argument("store-att-flags", _store_action)

#: Every command here but CLOSE, CHECK and UNSELECT wants the selected mailbox to
#: still exist before its arguments are read. FETCH, STORE and SEARCH leave pending
#: EXPUNGEs for later; their UID forms need not (RFC 3501 §7.4.1).
MESSAGE_COMMANDS: tuple[CommandSpec, ...] = (
    command("CHECK", SELECTED, check),
    command("CLOSE", SELECTED, close),
    command("UNSELECT", SELECTED, unselect),
    command("EXPUNGE", SELECTED, expunge, needs_mailbox=True),
    command("UID EXPUNGE", SELECTED, uid_expunge, SEQUENCE_SET, needs_mailbox=True),
    command("SEARCH", SELECTED, search, _SEARCH_PROGRAM, needs_mailbox=True,
            sends_expunge=False),
    command("UID SEARCH", SELECTED, uid_search, _SEARCH_PROGRAM, needs_mailbox=True),
    command("FETCH", SELECTED, fetch, SEQUENCE_SET, _FETCH_ITEMS, _FETCH_MODIFIERS,
            needs_mailbox=True, sends_expunge=False),
    command("UID FETCH", SELECTED, uid_fetch, SEQUENCE_SET, _UID_FETCH_ITEMS, _FETCH_MODIFIERS,
            needs_mailbox=True),
    command("STORE", SELECTED, store, SEQUENCE_SET, _STORE_ACTION, FLAGS, needs_mailbox=True,
            sends_expunge=False),
    command("UID STORE", SELECTED, uid_store, SEQUENCE_SET, _STORE_ACTION, FLAGS,
            needs_mailbox=True),
    command("COPY", SELECTED, copy, SEQUENCE_SET, MAILBOX_OR_EMPTY, needs_mailbox=True),
    command("UID COPY", SELECTED, uid_copy, SEQUENCE_SET, MAILBOX_OR_EMPTY, needs_mailbox=True),
    command("MOVE", SELECTED, move, SEQUENCE_SET, MAILBOX_OR_EMPTY, needs_mailbox=True),
    command("UID MOVE", SELECTED, uid_move, SEQUENCE_SET, MAILBOX_OR_EMPTY, needs_mailbox=True),
)  # fmt: skip
