"""Keeping a session's UPDATE searches current: the part that reads the store.

After the connection has written a change's FETCH, EXPUNGE and EXISTS lines,
`refresh_search_updates` runs each followed search (search_updates.py) again
on the messages that changed since the last time, through `search_matching`
(chunked store reads; header and body keys in the worker pool within the
user's heavy-command slots), and writes one `* ESEARCH ... REMOVEFROM/ADDTO`
line per search whose result changed. A search without flag, keyword or
MODSEQ keys looks only at new messages.
"""

from __future__ import annotations

import logging

from ..errors import StoreError
from .search_matching import match_messages
from .session import MailboxView
from .session_protocol import Session

__all__ = ["refresh_search_updates"]

log = logging.getLogger(__name__)


async def refresh_search_updates(conn: Session, view: MailboxView) -> None:
    """Run the followed searches again on what changed in `view`; write what they gained
    and lost. One refresh at a time per session."""
    updates = conn.search_updates
    async with updates.refreshing:
        changed = view.search_changes
        if not updates or not changed or conn.view is not view:
            return
        view.search_changes = set()
        visible: list[int] = []
        for uid in sorted(changed):
            if view.seq_of(uid) is not None:
                if not view.is_expunged(uid):
                    visible.append(uid)
            elif uid in view.flags:
                view.search_changes.add(uid)  # arrived but not announced yet: next time
        top = view.uids[-1] if view.uids else 0
        for search in updates.followed():
            candidates = visible
            if not search.program.reads_flags:
                candidates = [uid for uid in visible if uid > search.looked_up_to]
            search.looked_up_to = max(search.looked_up_to, top)
            if not candidates:
                continue
            try:
                matches = await match_messages(
                    conn, view, search.program, search.data, search.start, candidates,
                    search.numbering,
                )  # fmt: skip
            except StoreError:
                log.warning("following SEARCH %s in %s failed", search.tag, view.name,
                            exc_info=True)  # fmt: skip
                continue
            if not updates.is_followed(search) or conn.view is not view:
                continue  # cancelled, or the mailbox closed, meanwhile
            line = updates.record(search, view, candidates, {uid for _, uid in matches.pairs})
            if line is not None:
                conn.out.line(line)
