"""The selected mailbox as one IMAP session sees it: sequence numbers, \\Recent, pending news.

A session's picture of the mailbox may lag the store: RFC 3501 forbids
renumbering messages behind the client's back, so a message expunged by
someone else stays at its sequence number until the session may say
`* n EXPUNGE`, and a new message gets a number only when `* n EXISTS` is
sent. The store's change hub feeds `on_change`; `take_updates` turns what
accumulated into the untagged responses the session may send now.

Until then such a message is *vanished*: the session still shows it, as
Dovecot 2.3.19 does. Its UID and flags stay here, so FETCH FLAGS answers
from them and STORE changes them here only (the store has nothing left to
change) and reports the result. `\\Recent` is counted the same way: the
`* n RECENT` a session last sent is kept, and a new one goes out whenever
the count changes (a recent message expunged, new ones claimed).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..store import (
    Change,
    FlagsChanged,
    MailboxChanges,
    MailboxDeleted,
    MailboxRenamed,
    MessageInfo,
    MessagesExpunged,
    MessagesSaved,
)
from ..store import flags as F
from ..store.base import FlagMode
from ..store.mailbox_names import is_inside

__all__ = ["MailboxView", "PendingUpdates"]

log = logging.getLogger(__name__)

FlagState = tuple[int, tuple[str, ...]]


@dataclass(slots=True)
class PendingUpdates:
    """What `take_updates` found to report, already numbered for the client."""

    #: Sequence numbers to report as `* n EXPUNGE`, in sending order.
    expunged: list[int] = field(default_factory=list)
    #: The same messages' UIDs, ascending (QRESYNC reports `* VANISHED uids` instead).
    expunged_uids: list[int] = field(default_factory=list)
    #: New message count for `* n EXISTS`, or None when nothing arrived.
    exists: int | None = None
    #: UIDs that newly became visible (their `\\Recent` is claimed by the caller).
    new_uids: list[int] = field(default_factory=list)
    #: (sequence number, uid, flags, keywords) for `* n FETCH (FLAGS ...)`.
    flags: list[tuple[int, int, int, tuple[str, ...]]] = field(default_factory=list)
    #: Keywords not seen before in this mailbox: `* FLAGS` must be re-sent.
    new_keywords: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.expunged or self.exists is not None or self.flags or self.new_keywords
        )


class MailboxView:
    """One session's numbering of the selected mailbox and the changes it has not yet shown."""

    def __init__(
        self,
        name: str,
        uidvalidity: int,
        readonly: bool,
        messages: Iterable[MessageInfo],
        keywords: Iterable[str],
        highestmodseq: int = 0,
    ) -> None:
        self.name = name
        self.uidvalidity = uidvalidity
        self.readonly = readonly
        self.uids: list[int] = []
        self.flags: dict[int, FlagState] = {}
        #: Each message's modseq as this session last heard it (FETCH MODSEQ, UNCHANGEDSINCE).
        self.modseqs: dict[int, int] = {}
        #: The highest modseq of the changes this view has taken in: a resync starts there.
        self.highestmodseq = highestmodseq
        #: QRESYNC: the highestmodseq the client last had every change up to (Dovecot's
        #: sync_last_full_modseq), and the highest MODSEQ sent in a FETCH since then.
        self.synced_modseq = highestmodseq
        self.fetched_modseq = 0
        self.keywords: dict[str, str] = {k.lower(): k for k in keywords}
        for info in messages:
            self.uids.append(info.uid)
            self.flags[info.uid] = (info.flags, info.keywords)
            self.modseqs[info.uid] = info.modseq
            for keyword in info.keywords:
                # The mailbox's keyword list may come from an earlier read than its
                # messages (another process stored a new one in between): the FLAGS
                # SELECT sends must still name every keyword a message carries.
                self.keywords.setdefault(keyword.lower(), keyword)
        self.recent: set[int] = set()
        #: The count in the last `* n RECENT` sent (SELECT sends the first).
        self.recent_reported = 0
        self.deleted = False
        #: A change record came past a commit this view has not read (`on_change`): the
        #: store must be read (`changes_since` the view's modseq) before it is shown.
        self.needs_read = False
        self._new: set[int] = set()
        self._expunged: set[int] = set()
        #: UIDs this view knew and saw expunged: a store read older than the expunge
        #: (`on_resync`) must not bring them back.
        self._gone: set[int] = set()
        self._flag_changes: set[int] = set()
        self._new_keywords = False
        #: Messages whose FETCH FLAGS this session itself just reported.
        self._already_reported: dict[int, FlagState] = {}
        #: UIDs whose flags changed or that arrived since the UPDATE searches last looked
        #: (search_updates.py); None while the session follows none.
        self.search_changes: set[int] | None = None

    # --- numbering ----------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        index = bisect.bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index + 1
        return None

    def uid_of(self, seq: int) -> int:
        return self.uids[seq - 1]

    def is_expunged(self, uid: int) -> bool:
        """Gone from the store but still numbered here until EXPUNGE is reported."""
        return uid in self._expunged

    @property
    def keyword_names(self) -> list[str]:
        return sorted(self.keywords.values(), key=str.lower)

    def known_spelling(self, keywords: tuple[str, ...]) -> tuple[str, ...]:
        """Keywords as this mailbox already spells them (`nil` stored where `NIL` exists)."""
        return tuple(self.keywords.get(k.lower(), k) for k in keywords)

    def follow_search_changes(self) -> None:
        """Start collecting `search_changes` (an UPDATE search is being made)."""
        if self.search_changes is None:
            self.search_changes = set()

    def take_new_keywords(self) -> bool:
        """Whether keywords appeared that `* FLAGS` has not announced yet (now it must)."""
        found, self._new_keywords = self._new_keywords, False
        return found

    def store_vanished(
        self, uid: int, mode: FlagMode, flags: int, keywords: tuple[str, ...]
    ) -> FlagState:
        """STORE on a vanished message: only this session's picture of it changes."""
        old_flags, old_keywords = self.flag_state(uid)
        state = F.apply_flag_change(mode, old_flags, old_keywords, flags, keywords)
        self.flags[uid] = state
        self._note_keywords(state[1])
        return state

    # --- changes from the hub ---------------------------------------------------------

    def on_change(self, change: Change) -> bool:
        """Note a committed change; True when it concerns this view (wake an IDLE).

        A record whose modseq is past the next one this view expects follows a
        commit of another process that the view has not read yet (each commit
        raises a mailbox's modseq by one). Taken now, it would number a UID
        before a lower one and move the watermark `changes_since` reads from past
        the missing commit, so it is left for that read: `needs_read`."""
        if isinstance(change, MessagesSaved | FlagsChanged | MessagesExpunged):
            if change.mailbox != self.name or change.uidvalidity != self.uidvalidity:
                return False
            if _record_modseq(change) > self.highestmodseq + 1:
                self.needs_read = True
                return True
        if isinstance(change, MessagesSaved):
            for saved in change.messages:
                if saved.uid not in self.flags:
                    self._new.add(saved.uid)
                    if self.search_changes is not None:
                        self.search_changes.add(saved.uid)
                    self.flags[saved.uid] = (saved.flags, saved.keywords)
                    self.modseqs[saved.uid] = saved.modseq
                    self._note_keywords(saved.keywords)
                self._saw_modseq(saved.modseq)
            return True
        if isinstance(change, FlagsChanged):
            for item in change.changes:
                if item.uid in self.flags and item.uid not in self._expunged:
                    self.flags[item.uid] = (item.new_flags, item.new_keywords)
                    self.modseqs[item.uid] = item.modseq
                    self._flag_changes.add(item.uid)
                    self._note_keywords(item.new_keywords)
                    if self.search_changes is not None:
                        self.search_changes.add(item.uid)
                self._saw_modseq(item.modseq)
            return True
        if isinstance(change, MessagesExpunged):
            for uid in change.uids:
                self._gone.add(uid)
                if uid in self._new:
                    self._new.discard(uid)
                    self.flags.pop(uid, None)
                    self.modseqs.pop(uid, None)
                elif uid in self.flags:
                    self._expunged.add(uid)
            self._saw_modseq(change.modseq)
            return True
        if isinstance(change, MailboxRenamed):
            if change.old == self.name:
                self.name = change.new
            elif is_inside(self.name, change.old):
                self.name = change.new + self.name[len(change.old) :]
            return False
        if isinstance(change, MailboxDeleted):
            if change.mailbox == self.name:
                self.deleted = True
                return True
        return False

    def on_resync(self, changes: MailboxChanges) -> bool:
        """Take in what the store says changed since `highestmodseq` (another process
        committed it, so no change records came); True when something is new to report.

        Only differences from this view count, so hearing of a change twice (its record
        and then the store) reports it once; and a read older than what the view heard
        since (a local change landing while the store was read) changes nothing.
        """
        self.needs_read = False
        if changes.uidvalidity != self.uidvalidity:
            self.deleted = True  # recreated elsewhere: this numbering means nothing now
            return True
        found = False
        for info in changes.messages:
            state = (info.flags, info.keywords)
            if info.uid in self._gone or info.modseq <= self.modseqs.get(info.uid, 0):
                continue
            if info.uid not in self.flags:
                self._new.add(info.uid)
                found = True
            elif self.flags[info.uid] != state and info.uid not in self._expunged:
                self._flag_changes.add(info.uid)
                found = True
            else:
                self.modseqs[info.uid] = info.modseq
                continue
            if self.search_changes is not None:
                self.search_changes.add(info.uid)
            self.flags[info.uid] = state
            self.modseqs[info.uid] = info.modseq
            self._note_keywords(info.keywords)
        for uid in changes.expunged:
            self._gone.add(uid)
            if uid in self._new:
                self._new.discard(uid)
                self.flags.pop(uid, None)
                self.modseqs.pop(uid, None)
                found = True
            elif uid in self.flags and uid not in self._expunged:
                self._expunged.add(uid)
                found = True
        self._saw_modseq(changes.highestmodseq)
        return found

    def fetched(self, modseq: int) -> None:
        """A FETCH response carried `MODSEQ (modseq)` (QRESYNC's HIGHESTMODSEQ logic)."""
        if modseq > self.fetched_modseq:
            self.fetched_modseq = modseq

    def qresync_highest(self, expunges_delayed: bool) -> int | None:
        """The HIGHESTMODSEQ a QRESYNC client must hear after a sync, if any (Dovecot's
        imap_sync_send_highestmodseq): the new highest when EXISTS or VANISHED raised it
        past what FETCH MODSEQs told; the pre-expunge one while expunges wait, so that a
        client keeping the highest MODSEQ it saw does not skip them."""
        send: int | None = None
        if expunges_delayed and self.fetched_modseq > self.synced_modseq:
            send = self.synced_modseq
        elif (
            not expunges_delayed
            and self.highestmodseq > self.synced_modseq
            and self.highestmodseq > self.fetched_modseq
        ):
            send = self.highestmodseq
        if not expunges_delayed:
            self.synced_modseq = self.highestmodseq
        self.fetched_modseq = 0
        return send

    def _saw_modseq(self, modseq: int) -> None:
        if modseq > self.highestmodseq:
            self.highestmodseq = modseq

    def _note_keywords(self, keywords: tuple[str, ...]) -> None:
        for keyword in keywords:
            if keyword.lower() not in self.keywords:
                self.keywords[keyword.lower()] = keyword
                self._new_keywords = True

    def reported_flags(self, uid: int, state: FlagState) -> None:
        """This session just sent `FETCH (FLAGS ...)` for `uid`: don't repeat it later."""
        self._already_reported[uid] = state

    @property
    def has_pending(self) -> bool:
        return bool(self._new or self._expunged or self._flag_changes or self._new_keywords)

    @property
    def has_pending_expunges(self) -> bool:
        return bool(self._expunged)

    def take_updates(self, allow_expunge: bool) -> PendingUpdates:
        """Renumber for what may be reported now and return it.

        Expunges go first (their numbers refer to the old numbering), then
        flag changes of surviving messages, then EXISTS for new messages: the
        order Dovecot sends them in.
        """
        out = PendingUpdates()
        if allow_expunge and self._expunged:
            gone = sorted(self._expunged)
            positions = [bisect.bisect_left(self.uids, uid) for uid in gone]
            out.expunged = [pos + 1 - k for k, pos in enumerate(positions)]
            out.expunged_uids = gone
            gone_set = self._expunged
            self.uids = [uid for uid in self.uids if uid not in gone_set]
            for uid in gone:
                self.flags.pop(uid, None)
                self.modseqs.pop(uid, None)
                self.recent.discard(uid)
                self._flag_changes.discard(uid)
            self._expunged = set()
        for uid in self._new:
            self._flag_changes.discard(uid)
        if self._flag_changes:
            # A vanished message's last change is reported too (Dovecot does).
            for uid in sorted(self._flag_changes):
                seq = self.seq_of(uid)
                state = self.flags.get(uid)
                if seq is None or state is None:
                    continue
                if self._already_reported.get(uid) == state:
                    continue
                out.flags.append((seq, uid, state[0], state[1]))
            self._flag_changes = set()
        self._already_reported.clear()
        if self._new:
            fresh = sorted(self._new)
            newest = self.uids[-1] if self.uids else 0
            if fresh[0] < newest:
                # Numbered messages keep their numbers (RFC 3501 2.3.1.2): one older than
                # the newest numbered (possible only if a commit was missed, which
                # `needs_read` prevents) is left out rather than slid in between.
                late = [uid for uid in fresh if uid < newest]
                log.warning(
                    "%s: UIDs %s came after UID %d was numbered; left out of this session",
                    self.name, late, newest,
                )
                for uid in late:
                    self.flags.pop(uid, None)
                    self.modseqs.pop(uid, None)
                fresh = fresh[len(late):]
            self.uids.extend(fresh)
            self._new = set()
            if fresh:
                out.exists = len(self.uids)
                out.new_uids = fresh
        if self._new_keywords:
            out.new_keywords = True
            self._new_keywords = False
        return out

    def modseq_of(self, uid: int) -> int:
        return self.modseqs.get(uid, 0)

    def flag_state(self, uid: int) -> FlagState:
        return self.flags.get(uid, (0, ()))

    def is_seen(self, uid: int) -> bool:
        return bool(self.flag_state(uid)[0] & F.SEEN)


def _record_modseq(change: MessagesSaved | FlagsChanged | MessagesExpunged) -> int:
    """The modseq the record's commit gave its mailbox (one per commit and mailbox)."""
    if isinstance(change, MessagesSaved):
        return change.messages[0].modseq if change.messages else 0
    if isinstance(change, FlagsChanged):
        return change.changes[0].modseq if change.changes else 0
    return change.modseq
