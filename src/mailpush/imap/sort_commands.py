"""SORT and UID SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO, RFC 5267 RETURN), and THREAD.

These compare what each matching message's headers say. The first SORT or
THREAD over a message reads its header block into `MessageFacts`, which the
server keeps (`sort_memory`: messages never change), so later ones read no
mail; ARRIVAL and SIZE alone never read any. Reading is the client's choice
of work, so it takes the path SEARCH takes (`message_commands._search`):
from the first message read to the end of the command it holds one of the
user's heavy-command slots, messages come from the store in chunks, and a
chunk's parsing goes to the worker pool (`sort_work`) once it is more than a
few milliseconds' work. Only header blocks cross to the pool, unless the
search program reads whole messages. The final ordering or threading of all
matches runs in the pool too when there are many.

The server also keeps the last order per sort program and the last answer
per thread algorithm of each mailbox (`sort_memory.MailboxMemory`, as
Dovecot keeps its sort and thread indexes): a SORT over messages already
ordered filters that order, a THREAD over the very same matches answers
what it answered before, and a search program of `ALL` alone is not run
message by message. A client re-sorting a large mailbox it sorted before
then costs a pass over its UIDs, on the loop, and a few new messages a
binary search each.

Non-UID SORT and THREAD answer with sequence numbers, so, like SEARCH, they
hold back pending EXPUNGE responses (Dovecot does the same).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

from ..mime.headers import find_body_start
from ..store import MessageInfo
from .command_errors import CommandFailedError
from .command_spec import Argument, CommandSpec, command
from .esearch import esearch_response, parse_return_options
from .heavy_work import INLINE_BYTES, INLINE_KEY_TESTS, SearchRow
from .message_commands import FETCH_CHUNK, SearchRequest
from .parser import CommandSyntaxError, Tokenizer
from .search import SUPPORTED_CHARSETS, UnsupportedCharsetError, parse_search
from .session import MailboxView
from .session_protocol import Session
from .sort_fields import (
    LIST_KEYS,
    SORT_KEYS,
    SortCriterion,
    SortValues,
    sort_values,
    thread_rows,
)
from .sort_memory import MailboxMemory
from .sort_work import (
    SortItem,
    ThreadAlgorithm,
    extend_order,
    order_messages,
    read_chunk,
    thread_messages,
)
from .states import SELECTED

__all__ = ["SORT_COMMANDS", "SortRequest", "ThreadRequest", "sort", "thread", "uid_sort",
           "uid_thread"]

T = TypeVar("T")

#: Messages ordered or threaded on the loop at most; more go to the pool (~10 ms of work).
INLINE_MESSAGES = 2_000
#: New messages put into a remembered order on the loop at most (~20 µs each); more: a sort.
EXTEND_AT_MOST = 200


@dataclass(frozen=True, slots=True)
class SortRequest:
    criteria: tuple[SortCriterion, ...]
    search: SearchRequest
    #: ESORT's RETURN options; None for a plain `* SORT` answer.
    returns: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ThreadRequest:
    algorithm: ThreadAlgorithm
    search: SearchRequest


async def sort(conn: Session, request: SortRequest) -> str:
    return await _sort(conn, request, by_uid=False)


async def uid_sort(conn: Session, request: SortRequest) -> str:
    return await _sort(conn, request, by_uid=True)


async def thread(conn: Session, request: ThreadRequest) -> str:
    return await _thread(conn, request, by_uid=False)


async def uid_thread(conn: Session, request: ThreadRequest) -> str:
    return await _thread(conn, request, by_uid=True)


async def _sort(conn: Session, request: SortRequest, by_uid: bool) -> str:
    criteria = request.criteria
    from_list = all(c.key in LIST_KEYS for c in criteria)
    view = conn.require_view()
    user = conn.require_user()
    memory = conn.sort_facts.mailbox(user, view.name, view.uidvalidity)
    async with AsyncExitStack() as stack:
        slot = _HeavySlot(conn, stack)
        matches, infos = await _matches(conn, slot, request.search, None if from_list else memory)
        matched = frozenset(uid for _, uid in matches)
        known = memory.order_of(criteria, matched)
        if known is not None and not known[1]:
            ordered = known[0]
        else:
            value_of = _sort_values(criteria, infos if from_list else None, memory)
            if known is not None and len(known[1]) <= EXTEND_AT_MOST:
                ordered = extend_order(criteria, known[0], value_of, known[1])
            else:
                # UIDs stand for the messages: in one view, UID order is sequence order.
                items: list[SortItem] = [(uid, value_of(uid)) for _, uid in matches]
                ordered = await _finish(conn, slot, len(items), order_messages, criteria, items)
            memory.remember_order(criteria, matched, ordered)
    _settle(conn, user, view, memory)
    if by_uid:
        numbers = ordered
    else:
        seqs = {uid: seq for seq, uid in matches}
        numbers = [seqs[uid] for uid in ordered]
    if request.returns is not None:
        conn.out.line(esearch_response(conn.tag, by_uid, numbers, request.returns))
    else:
        conn.out.line(" ".join(["* SORT", *map(str, numbers)]))
    return "OK Sort completed."


def _sort_values(
    criteria: tuple[SortCriterion, ...],
    infos: dict[int, MessageInfo] | None,
    memory: MailboxMemory,
) -> Callable[[int], SortValues]:
    """What gives a match's values for `criteria`, by UID: from the message list's `infos`
    when given (ARRIVAL and SIZE only), else from its facts."""
    if infos is not None:
        arrival = [c.key == "ARRIVAL" for c in criteria]
        values = {
            uid: tuple(info.internal_date if by_arrival else info.size for by_arrival in arrival)
            for uid, info in infos.items()
        }
        return values.__getitem__
    facts = memory.facts
    values_of = sort_values(criteria)
    return lambda uid: values_of(facts[uid])


async def _thread(conn: Session, request: ThreadRequest, by_uid: bool) -> str:
    view = conn.require_view()
    user = conn.require_user()
    memory = conn.sort_facts.mailbox(user, view.name, view.uidvalidity)
    async with AsyncExitStack() as stack:
        slot = _HeavySlot(conn, stack)
        matches, _ = await _matches(conn, slot, request.search, memory)
        uids = [uid for _, uid in matches]
        numbers = uids if by_uid else [seq for seq, _ in matches]
        key = (request.algorithm, by_uid)
        text = memory.thread_answer(key, uids, numbers)
        if text is None:
            rows = thread_rows(numbers, uids, memory.facts)
            text = await _finish(conn, slot, len(rows), thread_messages, request.algorithm, rows)
            memory.remember_thread(key, uids, numbers, text)
    _settle(conn, user, view, memory)
    conn.out.line("* THREAD" + (f" {text}" if text else ""))
    return "OK Thread completed."


async def _matches(
    conn: Session, slot: _HeavySlot, search: SearchRequest, memory: MailboxMemory | None
) -> tuple[list[tuple[int, int]], dict[int, MessageInfo]]:
    """(seq, uid) of every message the search matches, in sequence order, and what the
    store's message list says of them when asked (`memory` None, or a search that needs it).

    With `memory`, every match has its facts there afterwards: a message not
    there yet is read (its header block) once, and one expunged meanwhile is
    no match. A message is read whole only when the search program looks
    into it. A program of `ALL` alone is not run at all: only the messages
    without facts are read.
    """
    view = conn.require_view()
    user = conn.require_user()
    store = conn.store
    program = search.program
    facts = memory.facts if memory is not None else None
    candidates = [uid for uid in view.uids if not view.is_expunged(uid)]
    everything = facts is not None and _matches_everything(search)
    if everything:
        assert facts is not None
        candidates = [uid for uid in candidates if uid not in facts]
    max_seq, max_uid = view.exists, view.uids[-1] if view.uids else 0
    results: list[tuple[int, int]] = []
    infos: dict[int, MessageInfo] = {}
    for start in range(0, len(candidates), FETCH_CHUNK):
        chunk = candidates[start : start + FETCH_CHUNK]
        missing = [uid for uid in chunk if uid not in facts] if facts is not None else []
        info_uids = chunk if program.needs_info or facts is None else missing
        chunk_infos: dict[int, MessageInfo] = {}
        if info_uids:
            chunk_infos = {i.uid: i for i in await store.messages(user, view.name, info_uids)}
        raws: dict[int, bytes] = {}
        raw_uids = chunk if program.needs_raw else missing
        if raw_uids:
            await slot.take()  # reading mail is the client's choice of work
            raws = await store.raw_messages(user, view.name, raw_uids)
        rows: list[SearchRow] = []
        headers: dict[int, tuple[bytes, int, int]] = {}
        size = 0
        for uid in chunk:
            seq = view.seq_of(uid)
            raw = raws.get(uid)
            if seq is None:
                continue
            if facts is not None and uid not in facts:
                info = chunk_infos.get(uid)
                if raw is None or info is None:
                    continue  # expunged meanwhile
                header = raw[: find_body_start(raw)[0]]  # only the headers cross to the pool
                headers[uid] = (header, info.internal_date, info.size)
                size += len(header)
            if program.needs_raw:
                if raw is None:
                    continue
                size += len(raw)
            else:
                raw = None
            flags, keywords = view.flag_state(uid)
            rows.append((seq, uid, flags, keywords, uid in view.recent, chunk_infos.get(uid), raw))
        del raws
        arguments = (search.data, search.start, max_seq, max_uid, rows, headers)
        if size > INLINE_BYTES or len(rows) * program.keys > INLINE_KEY_TESTS:
            await slot.take()
            matches, new = await conn.heavy.run(read_chunk, *arguments)
        else:
            matches, new = read_chunk(*arguments)
        if facts is not None:
            facts.update(new)
        for seq, uid in matches:
            info = chunk_infos.get(uid)
            if facts is not None and uid not in facts:
                continue  # expunged meanwhile
            if facts is None and info is None:
                continue
            if info is not None:
                infos[uid] = info
            results.append((seq, uid))
        await asyncio.sleep(0)  # one chunk at a time: others run in between
    if everything:
        assert facts is not None
        results = [(seq, uid) for seq, uid in enumerate(view.uids, 1)
                   if uid in facts and not view.is_expunged(uid)]  # fmt: skip
    elif facts is not None:
        # Another command may have dropped facts of mail expunged meanwhile.
        results = [(seq, uid) for seq, uid in results if uid in facts]
    return results, infos


def _matches_everything(search: SearchRequest) -> bool:
    """Whether the search program is `ALL` alone (what clients sort and thread most)."""
    return search.data[search.start :].strip().upper() == b"ALL"


def _settle(conn: Session, user: str, view: MailboxView, memory: MailboxMemory) -> None:
    """Let the server's cache count what the command kept, and drop facts of expunged mail."""
    memory.forget_expunged(view.uids)
    conn.sort_facts.settle(user, view.name, view.uidvalidity, memory)


