"""SORT and UID SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO, RFC 5267 RETURN), and THREAD.

These compare what each matching message's headers say. The first SORT or
THREAD over a message reads its header block into `MessageFacts`, which the
server keeps (`sort_fields.FactsCache`: messages never change), so later
ones read no mail; ARRIVAL and SIZE alone never read any. Reading is the
client's choice of work, so it takes the path SEARCH takes
(`message_commands._search`): from the first message read to the end of
the command it holds one of the user's heavy-command slots, messages come
from the store in chunks, and a chunk's parsing goes to the worker pool
(`sort_work`) once it is more than a few milliseconds' work. Only header
blocks cross to the pool, unless the search program reads whole messages.
The final ordering or threading of all matches runs in the pool too when
there are many.

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
from .session_protocol import Session
from .sort_fields import (
    LIST_KEYS,
    SORT_KEYS,
    MessageFacts,
    SortCriterion,
    sort_values,
    thread_fields,
)
from .sort_work import SortItem, ThreadAlgorithm, order_messages, read_chunk, thread_messages
from .states import SELECTED
from .thread import ThreadFields

__all__ = ["SORT_COMMANDS", "SortRequest", "ThreadRequest", "sort", "thread", "uid_sort",
           "uid_thread"]

T = TypeVar("T")

#: Messages ordered or threaded on the loop at most; more go to the pool (~10 ms of work).
INLINE_MESSAGES = 2_000


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

    def item(seq: int, uid: int, facts: MessageFacts | None, info: MessageInfo | None
             ) -> SortItem | None:  # fmt: skip
        number = uid if by_uid else seq
        if facts is not None:
            return number, sort_values(criteria, facts)
        if info is None:
            return None  # expunged meanwhile
        return number, tuple(info.internal_date if c.key == "ARRIVAL" else info.size
                             for c in criteria)  # fmt: skip

    async with AsyncExitStack() as stack:
        slot = _HeavySlot(conn, stack)
        items = await _matches(conn, slot, request.search, not from_list, item)
        numbers = await _finish(conn, slot, len(items), order_messages, criteria, items)
    if request.returns is not None:
        conn.out.line(esearch_response(conn.tag, by_uid, numbers, request.returns))
    else:
        conn.out.line("* SORT" + "".join(f" {n}" for n in numbers))
    return "OK Sort completed."


async def _thread(conn: Session, request: ThreadRequest, by_uid: bool) -> str:
    def item(seq: int, uid: int, facts: MessageFacts | None, info: MessageInfo | None
             ) -> ThreadFields | None:  # fmt: skip
        return None if facts is None else thread_fields(uid if by_uid else seq, uid, facts)

    async with AsyncExitStack() as stack:
        slot = _HeavySlot(conn, stack)
        messages = await _matches(conn, slot, request.search, True, item)
        text = await _finish(
            conn, slot, len(messages), thread_messages, request.algorithm, messages
        )
    conn.out.line("* THREAD" + (f" {text}" if text else ""))
    return "OK Thread completed."


async def _matches(
    conn: Session,
    slot: _HeavySlot,
    search: SearchRequest,
    wants_facts: bool,
    item: Callable[[int, int, MessageFacts | None, MessageInfo | None], T | None],
) -> list[T]:
    """`item(seq, uid, facts, info)` of every message the search matches, in sequence order.

    Facts come from the server's cache; a message not in it is read (its
    header block) once. A message is read whole only when the search
    program looks into it.
    """
    view = conn.require_view()
    user = conn.require_user()
    store = conn.store
    cache = conn.sort_facts
    program = search.program
    candidates = [uid for uid in view.uids if not view.is_expunged(uid)]
    max_seq, max_uid = view.exists, view.uids[-1] if view.uids else 0
    results: list[T] = []
    for start in range(0, len(candidates), FETCH_CHUNK):
        chunk = candidates[start : start + FETCH_CHUNK]
        facts: dict[int, MessageFacts] = {}
        if wants_facts:
            for uid in chunk:
                cached = cache.get((user, view.name, view.uidvalidity, uid))
                if cached is not None:
                    facts[uid] = cached
        missing = [uid for uid in chunk if uid not in facts] if wants_facts else []
        info_uids = chunk if program.needs_info or not wants_facts else missing
        infos: dict[int, MessageInfo] = {}
        if info_uids:
            infos = {i.uid: i for i in await store.messages(user, view.name, info_uids)}
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
            if wants_facts and uid not in facts:
                info = infos.get(uid)
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
            rows.append((seq, uid, flags, keywords, uid in view.recent, infos.get(uid), raw))
        del raws
        arguments = (search.data, search.start, max_seq, max_uid, rows, headers)
        if size > INLINE_BYTES or len(rows) * program.keys > INLINE_KEY_TESTS:
            await slot.take()
            matches, new = await conn.heavy.run(read_chunk, *arguments)
        else:
            matches, new = read_chunk(*arguments)
        for uid, found in new.items():
            cache.put((user, view.name, view.uidvalidity, uid), found)
            facts[uid] = found
        for seq, uid in matches:
            made = item(seq, uid, facts.get(uid), infos.get(uid))
            if made is not None:
                results.append(made)
        await asyncio.sleep(0)  # one chunk at a time: others run in between
    return results


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
