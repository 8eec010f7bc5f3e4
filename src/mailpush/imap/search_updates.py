"""SEARCH RETURN (UPDATE) (RFC 5267 §4.2): the searches a session follows, kept current.

A client that asked for UPDATE is told, whenever the selected mailbox
changes, which messages joined or left the result:
`* ESEARCH (TAG "a1") [UID] REMOVEFROM (0 set) ADDTO (0 set)`. This follows
Dovecot 2.3.19 (src/imap/imap-sync.c, imap-search.c and lib-storage's
index-search-result.c, checked against a running instance):

- The result is kept as UIDs. Sequence numbers in the program keep naming
  the messages they named when it ran (Dovecot turns them into UIDs then),
  so `2:*` does not grow with new mail.
- Messages whose flags changed are searched again only when the program has
  a flag, keyword or MODSEQ key; new messages are searched once, after the
  `* n EXISTS` that announces them. The program runs again only on those
  messages (`search_matching`, which puts header and body keys in the
  worker pool within the user's heavy-command slots), never on the mailbox.
- Expunged messages leave the result with a REMOVEFROM sent before their
  `* n EXPUNGE` (or VANISHED), numbered as the client still knows them;
  other changes are reported after the FETCH, EXISTS and RECENT lines of
  the same update. The position is always 0, as Dovecot writes it.
- A session follows at most `MAX_UPDATE_SEARCHES` (Dovecot's
  CLIENT_MAX_SEARCH_UPDATES); a further UPDATE search is answered with
  `* NO [NOUPDATE "tag"]` and its result, not followed. CANCELUPDATE stops
  following; closing or changing the selected mailbox forgets them all.

The view (`MailboxView.search_changes`) collects which UIDs changed; the
connection calls `expunged_lines` while it renumbers, and search_refresh.py's
`refresh_search_updates` after its other updates, in a command's answer or,
in IDLE and under NOTIFY, from a task of its own. This module keeps the
state only, so that the `Session` protocol can name it without a cycle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .esearch import format_number_list
from .search import SearchProgram
from .session import MailboxView

__all__ = ["MAX_UPDATE_SEARCHES", "FollowedSearch", "SearchUpdates", "noupdate_line"]

#: UPDATE searches one session may follow at once (Dovecot 2.3.19's limit).
MAX_UPDATE_SEARCHES = 10


@dataclass(slots=True, eq=False)
class FollowedSearch:
    """One UPDATE search: its program and the UIDs its client knows as the result
    (compared by identity: two searches may look alike)."""

    tag: str
    by_uid: bool
    program: SearchProgram
    #: The command's bytes and where the program starts in them (the pool parses it anew).
    data: bytes
    start: int
    matched: set[int]
    #: The UIDs the program's sequence numbers refer to (None when it has none).
    numbering: list[int] | None
    #: The highest UID the program has been run on: messages above it are new to it.
    looked_up_to: int


def noupdate_line(tag: str) -> str:
    """The refusal of an UPDATE search past the limit (RFC 5267 §4.2's NOUPDATE)."""
    return f'* NO [NOUPDATE "{tag}"] Too many UPDATE searches (at most {MAX_UPDATE_SEARCHES})'


class SearchUpdates:
    """The UPDATE searches of one session's selected mailbox, in the order they were made."""

    def __init__(self) -> None:
        self._searches: list[FollowedSearch] = []
        #: One refresh at a time: a command's and an IDLE push's must not interleave.
        self._refreshing = asyncio.Lock()

    def __bool__(self) -> bool:
        return bool(self._searches)

    @property
    def full(self) -> bool:
        return len(self._searches) >= MAX_UPDATE_SEARCHES

    def follows(self, tag: str) -> bool:
        return any(search.tag == tag for search in self._searches)

    def follow(self, search: FollowedSearch) -> None:
        self._searches.append(search)

    def cancel(self, tag: str) -> bool:
        """Stop following the search made under `tag`; False when none was."""
        for index, search in enumerate(self._searches):
            if search.tag == tag:
                del self._searches[index]
                return True
        return False

    def clear(self) -> None:
        self._searches.clear()

    def expunged_lines(self, uids: list[int], seqs: list[int]) -> list[str]:
        """REMOVEFROM lines for expunged messages (`uids` ascending, `seqs` their numbers
        before the expunge), to send before their `* n EXPUNGE`."""
        lines: list[str] = []
        for search in self._searches:
            matched = search.matched
            gone = [
                uid if search.by_uid else seq
                for uid, seq in zip(uids, seqs, strict=True)
                if uid in matched
            ]
            if not gone:
                continue
            matched.difference_update(uids)
            lines.append(_update_line(search, gone, []))
        return lines

    @property
    def refreshing(self) -> asyncio.Lock:
        """Held by a refresh (search_refresh.py): a command's and an IDLE push's must not
        interleave."""
        return self._refreshing

    def followed(self) -> list[FollowedSearch]:
        """The searches followed now (a copy: a refresh awaits between them)."""
        return list(self._searches)

    def is_followed(self, search: FollowedSearch) -> bool:
        return any(followed is search for followed in self._searches)

    def record(
        self, search: FollowedSearch, view: MailboxView, candidates: list[int], found: set[int]
    ) -> str | None:
        """Bring `search.matched` up to date for `candidates`, which the program was run on
        (`found`: those it matched); the line telling the client, if anything changed.

        Judged on the view as it is now, after the run's awaits: a message the client
        has meanwhile been told is expunged is left out."""
        added: list[int] = []
        removed: list[int] = []
        matched = search.matched
        for uid in candidates:
            seq = view.seq_of(uid)
            if seq is None:
                continue
            number = uid if search.by_uid else seq
            if uid in found and uid not in matched and not view.is_expunged(uid):
                matched.add(uid)
                added.append(number)
            elif uid not in found and uid in matched:
                matched.discard(uid)
                removed.append(number)
        if not added and not removed:
            return None
        return _update_line(search, removed, added)


def _update_line(search: FollowedSearch, removed: list[int], added: list[int]) -> str:
    parts = [f'* ESEARCH (TAG "{search.tag}")']
    if search.by_uid:
        parts.append("UID")
    if removed:
        parts.append(f"REMOVEFROM (0 {format_number_list(sorted(removed))})")
    if added:
        parts.append(f"ADDTO (0 {format_number_list(sorted(added))})")
    return " ".join(parts)
