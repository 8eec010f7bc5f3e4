"""Commands on the selected mailbox: FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, CLOSE...

Message sets are resolved against the session's view (sequence numbers as
the client knows them), then the store is asked by UID. Work on many
messages goes in chunks, each answered with one write, so a FETCH of a
100,000-message mailbox neither holds all bodies in memory nor blocks the
loop for long. SEARCH keys that read headers or bodies, and FETCH items that
parse a message, run in `heavy_work`'s pool while holding one of the user's
heavy-command slots.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from ..errors import MailboxNotFoundError, StoreFullError
from ..store import MessageInfo
from ..store import flags as F
from .connection import CommandFailedError, ImapConnection, store_error_text
from .fetch import FetchPlan, parse_fetch_items
from .heavy_work import (
    INLINE_BYTES,
    INLINE_KEY_TESTS,
    FetchRow,
    SearchRow,
    match_rows,
    render_fetch_rows,
    search_rows,
)
from .mailbox_commands import parse_store_flags
from .parser import Command, CommandSyntaxError
from .responses import FLUSH_THRESHOLD, format_flags
from .search import UnsupportedCharsetError, parse_search
from .sequence_set import InvalidSequenceSetError, SequenceSet, format_uid_ranges
from .session import MailboxView

__all__ = ["check", "close", "copy", "expunge", "fetch", "move", "search", "store", "unselect"]

#: Messages read from the store per round trip (raw bodies are the heavy part).
FETCH_CHUNK = 500
EXPUNGED_NOTICE = "NO [EXPUNGEISSUED] Some of the requested messages no longer exist."


async def check(conn: ImapConnection, command: Command) -> str:
    command.args.end()
    return "OK Check completed."


async def close(conn: ImapConnection, command: Command) -> str:
    command.args.end()
    view = conn.require_view()
    conn.unselect()  # CLOSE reports no EXPUNGE responses
    if not view.readonly:
        await conn.store.expunge(_user(conn), view.name)
    return "OK Close completed."


async def unselect(conn: ImapConnection, command: Command) -> str:
    command.args.end()
    conn.unselect()
    return "OK Unselect completed."


async def expunge(conn: ImapConnection, command: Command) -> str:
    view = conn.require_view()
    uids: list[int] | None = None
    if command.name == "UID EXPUNGE":
        command.args.space()
        wanted = command.args.sequence_set()
        uids = wanted.uids(view.uids)
    command.args.end()
    if view.readonly:
        raise CommandFailedError("[READ-ONLY] Mailbox is read-only.")
    if uids is None or uids:
        await conn.store.expunge(_user(conn), view.name, uids)
    return "OK Expunge completed."


async def search(conn: ImapConnection, command: Command) -> str:
    view = conn.require_view()
    by_uid = command.name.startswith("UID")
    command.args.space()
    program_start = command.args.pos
    try:
        program = parse_search(command.args)
    except UnsupportedCharsetError:
        raise CommandFailedError("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset") from None
    user = _user(conn)
    candidates = [uid for uid in view.uids if not view.is_expunged(uid)]
    infos: dict[int, MessageInfo] = {}
    if program.needs_info:
        infos = {i.uid: i for i in await conn.store.messages(user, view.name, candidates)}
    max_seq, max_uid = view.exists, view.uids[-1] if view.uids else 0
    found: list[int] = []
    heavy = conn.server.heavy
    async with AsyncExitStack() as held:
        holding_slot = False
        for start in range(0, len(candidates), FETCH_CHUNK):
            chunk = candidates[start : start + FETCH_CHUNK]
            raws: dict[int, bytes] = {}
            if program.needs_raw:
                # Header and body keys parse every message: within the user's slots.
                if not holding_slot:
                    await held.enter_async_context(heavy.slot(user))
                    holding_slot = True
                raws = await conn.store.raw_messages(user, view.name, chunk)
            size = sum(len(raw) for raw in raws.values())
            rows: list[SearchRow] = []
            for uid in chunk:
                seq = view.seq_of(uid)
                if seq is None:
                    continue
                flags, keywords = view.flag_state(uid)
                rows.append(
                    (seq, uid, flags, keywords, uid in view.recent, infos.get(uid),
                     raws.get(uid))
                )  # fmt: skip
            del raws
            # A 64 KB program holds thousands of keys: even without mail to parse,
            # keys x messages is the client's choice of work, so it goes to the pool too.
            if size > INLINE_BYTES or len(rows) * program.keys > INLINE_KEY_TESTS:
                if not holding_slot:
                    await held.enter_async_context(heavy.slot(user))
                    holding_slot = True
                matches = await heavy.run(
                    search_rows, command.args.data, program_start, max_seq, max_uid, rows
                )
            else:
                matches = match_rows(program, max_seq, max_uid, rows)
                await asyncio.sleep(0)  # one chunk at a time: others run in between
            found.extend(uid if by_uid else seq for seq, uid in matches)
    conn.out.line("* SEARCH" + "".join(f" {n}" for n in found))
    return "OK Search completed."


async def fetch(conn: ImapConnection, command: Command) -> str:
    view = conn.require_view()
    by_uid = command.name.startswith("UID")
    tokens = command.args
    tokens.space()
    numbers = tokens.sequence_set()
    tokens.space()
    plan = parse_fetch_items(tokens, by_uid)
    tokens.end()
    pairs = _resolve(view, numbers, by_uid)
    live = [(seq, uid) for seq, uid in pairs if not view.is_expunged(uid)]
    user = _user(conn)
    mailbox = view.name
    infos: dict[int, MessageInfo] = {}
    if plan.needs_info and live:
        wanted = [uid for _, uid in live]
        infos = {i.uid: i for i in await conn.store.messages(user, mailbox, wanted)}
    cache = conn.server.structures
    out = conn.out
    heavy = conn.server.heavy
    async with AsyncExitStack() as held:
        holding_slot = False
        for start in range(0, len(live), FETCH_CHUNK):
            chunk = live[start : start + FETCH_CHUNK]
            uids = [uid for _, uid in chunk]
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
            rows: list[FetchRow] = []
            for seq, uid in chunk:
                if plan.needs_raw and uid not in raws and uid not in structures:
                    continue  # expunged meanwhile
                if plan.needs_info and uid not in infos:
                    continue
                state = view.flag_state(uid)
                rows.append(
                    (seq, uid, state, uid in view.recent, infos.get(uid), raws.get(uid),
                     structures.get(uid), uid in seen_now)
                )  # fmt: skip
                if uid in seen_now:
                    view.reported_flags(uid, state)
            size = sum(len(raw) for raw in raws.values())
            del raws
            if plan.parses and size:
                # Parsing is the client's choice of work: in the pool, within its slots.
                if not holding_slot:
                    await held.enter_async_context(heavy.slot(user))
                    holding_slot = True
                lines, computed = await heavy.run_sized(size, render_fetch_rows, plan, rows)
                for uid, structure in computed.items():
                    cache.put((user, mailbox, view.uidvalidity, uid), structure)
            else:
                lines, _ = render_fetch_rows(plan, rows)
            del rows
            for line in lines:
                out.add(line)
                if out.size > FLUSH_THRESHOLD:
                    out.flush()
                    await conn.stream.drain()
    if len(live) < len(pairs):
        return EXPUNGED_NOTICE
    return "OK Fetch completed."


async def _mark_seen(
    conn: ImapConnection, plan: FetchPlan, view: MailboxView, uids: list[int]
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
            _user(conn), view.name, unseen, "add", F.SEEN,
            recent_uids=frozenset(view.recent.intersection(unseen)),
        )  # fmt: skip
    except StoreFullError:
        return set()
    return set(unseen)


async def store(conn: ImapConnection, command: Command) -> str:
    view = conn.require_view()
    by_uid = command.name.startswith("UID")
    tokens = command.args
    tokens.space()
    numbers = tokens.sequence_set()
    tokens.space()
    action = tokens.atom("store action").upper()
    silent = action.endswith(".SILENT")
    base = action.removesuffix(".SILENT")
    modes = {"FLAGS": "replace", "+FLAGS": "add", "-FLAGS": "remove"}
    if base not in modes:
        raise CommandSyntaxError(f"Invalid STORE action {action}")
    tokens.space()
    if tokens.peek_is(b"("):
        names = tokens.flag_list()
    else:
        names = [tokens.flag()]
        while tokens.skip_space():
            names.append(tokens.flag())
    tokens.end()
    flags, keywords = parse_store_flags(names)
    if view.readonly:
        raise CommandFailedError("[READ-ONLY] Mailbox is read-only.")
    pairs = _resolve(view, numbers, by_uid)
    live = [(seq, uid) for seq, uid in pairs if not view.is_expunged(uid)]
    if live:
        uids = [uid for _, uid in live]
        await conn.store.update_flags(
            _user(conn), view.name, uids, modes[base],  # type: ignore[arg-type]
            flags, keywords, recent_uids=frozenset(view.recent.intersection(uids)),
        )  # fmt: skip
    for seq, uid in live:
        state = view.flag_state(uid)
        view.reported_flags(uid, state)
        if silent:
            continue
        text = format_flags(state[0], state[1], uid in view.recent)
        prefix = f"UID {uid} " if by_uid else ""
        conn.out.line(f"* {seq} FETCH ({prefix}FLAGS {text})")
    if len(live) < len(pairs):
        return EXPUNGED_NOTICE
    return "OK Store completed."


async def copy(conn: ImapConnection, command: Command) -> str:
    return await _copy_or_move(conn, command, move=False)


async def move(conn: ImapConnection, command: Command) -> str:
    return await _copy_or_move(conn, command, move=True)


async def _copy_or_move(conn: ImapConnection, command: Command, move: bool) -> str:
    view = conn.require_view()
    by_uid = command.name.startswith("UID")
    tokens = command.args
    tokens.space()
    numbers = tokens.sequence_set()
    tokens.space()
    dest = tokens.mailbox()
    tokens.end()
    if move and view.readonly:
        raise CommandFailedError("[READ-ONLY] Mailbox is read-only.")
    uids = [uid for _, uid in _resolve(view, numbers, by_uid) if not view.is_expunged(uid)]
    verb = "Move" if move else "Copy"
    if not uids:
        return f"OK No messages found. {verb} completed."
    user = _user(conn)
    await conn.ensure_inbox(dest)
    try:
        if move:
            saved, _ = await conn.store.move(user, view.name, uids, dest)
        else:
            saved = await conn.store.copy(user, view.name, uids, dest)
    except MailboxNotFoundError as exc:
        raise CommandFailedError(store_error_text(exc, trycreate=True)) from None
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


def _user(conn: ImapConnection) -> str:
    assert conn.user is not None
    return conn.user
