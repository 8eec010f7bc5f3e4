"""The change feed: how a commit made by one process reaches the others.

Every process that writes mail (the server, its workers, `mailpush deliver`,
admin commands, other nodes) announces "user U's mailbox M changed" after
it commits; every serving process hears the others' announcements and
publishes a `ChangedElsewhere` record into its own change hub, where IMAP
sessions (which then read what changed since the modseq they know) and the
push dispatcher (which then looks at the outbox) pick it up.

An announcement is a hint, never the data: it may be coalesced or, under
load, arrive late (an implementation's fallback check), and the reader
always goes to the store. So a backend only has to promise that a commit is
followed, soon, by at least one `ChangedElsewhere` for that user in every
other serving process, and that a process never hears its own
announcements (its own hub already had the exact records).

`ChangeFeed` names no backend: SQLite's is `feed_sqlite.DatagramChangeFeed`
(UNIX datagrams in the data directory); PostgreSQL's is LISTEN/NOTIFY.
`link_feed` is the glue between a feed and a hub, the same for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .change_hub import ChangeHub
from .changes import (
    Change,
    ChangedElsewhere,
    MailboxRenamed,
    TransactionRolledBack,
)

__all__ = [
    "ChangeFeed",
    "Heard",
    "Pending",
    "add_change",
    "changed_elsewhere",
    "changed_mailboxes",
    "describe_heard",
    "link_feed",
]

#: What a listening feed calls, on the event loop, with what it heard (coalesced).
Heard = Callable[[Sequence[ChangedElsewhere]], None]

#: Announcements to send or heard, coalesced: user to the mailboxes changed (None: any).
Pending = dict[str, set[str] | None]


class ChangeFeed(Protocol):
    """Announcing one's commits to the other processes, and hearing theirs."""

    async def listen(self, heard: Heard) -> None:
        """Start hearing other processes' announcements (a serving process does; a
        command that only writes does not). `heard` runs on the event loop."""
        ...

    def announce(self, user: str, mailbox: str | None) -> None:
        """Tell the other processes that `user`'s `mailbox` (None: any) changed.

        Called on the event loop right after a commit; never blocks it. An
        implementation may coalesce and send a moment later, but `close`
        sends whatever is still pending."""
        ...

    def settle(self) -> bool:
        """Hear, now, every announcement other processes sent this one so far.

        True if that is all of them: an announcement is sent before its writer
        answers the client whose change it was, so a change another process's
        client has seen answered is in this process's hub once `settle`
        returns. False if the feed cannot promise that (it does not listen,
        or its announcements travel over a connection that may hold them back:
        PostgreSQL's); a reader that must not miss a commit then reads the
        store."""
        ...

    async def close(self) -> None:
        """Send what is pending, stop hearing, remove what this process created."""
        ...


def link_feed(hub: ChangeHub, feed: ChangeFeed) -> Callable[[], None]:
    """Announce every change committed through `hub` on `feed`, and let `hub.settle`
    ask the feed for what it has not yet heard; returns the unlinker.

    `ChangedElsewhere` records are what the feed itself published: announcing
    them again would bounce every change between processes forever.
    """

    def on_change(change: Change) -> None:
        for mailbox in changed_mailboxes(change):
            feed.announce(change.user, mailbox)

    unsubscribe = hub.subscribe(on_change)
    unsettle = hub.settle_with(feed.settle)

    def unlink() -> None:
        unsubscribe()
        unsettle()

    return unlink


def changed_mailboxes(change: Change) -> tuple[str | None, ...]:
    """The mailboxes another process must look at after `change`; () for none."""
    if isinstance(change, ChangedElsewhere | TransactionRolledBack):
        # Heard from elsewhere (see link_feed), or nothing was changed at all.
        return ()
    if isinstance(change, MailboxRenamed):
        return (change.old, change.new)
    return (change.mailbox,)


def add_change(pending: Pending, user: str, mailboxes: Iterable[str] | None) -> None:
    """Merge "`user`'s `mailboxes` changed" into `pending`; None (any mailbox) absorbs
    every name, since the reader then looks at all of them anyway."""
    if mailboxes is None:
        pending[user] = None
        return
    known = pending.setdefault(user, set())
    if known is not None:
        known.update(mailboxes)


def changed_elsewhere(heard: Pending) -> list[ChangedElsewhere]:
    """The records a feed publishes for what it heard: one per mailbox, in name order."""
    return [
        ChangedElsewhere(user, mailbox)
        for user, mailboxes in heard.items()
        for mailbox in (sorted(mailboxes) if mailboxes is not None else (None,))
    ]


def describe_heard(records: Sequence[ChangedElsewhere]) -> str:
    """`user/mailbox` (`*` for any), comma-separated: the feeds' debug lines."""
    return ", ".join(
        f"{r.user}/{r.mailbox if r.mailbox is not None else '*'}" for r in records
    )
