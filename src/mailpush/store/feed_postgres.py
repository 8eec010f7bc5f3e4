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
- The server stops answering (stopped, overloaded, or a network path that
  still acknowledges packets, which keepalives do not notice): every wait on
  a feed connection is bounded. Connecting gets `CONNECT_TIMEOUT`, a
  statement (`LISTEN`, a batch of NOTIFYs) `ANSWER_TIMEOUT`, after which
  its connection is cut and the failure handled as a lost connection above
  (the announcements are sent once more on a new connection); `close` waits
  at most `CLOSE_TIMEOUT` for what is pending, then drops it with a warning,
  so a stuck server never holds up a shutdown. Waiting for notifications is
  not bounded: a silent channel is the normal state.
- A command that only writes (`mailpush deliver`, admin commands) announces
  and never listens; `close` sends what is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import ServiceError
from ..logs.text import mask_secrets
from .feed_protocol import Heard, Pending, add_change, changed_elsewhere, describe_heard

__all__ = [
    "ANSWER_TIMEOUT",
    "CHANNEL",
    "CLOSE_TIMEOUT",
    "CONNECT_TIMEOUT",
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
CONNECT_TIMEOUT = 10.0
#: Seconds the server has to answer one statement on a feed connection (LISTEN, NOTIFYs).
ANSWER_TIMEOUT = 10.0
#: Seconds `close` waits for pending announcements before it drops them.
CLOSE_TIMEOUT = 15.0
#: Seconds a task whose connection was cut has to notice (it is at once; then cancelled).
CUT_GRACE = 1.0
#: libpq TCP keepalives for the feed's connections, unless the URI sets its own: a
#: listening connection whose peer vanished is noticed (and replaced) in about 25 s.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
_SEND = "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload"
T = TypeVar("T")


class FeedTimeoutError(psycopg.OperationalError):
    """The server did not answer on a feed connection in time; the connection was cut.

    A psycopg.Error, so it is handled as any lost connection is."""


class NotifyChangeFeed:
    """`ChangeFeed` over PostgreSQL LISTEN/NOTIFY on the database `uri` names."""

    def __init__(self, uri: str, everyone: Callable[[], Iterable[str]] = tuple) -> None:
        """`everyone`: the users this process has subscribers for (`ChangeHub.users`), who
        all hear a change after the listening connection was lost and found again."""
        self.uri = uri
        self._where = mask_secrets(uri)  # the password, in either spelling, masked
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
        #: The announcements `_send` is sending now (counted if `close` drops them).
        self._batch: list[str] = []
        #: Connections a statement runs on now (`_answered`): what `close` cuts.
        self._answering: set[psycopg.AsyncConnection[Any]] = set()
        #: `close` gave up waiting: a failure is not tried again, nor a connection made.
        self._closing = False
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
            await self._answered(connection, connection.execute(f"LISTEN {CHANNEL}"), "LISTEN")
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
                if self._closing:
                    return  # `close` cut it
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
                    if self._closing:
                        return
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

    def settle(self) -> bool:
        """Notifications arrive over the listening connection, read by its own task,
        and may be held in transit: nothing here can promise that another node's
        answered commit has been heard, so readers ask the database."""
        return False

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
        while self._outgoing and not self._closing:
            self._batch, self._outgoing = self._outgoing, []
            try:
                await self._send(self._batch)
            finally:
                self._batch = []

    async def _send(self, payloads: list[str]) -> None:
        for attempt in (1, 2):
            try:
                if self._sender is None or self._sender.closed:
                    self._sender = await self._connect()
                sender = self._sender
                await self._answered(sender, sender.execute(_SEND, (CHANNEL, payloads)), "NOTIFY")
            except psycopg.Error as exc:
                await _close_quietly(self._sender)
                self._sender = None
                if self._closing:
                    return  # `close` says what it dropped
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
        """A new feed connection, in `CONNECT_TIMEOUT` (whatever the URI's connect_timeout:
        libpq's counts per address, and 0 means none) or FeedTimeoutError."""
        params = {
            **_KEEPALIVES,
            # libpq takes whole seconds, at least 2.
            "connect_timeout": str(max(2, math.ceil(CONNECT_TIMEOUT))),
            **conninfo_to_dict(self.uri),
        }
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return await psycopg.AsyncConnection.connect(
                    make_conninfo("", **params), autocommit=True
                )
        except TimeoutError:
            raise FeedTimeoutError(
                f"no connection within {CONNECT_TIMEOUT:g}s (the server does not answer)"
            ) from None

    async def _answered(
        self, connection: psycopg.AsyncConnection[Any], operation: Awaitable[T], what: str
    ) -> T:
        """`operation` on `connection`, or FeedTimeoutError once ANSWER_TIMEOUT has passed.

        Then the connection is cut (its socket shut down, `_cut`) and the operation
        fails at once. Cancelling it instead would have psycopg ask the server to
        cancel the statement and wait for the answer again: the very wait that hangs."""
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            _cut(connection)

        timer = asyncio.get_running_loop().call_later(ANSWER_TIMEOUT, expire)
        self._answering.add(connection)
        try:
            return await operation
        except psycopg.Error:
            if not expired:
                raise
            log.warning(
                "change feed: PostgreSQL at %s did not answer %s within %gs; cut that"
                " connection",
                self._where, what, ANSWER_TIMEOUT,
            )  # fmt: skip
            raise FeedTimeoutError(
                f"no answer to {what} within {ANSWER_TIMEOUT:g}s (connection cut)"
            ) from None
        finally:
            timer.cancel()
            self._answering.discard(connection)

    async def _end(self, task: asyncio.Task[None]) -> None:
        """End a feed task at once, without a network wait: cut the connections a
        statement waits on (the statement fails, and closing, the task gives up), and
        cancel it otherwise (waiting to connect, for notifications or to retry)."""
        self._closing = True
        for connection in self._answering:
            _cut(connection)
        if self._answering:
            await asyncio.wait({task}, timeout=CUT_GRACE)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled():
            task.result()  # what it did not handle itself (psycopg errors it logs)

    async def close(self) -> None:
        """Send what is pending (for at most CLOSE_TIMEOUT), stop listening and close both
        connections; returns however the server behaves."""
        if self._pending or self._outgoing:
            self.flush()
        if self._sending is not None:
            sending, self._sending = self._sending, None
            await asyncio.wait({sending}, timeout=CLOSE_TIMEOUT)
            if sending.done():
                sending.result()
            else:
                dropped = len(self._batch) + len(self._outgoing)
                self._outgoing = []
                await self._end(sending)
                log.warning(
                    "change feed: PostgreSQL at %s did not take %d announcement(s) within"
                    " %gs; closing without them (other processes' sessions see those"
                    " changes when they next poll)",
                    self._where, dropped, CLOSE_TIMEOUT,
                )  # fmt: skip
        if self._listening is not None:
            listening, self._listening = self._listening, None
            await self._end(listening)
            log.info("change feed: stopped listening on %s", self._where)
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None
        await _close_quietly(self._sender)
        self._sender = None
        self._closing = False  # announcing again later opens a connection again


def _cut(connection: psycopg.AsyncConnection[Any]) -> None:
    """Shut `connection`'s socket down both ways, so whatever waits on it fails now.

    Shut down, not closed: the descriptor stays open (and registered with the
    event loop) until psycopg's wait has ended and `close` runs; closing it
    under that wait would leave the loop watching a number the next socket reuses."""
    try:
        descriptor = os.dup(connection.pgconn.socket)
    except (OSError, psycopg.Error):
        return  # already closed
    with socket.socket(fileno=descriptor) as sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


async def _close_quietly(connection: psycopg.AsyncConnection[Any] | None) -> None:
    if connection is None:
        return
    try:
        await connection.close()
    except psycopg.Error:
        pass  # already broken: nothing to close cleanly
