"""The change feed for PostgreSQL: LISTEN/NOTIFY on one channel, which reaches every node.

Every serving process (every node, every worker) keeps one connection of its
own, outside the store's pool, that has run `LISTEN mailpush_changes` and
does nothing else: psycopg's async connection waits on its socket in the
event loop, which costs nothing while nobody writes. A writer, after its
commit, sends on a second connection of its own one notification per user
it changed (coalesced over one turn of the event loop, all in one
statement):

    {"from": "1234-9f2c01ab6d3e", "user": "alice", "mailboxes": ["INBOX"]}

(`mailboxes` null: any of the user's mailboxes). PostgreSQL delivers a
notification to every listening session of the database, the sender's own
included; a listener drops those whose `from` is its own process, whose hub
already had the exact records. A payload must stay under PostgreSQL's 8000
bytes: one naming too many mailboxes says "any mailbox" instead.

What can go wrong, and what happens then:

- The listening connection is lost (PostgreSQL restarted or failed over,
  the backend was terminated, the network dropped it; TCP keepalives find a
  silent loss within about half a minute). The feed connects again, with a
  pause that doubles from `RECONNECT_PAUSE` up to `RECONNECT_PAUSE_MAX`, and
  once it listens again it publishes `ChangedElsewhere(user, None)` for
  every user this process has subscribers for (`everyone`): announcements
  made meanwhile were missed, so each of those sessions reads what changed
  from the store. Nothing is lost; changes reach sessions late.
- Sending fails (the sending connection was closed): it is opened again and
  the notifications sent once more; if that fails too they are dropped with a
  warning, and other processes' sessions see the change at their next poll or
  command. The commit itself stands either way.
- A command that only writes (`mailpush deliver`, admin commands) announces
  and never listens; `close` sends what is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import ServiceError
from ..logs.text import mask_secrets
from .feed_protocol import Heard, Pending, add_change, changed_elsewhere, describe_heard

__all__ = [
    "CHANNEL",
    "MAX_PAYLOAD",
    "RECONNECT_PAUSE",
    "RECONNECT_PAUSE_MAX",
    "NotifyChangeFeed",
]

log = logging.getLogger(__name__)

#: The one channel every mailpush process of a database listens on.
CHANNEL = "mailpush_changes"
#: PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD = 7999
#: Seconds before the first attempt to listen again; doubled up to the maximum.
RECONNECT_PAUSE = 0.2
RECONNECT_PAUSE_MAX = 10.0
#: Seconds allowed to open a feed connection.
CONNECT_TIMEOUT = 10
#: libpq TCP keepalives for the feed's connections, unless the URI sets its own: a
#: listening connection whose peer vanished is noticed (and replaced) in about 25 s.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
_SEND = "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload"


class NotifyChangeFeed:
    """`ChangeFeed` over PostgreSQL LISTEN/NOTIFY on the database `uri` names."""

    def __init__(self, uri: str, everyone: Callable[[], Iterable[str]] = tuple) -> None:
        """`everyone`: the users this process has subscribers for (`ChangeHub.users`), who
        all hear a change after the listening connection was lost and found again."""
        self.uri = uri
        self._where = mask_secrets(uri)
        self._everyone = everyone
        #: This process's name in every payload it sends (its own are not heard).
        self.name = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._pending: Pending = {}
        self._flush_handle: asyncio.Handle | None = None
        self._outgoing: list[str] = []
        self._sending: asyncio.Task[None] | None = None
        self._sender: psycopg.AsyncConnection[Any] | None = None
        self._heard: Heard | None = None
        self._heard_pending: Pending = {}
        self._publish_handle: asyncio.Handle | None = None
        self._listening: asyncio.Task[None] | None = None
        #: Times the listening connection was (re)established; 1 after `listen`.
        self.connections = 0

    # --- hearing ----------------------------------------------------------------------

    async def listen(self, heard: Heard) -> None:
        """Open the listening connection and hear the other processes from now on.

        The first connection is made here, so that what is committed after this
        returns is heard; later losses are repaired in the background."""
        try:
            connection = await self._listening_connection()
        except psycopg.Error as exc:
            raise ServiceError(
                f"change feed: cannot LISTEN on PostgreSQL at {self._where}:"
                f" {mask_secrets(str(exc)).strip()}; check mailpush_store and that the"
                " server accepts one more connection per mailpush process"
            ) from None
        self._heard = heard
        self._listening = asyncio.create_task(
            self._listen_forever(connection), name="change-feed-listen"
        )
        log.info("change feed: listening on PostgreSQL channel %s at %s", CHANNEL, self._where)

    async def _listening_connection(self) -> psycopg.AsyncConnection[Any]:
        connection = await self._connect()
        try:
            await connection.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            await connection.close()
            raise
        self.connections += 1
        return connection

    async def _listen_forever(self, connection: psycopg.AsyncConnection[Any]) -> None:
        pause = RECONNECT_PAUSE
        while True:
            try:
                async for notify in connection.notifies():
                    self._hear(notify.payload)
            except psycopg.Error as exc:
                log.warning(
                    "change feed: lost the listening connection to %s (%s); connecting"
                    " again (sessions hear of other processes' changes meanwhile only"
                    " when they poll)",
                    self._where, mask_secrets(str(exc)).strip() or type(exc).__name__,
                )  # fmt: skip
            finally:
                await _close_quietly(connection)
            while True:
                await asyncio.sleep(pause)
                pause = min(2 * pause, RECONNECT_PAUSE_MAX)
                try:
                    connection = await self._listening_connection()
                    break
                except psycopg.Error as exc:
                    log.warning(
                        "change feed: cannot listen on %s again (%s); next try in %.1fs",
                        self._where, mask_secrets(str(exc)).strip(), pause,
                    )  # fmt: skip
            pause = RECONNECT_PAUSE
            self._catch_up()

    def _catch_up(self) -> None:
        """Listening again: whatever was announced while the connection was down was
        missed, so every user with sessions here may have changed."""
        users = list(self._everyone())
        log.info(
            "change feed: listening on %s again; %d user(s) with sessions here look for"
            " changes they may have missed",
            self._where, len(users),
        )  # fmt: skip
        for user in users:
            self._heard_pending[user] = None
        self._publish()

    def _hear(self, payload: str) -> None:
        try:
            body = json.loads(payload)
            sender, user, mailboxes = body["from"], body["user"], body["mailboxes"]
        except (ValueError, KeyError, TypeError):
            log.debug("change feed: ignoring a malformed notification %r", payload[:200])
            return
        if sender == self.name or not isinstance(user, str):
            return
        if not isinstance(mailboxes, list):
            add_change(self._heard_pending, user, None)
        else:
            add_change(
                self._heard_pending, user, (name for name in mailboxes if isinstance(name, str))
            )
        if self._publish_handle is None:
            # Notifications that arrived in one packet are published together.
            self._publish_handle = asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        self._publish_handle = None
        heard, self._heard_pending = self._heard_pending, {}
        if not heard or self._heard is None:
            return
        records = changed_elsewhere(heard)
        log.debug("change feed: heard %s", describe_heard(records))
        self._heard(records)

    # --- announcing -------------------------------------------------------------------

    def announce(self, user: str, mailbox: str | None) -> None:
        """Queue the announcement; it is sent at the end of this turn of the loop."""
        add_change(self._pending, user, None if mailbox is None else (mailbox,))
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # not on a loop: `close` sends it
            self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand every pending announcement to the sending task (started if idle)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, {}
        self._outgoing += [self._payload(user, mailboxes) for user, mailboxes in pending.items()]
        if self._outgoing and (self._sending is None or self._sending.done()):
            self._sending = asyncio.get_running_loop().create_task(
                self._send_all(), name="change-feed-send"
            )

    def _payload(self, user: str, mailboxes: set[str] | None) -> str:
        body = {
            "from": self.name,
            "user": user,
            "mailboxes": None if mailboxes is None else sorted(mailboxes),
        }
        payload = json.dumps(body)
        if len(payload.encode()) > MAX_PAYLOAD:
            body["mailboxes"] = None
            payload = json.dumps(body)
        return payload

    async def _send_all(self) -> None:
        """Send what is queued, in batches of what gathered while the last one was sent."""
        while self._outgoing:
            batch, self._outgoing = self._outgoing, []
            await self._send(batch)

    async def _send(self, payloads: list[str]) -> None:
        for attempt in (1, 2):
            try:
                if self._sender is None or self._sender.closed:
                    self._sender = await self._connect()
                await self._sender.execute(_SEND, (CHANNEL, payloads))
            except psycopg.Error as exc:
                await _close_quietly(self._sender)
                self._sender = None
                if attempt == 2:
                    log.warning(
                        "change feed: cannot announce %d change(s) on %s: %s; other"
                        " processes' sessions see them when they next poll",
                        len(payloads), self._where, mask_secrets(str(exc)).strip(),
                    )  # fmt: skip
                continue
            log.debug("change feed: announced %s", ", ".join(payloads))
            return

    # --- lifecycle --------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        params = {
            **_KEEPALIVES,
            "connect_timeout": str(CONNECT_TIMEOUT),
            **conninfo_to_dict(self.uri),
        }
        return await psycopg.AsyncConnection.connect(make_conninfo("", **params), autocommit=True)

    async def close(self) -> None:
        """Send what is pending, stop listening and close both connections."""
        if self._pending or self._outgoing:
            self.flush()
        if self._sending is not None:
            await self._sending
            self._sending = None
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
            self._listening = None
            log.info("change feed: stopped listening on %s", self._where)
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None
        await _close_quietly(self._sender)
        self._sender = None


async def _close_quietly(connection: psycopg.AsyncConnection[Any] | None) -> None:
    if connection is None:
        return
    try:
        await connection.close()
    except psycopg.Error:
        pass  # already broken: nothing to close cleanly
