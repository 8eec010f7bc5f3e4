"""In-process fan-out of committed changes, so IDLE is event-driven, not polled.

Subscribers are plain callbacks run on the event loop right after a commit;
they must be quick (typically: set an asyncio.Event or put into a queue).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .changes import Change

log = logging.getLogger(__name__)

Subscriber = Callable[[Change], None]


class ChangeHub:
    """Delivers every committed change to the subscribers of its user."""

    def __init__(self) -> None:
        self._by_user: dict[str, list[Subscriber]] = {}
        self._everything: list[Subscriber] = []
        self._settlers: list[Callable[[], bool]] = []

    def subscribe(self, callback: Subscriber, user: str | None = None) -> Callable[[], None]:
        """Register `callback` for one user's changes (or all); returns the unsubscriber."""
        bucket = self._everything if user is None else self._by_user.setdefault(user, [])
        bucket.append(callback)

        def unsubscribe() -> None:
            try:
                bucket.remove(callback)
            except ValueError:
                pass
            if user is not None and not bucket:
                self._by_user.pop(user, None)

        return unsubscribe

    def settle_with(self, settler: Callable[[], bool]) -> Callable[[], None]:
        """`settle` asks `settler` (a change feed's `settle`); returns the remover."""
        self._settlers.append(settler)

        def remove() -> None:
            if settler in self._settlers:
                self._settlers.remove(settler)

        return remove

    def settle(self) -> bool:
        """Publish, now, what other processes announced and this one has not yet heard.

        True if every change another process's client has seen answered is
        published here by now (see `feed_protocol.ChangeFeed.settle`); False
        when no feed can promise it, and a reader must ask the store."""
        if not self._settlers:
            return False
        settled = [settler() for settler in self._settlers]  # every feed drains
        return all(settled)

    def users(self) -> list[str]:
        """The users with a subscriber of their own (their IMAP sessions, in a server)."""
        return list(self._by_user)

    def publish(self, changes: Sequence[Change]) -> None:
        for change in changes:
            for callback in (*self._everything, *self._by_user.get(change.user, ())):
                try:
                    callback(change)
                except Exception:
                    log.exception("change subscriber failed")