async def _finish(
    conn: Session, slot: _HeavySlot, count: int, function: Callable[..., T], *args: Any
) -> T:
    """`function(*args)` over all matches: in the pool when there are many."""
    if count <= INLINE_MESSAGES:
        return function(*args)
    await slot.take()
    return await conn.heavy.run(function, *args)


class _HeavySlot:
    """One of the user's heavy-command slots: taken when first needed, held to the command's end."""

    def __init__(self, conn: Session, stack: AsyncExitStack) -> None:
        self._conn = conn
        self._stack = stack
        self._held = False

    async def take(self) -> None:
        if not self._held:
            await self._stack.enter_async_context(self._conn.heavy.slot(self._conn.require_user()))
            self._held = True


# --- arguments -------------------------------------------------------------------------


def _charset_and_search(tokens: Tokenizer) -> SearchRequest:
    """`charset SP search-key...`, as SORT and THREAD write them (no CHARSET keyword)."""
    charset = tokens.astring().decode("ascii", "replace").upper()
    if charset not in SUPPORTED_CHARSETS:
        raise CommandFailedError("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
    if tokens.at_end():
        raise CommandSyntaxError("Missing search parameters")
    tokens.space()
    start = tokens.pos
    try:
        program = parse_search(tokens)
    except UnsupportedCharsetError:
        raise CommandFailedError("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset") from None
    return SearchRequest(program, tokens.data, start)


def _sort_criteria(tokens: Tokenizer) -> tuple[SortCriterion, ...]:
    """`(REVERSE DATE SUBJECT)`, with Dovecot's complaints about what does not fit."""
    if not tokens.open_paren():
        raise CommandSyntaxError("Invalid sort argument")
    if tokens.close_paren():
        raise CommandSyntaxError("Empty sort program")
    criteria: list[SortCriterion] = []
    reverse = False
    while True:
        name = tokens.atom("sort key").upper()
        if name == "REVERSE" and not reverse:
            reverse = True
        elif name in SORT_KEYS:
            criteria.append(SortCriterion(name, reverse))
            reverse = False
        else:
            raise CommandSyntaxError(f"Unknown sort argument: {name}")
        if tokens.close_paren():
            if reverse:
                raise CommandSyntaxError("Sort list ends with REVERSE")
            return tuple(criteria)
        tokens.space()


def _sort_request(tokens: Tokenizer, conn: Session) -> SortRequest:
    returns = parse_return_options(tokens)
    criteria = _sort_criteria(tokens)
    tokens.space()
    return SortRequest(criteria, _charset_and_search(tokens), returns)


def _thread_request(tokens: Tokenizer, conn: Session) -> ThreadRequest:
    name = tokens.atom("thread algorithm").upper()
    algorithm: ThreadAlgorithm
    if name == "REFERENCES":
        algorithm = "REFERENCES"
    elif name == "ORDEREDSUBJECT":
        algorithm = "ORDEREDSUBJECT"
    else:
        raise CommandSyntaxError("Unknown thread algorithm")
    tokens.space()
    return ThreadRequest(algorithm, _charset_and_search(tokens))


_SORT_REQUEST = Argument("sort-criteria charset search-key", _sort_request)
_THREAD_REQUEST = Argument("thread-alg charset search-key", _thread_request)

SORT_COMMANDS: tuple[CommandSpec, ...] = (
    command("SORT", SELECTED, sort, _SORT_REQUEST, needs_mailbox=True, sends_expunge=False),
    command("UID SORT", SELECTED, uid_sort, _SORT_REQUEST, needs_mailbox=True),
    command("THREAD", SELECTED, thread, _THREAD_REQUEST, needs_mailbox=True,
            sends_expunge=False),
    command("UID THREAD", SELECTED, uid_thread, _THREAD_REQUEST, needs_mailbox=True),
)  # fmt: skip
