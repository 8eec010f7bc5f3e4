"""Running a SEARCH program over some of the selected mailbox's messages, off the loop when costly.

SEARCH runs it over the whole mailbox, and an UPDATE search (RFC 5267,
`search_updates`) over the messages that changed since, so both go through
this one function: the store is read in chunks of `SEARCH_CHUNK` messages;
keys that read headers or bodies hold one of the user's heavy-command slots,
and a chunk goes to `heavy_work`'s pool when its mail is larger than
`INLINE_BYTES` or keys x messages exceed `INLINE_KEY_TESTS`. Smaller chunks
are matched on the loop, one at a time, yielding in between.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

from ..store import MessageInfo
from .heavy_work import INLINE_BYTES, INLINE_KEY_TESTS, SearchRow, match_rows, search_rows
from .search import SearchProgram
from .session import MailboxView
from .session_protocol import Session

__all__ = ["SEARCH_CHUNK", "SearchMatches", "match_messages"]

#: Messages read from the store per round trip (raw bodies are the heavy part).
SEARCH_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SearchMatches:
    """What a program matched: (sequence number, uid) pairs in UID order, and the
    message details read for it (a MODSEQ search reports their modseqs)."""

    pairs: list[tuple[int, int]]
    infos: dict[int, MessageInfo]
    #: Whether a candidate the program had to read was gone from the store (expunged by
    #: another process this session had not heard from): `OK [EXPUNGEISSUED]`.
    missing: bool = False


async def match_messages(
    conn: Session,
    view: MailboxView,
    program: SearchProgram,
    data: bytes,
    start: int,
    candidates: Sequence[int],
    numbering: Sequence[int] | None = None,
) -> SearchMatches:
    """The `candidates` (UIDs, ascending, numbered in `view`) that the program written at
    `data[start:]` matches.

    `numbering` is the UID list an UPDATE search's sequence numbers refer to (the
    mailbox as it was when the search first ran, as Dovecot turns them into UIDs then):
    a message it does not hold has number 0, which no sequence set names. The pairs
    returned carry the number the program saw.
    """
    user = conn.require_user()
    infos: dict[int, MessageInfo] = {}
    if program.needs_info and candidates:
        infos = {i.uid: i for i in await conn.store.messages(user, view.name, list(candidates))}
    max_seq = view.exists if numbering is None else len(numbering)
    max_uid = view.uids[-1] if view.uids else 0
    found: list[tuple[int, int]] = []
    missing = program.needs_info and len(infos) < len(candidates)
    heavy = conn.heavy
    async with AsyncExitStack() as held:
        holding_slot = False
        for first in range(0, len(candidates), SEARCH_CHUNK):
            chunk = list(candidates[first : first + SEARCH_CHUNK])
            raws: dict[int, bytes] = {}
            if program.needs_raw:
                # Header and body keys parse every message: within the user's slots.
                if not holding_slot:
                    await held.enter_async_context(heavy.slot(user))
                    holding_slot = True
                raws = await conn.store.raw_messages(user, view.name, chunk)
                missing = missing or len(raws) < len(chunk)
            size = sum(len(raw) for raw in raws.values())
            rows: list[SearchRow] = []
            for uid in chunk:
                seq = view.seq_of(uid)
                if seq is None:
                    continue
                if numbering is not None:
                    seq = _number_in(numbering, uid)
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
                found.extend(await heavy.run(search_rows, data, start, max_seq, max_uid, rows))
            else:
                found.extend(match_rows(program, max_seq, max_uid, rows))
                await asyncio.sleep(0)  # one chunk at a time: others run in between
    return SearchMatches(found, infos, missing)


def _number_in(numbering: Sequence[int], uid: int) -> int:
    index = bisect.bisect_left(numbering, uid)
    if index < len(numbering) and numbering[index] == uid:
        return index + 1
    return 0
