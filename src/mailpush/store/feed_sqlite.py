"""The change feed for SQLite: a UNIX datagram to every serving process of the data directory.

SQLite tells no connection that another process committed, so each serving
process binds a datagram socket `<data_dir>/feed/<pid>-<random>.sock`
(directory 0700, socket 0600: only the user the server runs as can write to
it) and waits on it with the event loop's reader, which costs nothing while
nobody writes. A writer, after its commit, lists `feed/` and sends every
socket but its own one small JSON datagram for the users whose changes it
committed during one turn of the event loop:

    {"from": "1234-9f2c01ab", "users": {"alice": ["INBOX"], "bob": null}}

(null: any of the user's mailboxes). Announcements made during one turn of
the event loop are coalesced per user and sent at the end of it, as many
users to a datagram as `MAX_DATAGRAM` holds: a worker committing a batch of
deliveries to five users sends each other process one datagram, not five.
The receiver also takes the one-user form of earlier versions,
`{"from": ..., "user": "alice", "mailboxes": ["INBOX"]}`;
`close` sends what is left, so a command that exits right after its commit
still announces it.

What can go wrong, and what happens then:

- The owner of a socket is gone (killed, crashed): sending is refused
  (ECONNREFUSED) and the sender removes the socket and its missed file. A
  restarted server binds a new name; it has no sessions of before to wake.
- The receiver's queue is full (Linux queues only `net.unix.max_dgram_qlen`
  datagrams, often 10, per socket; the receiver's loop may be busy). The
  socket is non-blocking, so the sender never waits: it appends the
  datagram's users to the receiver's missed file `<name>.missed` instead
  (under `flock`, held for one small write). The receiver reads that file
  after every batch of datagrams it receives and every `FALLBACK_INTERVAL`
  seconds, and hears those users then: a lost datagram delays an
  announcement, it never loses one. A missed file past `MISSED_FILE_LIMIT`
  is replaced by one `null` line (every user the receiver has sessions for).
- A data directory whose `feed/` path is too long for a socket address
  (about 100 bytes): the process runs without the feed, with a warning.
  Nothing then reaches its IDLE sessions from other processes.

Several serving processes on one data directory (workers) each bind their
own socket and hear one another; none hears its own announcements, as it
never sends to its own socket.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import ServiceError
from .feed_protocol import Heard, Pending, add_change, changed_elsewhere, describe_heard

__all__ = [
    "FALLBACK_INTERVAL",
    "FEED_DIR",
    "MISSED_FILE_LIMIT",
    "DatagramChangeFeed",
]

log = logging.getLogger(__name__)

#: The feed's directory in `mailpush_data_dir`.
FEED_DIR = "feed"
SOCKET_SUFFIX = ".sock"
MISSED_SUFFIX = ".missed"
#: Seconds between a listening process's looks at its missed file when no datagram comes.
FALLBACK_INTERVAL = 5.0
#: Bytes a missed file may reach before it is replaced by "every user".
MISSED_FILE_LIMIT = 64 * 1024
#: The largest datagram sent: more users go in further datagrams, and a user whose
#: mailboxes alone would not fit is announced as "any mailbox".
MAX_DATAGRAM = 4096
#: Datagrams read in one reader callback; the loop calls again while more wait.
READS_PER_WAKE = 256
#: Linux's limit for a UNIX socket path (sun_path holds 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


class DatagramChangeFeed:
    """`ChangeFeed` over UNIX datagram sockets in `<data_dir>/feed/`."""

    def __init__(self, directory: Path, everyone: Callable[[], Iterable[str]] = tuple) -> None:
        """`everyone`: the users this process has subscribers for (`ChangeHub.users`),
        all of whom hear a change when a missed file overflowed."""
        self.directory = directory
        self._everyone = everyone
        #: This process's socket name (without suffix), also sent as "from".
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._pending: Pending = {}
        self._flush_handle: asyncio.Handle | None = None
        self._sender: socket.socket | None = None
        self._receiver: socket.socket | None = None
        self._heard: Heard | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fallback: asyncio.TimerHandle | None = None
        #: Receivers whose full queue was already logged at info level (debug after).
        self._full_logged: set[str] = set()
        self._path_warned = False

    @property
    def socket_path(self) -> Path:
        return self.directory / f"{self.name}{SOCKET_SUFFIX}"

    @property
    def missed_path(self) -> Path:
        return self.directory / f"{self.name}{MISSED_SUFFIX}"

    # --- hearing ----------------------------------------------------------------------

    async def listen(self, heard: Heard) -> None:
        """Bind this process's socket and hear the others' announcements from now on."""
        self._loop = asyncio.get_running_loop()
        try:
            self._prepare_directory()
        except OSError as exc:
            raise ServiceError(
                f"change feed: cannot create {self.directory}: {exc.strerror or exc}; it"
                " lives in mailpush_data_dir, which must be writable by the server's user"
            ) from None
        path = str(self.socket_path)
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            log.warning(
                "change feed: %s is too long for a UNIX socket address (at most %d bytes):"
                " IMAP sessions and the push dispatcher of this process will not hear of"
                " commits by other processes (mailpush deliver, admin commands, workers);"
                " use a shorter mailpush_data_dir",
                path, MAX_SOCKET_PATH,
            )  # fmt: skip
            return
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            receiver.setblocking(False)
            receiver.bind(path)
            os.chmod(path, 0o600)
        except OSError as exc:
            receiver.close()
            raise ServiceError(
                f"change feed: cannot bind {path}: {exc.strerror or exc}; check that"
                f" {self.directory} belongs to the server's user"
            ) from None
        self._receiver = receiver
        self._heard = heard
        self._loop.add_reader(receiver.fileno(), self._readable)
        self._arm_fallback()
        log.info("change feed: listening on %s", path)

    def _readable(self) -> None:
        self._take(READS_PER_WAKE)

    def settle(self) -> bool:
        """Take in every datagram queued for this process, and its missed file, now.

        A writer sends its datagrams when its commit is published, before the
        waiting client's answer is written (both are callbacks of the same
        loop turn, the announcement's first), and a UNIX datagram is in the
        receiver's queue when `send` returns; one that found the queue full is
        in the missed file, written under its lock before `send` gave up. So
        what another process's client has been answered is here. Usually a
        `recv` that finds the queue empty and a `stat` of the missed file,
        where an IMAP command read the store before each answer."""
        if self._receiver is None:
            return False
        self._take(None)
        return True

    def _take(self, limit: int | None) -> None:
        """Read up to `limit` datagrams (None: until none is left), the missed file,
        and publish what they named."""
        receiver = self._receiver
        if receiver is None:
            return
        heard: Pending = {}
        taken = 0
        while limit is None or taken < limit:
            try:
                datagram = receiver.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("change feed: cannot read %s: %s", self.socket_path, exc)
                break
            _merge_datagram(heard, datagram)
            taken += 1
        self._read_missed(heard)
        self._publish(heard)

    def _arm_fallback(self) -> None:
        if self._loop is not None and self._receiver is not None:
            self._fallback = self._loop.call_later(FALLBACK_INTERVAL, self._fallback_check)

    def _fallback_check(self) -> None:
        heard: Pending = {}
        self._read_missed(heard)
        if heard:
            log.info(
                "change feed: %d user(s) from the missed file %s (announcements that found"
                " this process's queue full)",
                len(heard), self.missed_path,
            )  # fmt: skip
        self._publish(heard)
        self._arm_fallback()

    def _read_missed(self, heard: Pending) -> None:
        """Add the users senders recorded when this process's queue was full, and empty
        the file (under its lock, so no sender's line falls between reading and emptying)."""
        path = self.missed_path
        try:
            if os.stat(path).st_size == 0:
                return
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("change feed: cannot read the missed file %s: %s", path, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = b""
            while chunk := os.read(fd, 65536):
                data += chunk
            os.ftruncate(fd, 0)
        except OSError as exc:
            log.warning("change feed: cannot read the missed file %s: %s", path, exc)
            return
        finally:
            os.close(fd)
        for line in data.splitlines():
            try:
                user = json.loads(line)
            except ValueError:
                continue
            if user is None:
                # The file outgrew its limit: every user may have changed.
                for name in self._everyone():
                    heard[name] = None
            elif isinstance(user, str):
                heard[user] = None

    def _publish(self, heard: Pending) -> None:
        if not heard or self._heard is None:
            return
        records = changed_elsewhere(heard)
        log.debug("change feed: heard %s", describe_heard(records))
        self._heard(records)

    # --- announcing -------------------------------------------------------------------

    def announce(self, user: str, mailbox: str | None) -> None:
        """Queue the announcement; it goes out at the end of this turn of the loop."""
        add_change(self._pending, user, None if mailbox is None else (mailbox,))
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()  # not on a loop: nothing would run a later flush
                return
            self._flush_handle = loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send every pending announcement to every other listening process now."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, {}
        if not pending:
            return
        targets = self._listeners()
        if not targets:
            log.debug(
                "change feed: no other process listens; %d user(s) not announced", len(pending)
            )
            return
        datagrams = self._datagrams(pending)
        sender = self._sending_socket()
        for target in targets:
            for users, datagram in datagrams:
                if not self._send(sender, target, users, datagram):
                    break

    def _listeners(self) -> list[str]:
        """The other processes' sockets (a directory of a few entries: microseconds)."""
        own = self.socket_path.name
        try:
            with os.scandir(self.directory) as entries:
                return [
                    entry.path for entry in entries
                    if entry.name.endswith(SOCKET_SUFFIX) and entry.name != own
                ]  # fmt: skip
        except FileNotFoundError:
            return []  # no serving process has run on this data directory yet
        except OSError as exc:
            log.warning(
                "change feed: cannot list %s: %s; other processes will see this"
                " change at their next poll",
                self.directory,
                exc,
            )
            return []

    def _datagrams(self, pending: Pending) -> list[tuple[list[str], bytes]]:
        """`pending` as datagrams of at most `MAX_DATAGRAM` bytes, each with its users."""
        head = b'{"from": ' + json.dumps(self.name).encode() + b', "users": {'
        room = MAX_DATAGRAM - len(head) - 2  # the closing braces
        made: list[tuple[list[str], bytes]] = []
        users: list[str] = []
        entries: list[bytes] = []
        size = 0
        for user, mailboxes in pending.items():
            entry = _user_entry(user, mailboxes)
            if len(entry) > room:
                entry = _user_entry(user, None)
            if users and size + 2 + len(entry) > room:
                made.append((users, head + b", ".join(entries) + b"}}"))
                users, entries, size = [], [], 0
            size += len(entry) + (2 if users else 0)
            users.append(user)
            entries.append(entry)
        if users:
            made.append((users, head + b", ".join(entries) + b"}}"))
        return made

    def _send(
        self, sender: socket.socket, target: str, users: list[str], datagram: bytes
    ) -> bool:
        """Send one datagram; False when `target` is gone (nothing more goes to it)."""
        try:
            sender.sendto(datagram, target)
        except (BlockingIOError, InterruptedError):
            self._record_missed(target, users)
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            self._remove_stale(target)
            return False
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self._record_missed(target, users)
                return True
            if not self._path_warned:
                self._path_warned = True
                log.warning(
                    "change feed: cannot announce to %s: %s; its sessions see this"
                    " process's changes only when they poll",
                    target,
                    exc,
                )
            return False
        log.debug("change feed: announced %s to %s", datagram.decode(errors="replace"), target)
        return True

    def _record_missed(self, target: str, users: list[str]) -> None:
        """The receiver's queue is full: leave `users` in its missed file, for its next look."""
        path = target[: -len(SOCKET_SUFFIX)] + MISSED_SUFFIX
        name = os.path.basename(target)
        level = logging.DEBUG if name in self._full_logged else logging.INFO
        self._full_logged.add(name)
        log.log(
            level,
            "change feed: the queue of %s is full; %s recorded in %s for its fallback check",
            name,
            ", ".join(users),
            path,
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            log.warning("change feed: cannot record a missed announcement in %s: %s", path, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size >= MISSED_FILE_LIMIT:
                os.ftruncate(fd, 0)
                os.write(fd, b"null\n")
            else:
                os.write(fd, b"".join(json.dumps(user).encode() + b"\n" for user in users))
        except OSError as exc:
            log.warning("change feed: cannot record a missed announcement in %s: %s", path, exc)
        finally:
            os.close(fd)

    def _remove_stale(self, target: str) -> None:
        """Nobody is bound to `target` any more: its process ended without removing it."""
        log.info("change feed: removing %s, whose process is gone", target)
        for path in (target, target[: -len(SOCKET_SUFFIX)] + MISSED_SUFFIX):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("change feed: cannot remove %s: %s", path, exc)

    def _sending_socket(self) -> socket.socket:
        if self._sender is None:
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.setblocking(False)
            self._sender = sender
        return self._sender

    # --- lifecycle --------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is masked by the umask, and an existing directory keeps its own.
        os.chmod(self.directory, 0o700)

    async def close(self) -> None:
        self.flush()
        if self._fallback is not None:
            self._fallback.cancel()
            self._fallback = None
        if self._receiver is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._receiver.fileno())
            self._receiver.close()
            self._receiver = None
            for path in (self.socket_path, self.missed_path):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            log.info("change feed: stopped listening on %s", self.socket_path)
        if self._sender is not None:
            self._sender.close()
            self._sender = None


def _user_entry(user: str, mailboxes: set[str] | None) -> bytes:
    """One user's `"name": [mailboxes]` (or null: any mailbox) in a datagram's `users`."""
    names = None if mailboxes is None else sorted(mailboxes)
    return json.dumps(user).encode() + b": " + json.dumps(names).encode()


def _merge_datagram(heard: Pending, datagram: bytes) -> None:
    try:
        body = json.loads(datagram)
        users = body["users"] if "users" in body else {body["user"]: body["mailboxes"]}
        changed = list(users.items())
    except (ValueError, KeyError, TypeError, AttributeError):
        log.debug("change feed: ignoring a malformed datagram %r", datagram[:200])
        return
    for user, mailboxes in changed:
        if not isinstance(user, str):
            continue
        if not isinstance(mailboxes, list):
            add_change(heard, user, None)
            continue
        add_change(heard, user, (name for name in mailboxes if isinstance(name, str)))
