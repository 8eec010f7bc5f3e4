"""One IMAP connection: reading commands, the state machine, untagged updates, IDLE.

The command loop reads one whole command (literals included), looks it up in
the command table the server gave (`CommandSpec`s), checks the state, reads
the arguments the spec declares, runs its handler, sends the untagged updates
RFC 3501 allows at that point, then the tagged reply, all in one write. The
connection implements the `Session` protocol the handlers see; it imports no
command module. Changes made by other sessions and by
deliveries arrive from the store's change hub into the selected mailbox's
view; during IDLE they are written from the hub callback itself, so a
delivery reaches an idling client within one loop iteration of the commit.

NOTIFY (RFC 5465, notify.py) changes three things: between commands the
selected mailbox's changes are written at once too, as in IDLE, when the
client set SELECTED or SELECTED-DELAYED (expunges then wait for a command
under SELECTED-DELAYED); EXISTS/EXPUNGE/RECENT and flag FETCHes of the
selected mailbox are said only for the events it asked for (also in answer
to a command, as Dovecot does); and other mailboxes' changes come from a
`MailboxWatch` as `* STATUS` and `* LIST` lines, written at once between
commands and after the tagged reply of a running one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..auth import AuthPenalty
from ..errors import (
    MailboxNotFoundError,
    StoreError,
    TooManyLoginsWaitingError,
    UnknownUserError,
)
from ..service_metrics import ImapMetrics
from ..store import Change, ChangedElsewhere, MailStore
from ..store.mailbox_names import INBOX
from ..store.models import MailboxStatus
from ..store.sqlite_metadata import MAX_VALUE_SIZE
from .command_errors import AlreadyAnswered, CommandFailedError, store_error_text
from .command_spec import CommandTable
from .fetch import StructureCache
from .heavy_work import HeavyWork
from .literal_spool import AppendSpool, SpooledLiteral
from .login_log import ConnectionLog
from .notify import NotifySettings
from .notify_watch import MailboxWatch
from .options import ImapOptions
from .parser import (
    CommandSyntaxError,
    MailboxNameSyntaxError,
    extract_tag,
    literal_at_end,
    parse_command,
)
from .responses import ResponseBuffer, format_flags
from .search_refresh import refresh_search_updates
from .search_updates import SearchUpdates
from .sequence_set import format_uid_ranges
from .session import MailboxView
from .sort_memory import FactsCache
from .states import State
from .stream import ConnectionClosedError, ImapStream, LineTooLongError
from .user_ip_connections import UserIpConnections

log = logging.getLogger(__name__)

__all__ = ["Authenticator", "ImapConnection", "Listener"]

#: BAD replies in a row, before login, after which the connection is dropped.
MAX_BAD_BEFORE_LOGIN = 3

#: `authenticate(login, password)` → the user name, or None when the login fails.
Authenticator = Callable[[str, str], Awaitable[str | None]]


class Listener(Protocol):
    """What a connection uses of the server that accepted it (`ImapServer`).

    Read when used, not copied at accept: the login penalty may be swapped
    on a running server.
    """

    @property
    def options(self) -> ImapOptions: ...

    @property
    def store(self) -> MailStore: ...

    @property
    def commands(self) -> CommandTable: ...

    @property
    def authenticate(self) -> Authenticator: ...

    @property
    def penalty(self) -> AuthPenalty: ...

    @property
    def user_ip_connections(self) -> UserIpConnections: ...

    @property
    def heavy(self) -> HeavyWork: ...

    @property
    def structures(self) -> StructureCache: ...

    @property
    def sort_facts(self) -> FactsCache: ...

    @property
    def append_spool(self) -> AppendSpool: ...

    @property
    def metrics(self) -> ImapMetrics: ...


class _LiteralTooLargeError(Exception):
    def __init__(self, tag: str, size: int, limit: int) -> None:
        self.tag = tag
        self.size = size
        self.limit = limit
        super().__init__(f"literal of {size} bytes exceeds {limit}")


#: What a SETMETADATA command may hold in literals beyond the line limit: one value
#: just over the store's limit must still arrive, to be refused `[METADATA MAXSIZE]`.
SETMETADATA_LITERAL_ALLOWANCE = MAX_VALUE_SIZE + 1


class _LiteralOverLineLimitError(Exception):
    """A literal outside APPEND longer than what is left of the line limit."""


class ImapConnection:
    """The state of one client connection and the loop that serves it."""

    def __init__(self, server: Listener, stream: ImapStream) -> None:
        self.server = server
        self.options = server.options
        self.store: MailStore = server.store
        self.heavy = server.heavy
        self.structures = server.structures
        self.sort_facts = server.sort_facts
        self.append_spool = server.append_spool
        self._commands = server.commands
        self.stream = stream
        self.out = ResponseBuffer(stream)
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.view: MailboxView | None = None
        #: RFC 7162 extensions this session enabled (ENABLE, or used: SELECT (CONDSTORE)...).
        self.condstore = False
        self.qresync = False
        #: A read of what another process changed is running / wanted again after it.
        self._resync: asyncio.Task[None] | None = None
        self._resync_again = False
        #: Changes seen while a SELECT is reading the mailbox, replayed onto the new view.
        self._loading: list[Change] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: What NOTIFY set (None: never used), its watch of other mailboxes, MessageNew's
        #: FETCH, and the watch's lines that came while a command ran.
        self.notify: NotifySettings | None = None
        self._watch: MailboxWatch | None = None
        self._notify_fetch: Callable[[list[int]], Awaitable[None]] | None = None
        self._notify_lines: list[bytes] = []
        self._idling = False
        self._busy = False
        self._shutdown = False
        self._bad_in_a_row = 0
        self._auth_failures = 0
        #: Whether this connection counts towards mail_max_userip_connections.
        self._counted_user_ip = False
        #: INBOX is known to exist (it is created on first use, not at login).
        self._inbox_exists = False
        self._recent_claim: asyncio.Task[None] | None = None
        #: SEARCH RETURN (UPDATE) searches followed, and their refreshes running in IDLE.
        self.search_updates = SearchUpdates()
        self._search_pushes: set[asyncio.Task[None]] = set()
        #: The current command's literals that went to spool files, by offset in it.
        self.spooled: dict[int, SpooledLiteral] = {}
        #: The tag of the command running (STARTTLS answers it before the handshake).
        self._tag = ""
        peer = stream.peer
        self.peer_host = peer[0] if peer else "unknown"
        #: Dovecot's login and logout lines, and the connection's log prefix.
        self.login_log = ConnectionLog(
            self.peer_host, _local_host(stream), stream.tls,
            stream.tls or _is_loopback(self.peer_host),
        )  # fmt: skip
        #: Why the connection ended, for its `Disconnected:` line (None: the client left).
        self._disconnect_reason: str | None = None
        #: When the client connected (`mailpush who`).
        self.connected_at = time.time()
        #: What `* BYE` says when the server ends the connection (stop, `mailpush kick`).
        self._bye_reason = "Server shutting down."

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        self.login_log.begin()
        try:
            self.out.line(f"* OK [CAPABILITY {self.capabilities()}] mailpush ready.")
            self.out.flush()
            while self.state is not State.LOGOUT and not self._shutdown:
                try:
                    async with asyncio.timeout(self.options.idle_timeout):
                        data = await self._read_command()
                except TimeoutError:
                    self._say_bye("Disconnected for inactivity.")
                    break
                except LineTooLongError as exc:
                    self._reply_bad(extract_tag(exc.head), "Command line too long")
                    continue
                except _LiteralTooLargeError as exc:
                    self.out.line(
                        f"{exc.tag} NO [TOOBIG] Literal of {exc.size} bytes exceeds the limit"
                        f" of {exc.limit} bytes"
                    )
                    self.out.flush()
                    continue
                except _LiteralOverLineLimitError:
                    # Dovecot's answer (imap-parser's LITERAL_TOO_BIG): BYE, then disconnect.
                    self._say_bye("Literal size too large")
                    break
                self._busy = True
                try:
                    await self._execute(data)
                finally:
                    self._busy = False
                    self.discard_spooled()
                self._write_notify_lines()
                if self._too_many_bad():
                    self._say_bye("Too many invalid IMAP commands.")
                    break
            if self._shutdown and self.state is not State.LOGOUT:
                self._say_bye(self._bye_reason)
            self.out.flush()
        except ConnectionClosedError:
            pass
        except Exception:
            self._disconnect_reason = "Internal error"
            log.exception("connection from %s failed", self.peer_host)
        finally:
            self._close()
            log.info("%s", self.login_log.disconnected(
                self._why_disconnected(), self.stream.bytes_in, self.stream.bytes_out
            ))  # fmt: skip

    def _say_bye(self, reason: str) -> None:
        self.out.line(f"* BYE {reason}")
        self._disconnect_reason = reason.rstrip(".")

    def _why_disconnected(self) -> str:
        """Dovecot's words: `Logged out`, `Aborted login by logging out`, `Connection closed`."""
        if self._disconnect_reason is not None:
            return self._disconnect_reason
        if self.state is State.LOGOUT:
            return "Logged out" if self.login_log.logged_in else "Aborted login by logging out"
        return "Connection closed"

    def shutdown_when_idle(self, reason: str = "Server shutting down.") -> None:
        """Server stop (or `mailpush kick`): leave now if waiting for input, else after
        the current command, saying `* BYE reason`."""
        self._shutdown = True
        self._bye_reason = reason
        if not self._busy:
            self._disconnect_reason = reason.rstrip(".")
            self.out.discard()
            self.stream.write(f"* BYE {reason}\r\n".encode())
            self.stream.close()

    def _close(self) -> None:
        self.discard_spooled()
        if self._counted_user_ip and self.user is not None:
            self.server.user_ip_connections.remove(self.user, self.peer_host)
            self._counted_user_ip = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._recent_claim is not None:
            self._recent_claim.cancel()
        for task in list(self._search_pushes):
            task.cancel()
        if self._resync is not None:
            self._resync.cancel()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self.view = None
        self.stream.close()

    def _too_many_bad(self) -> bool:
        return (
            self.state is State.NOT_AUTHENTICATED and self._bad_in_a_row >= MAX_BAD_BEFORE_LOGIN
        )

    # --- reading commands ----------------------------------------------------------------

    async def _read_command(self) -> bytes:
        """A whole command, literals included, in wire form (`{n}` CRLF data).

        As in Dovecot, only APPEND's literals may be large (up to APPENDLIMIT for
        the whole command): any other literal counts against the line limit. Once
        an APPEND's literals add up to more than the spool threshold, each further
        one goes to a spool file, so a command holds at most about the threshold
        plus the line limit in memory (twice, for the final join).
        """
        authenticated = self.state is not State.NOT_AUTHENTICATED
        literal_limit = self.options.max_literal_size
        line_budget = self.options.max_line_length
        metadata_allowance = False
        literal_total = 0
        parts: list[bytes] = []
        offset = 0
        self.discard_spooled()
        while True:
            line = await self.stream.readline(line_budget)
            line_budget -= len(line)
            parts.append(line)
            offset += len(line)
            announced = literal_at_end(line)
            if announced is None:
                return b"".join(parts)
            size, synchronising = announced
            appending = authenticated and _names_append(parts[0])
            if not metadata_allowance and authenticated and _names_setmetadata(parts[0]):
                line_budget += SETMETADATA_LITERAL_ALLOWANCE
                metadata_allowance = True
            if not appending and size > line_budget:
                self.discard_spooled()
                raise _LiteralOverLineLimitError
            if appending:
                literal_total += size
            if literal_total > literal_limit:
                tag = extract_tag(parts[0])
                self.discard_spooled()
                if not synchronising:
                    await self.stream.skip(size)
                    await self._skip_rest_of_command()
                raise _LiteralTooLargeError(tag, size, literal_limit)
            if synchronising:
                self.stream.write(b"+ OK\r\n")
            parts.append(b"\r\n")
            offset += 2
            spool = self.append_spool
            if appending and spool.wants(literal_total):
                # Only the `{n}` header stays in the command; APPEND finds the file by offset.
                try:
                    self.spooled[offset] = await spool.receive(self.stream, size)
                except BaseException:
                    self.discard_spooled()
                    raise
            else:
                parts.append(await self.stream.readexactly(size))
                offset += size
                if not appending:
                    line_budget -= size
            if line_budget <= 0:
                self.discard_spooled()
                raise LineTooLongError(parts[0][:64])

    def discard_spooled(self) -> None:
        """Delete the spool files of the command read last (it has been answered)."""
        for spooled in self.spooled.values():
            spooled.close()
        self.spooled.clear()

    async def _skip_rest_of_command(self) -> None:
        while True:
            line = await self.stream.readline(self.options.max_line_length)
            announced = literal_at_end(line)
            if announced is None:
                return
            size, synchronising = announced
            if synchronising:
                return  # the client waits for "+"; it will see our NO instead
            await self.stream.skip(size)

    # --- running commands -----------------------------------------------------------------

    async def _execute(self, data: bytes) -> None:
        try:
            command = parse_command(data)
        except CommandSyntaxError as exc:
            self._reply_bad(extract_tag(data), str(exc))
            return
        spec = self._commands.get(command.name)
        if spec is None:
            self._reply_bad(command.tag, f"Unknown command {command.name}")
            return
        states = spec.states
        if self.state not in states:
            if self.state is State.NOT_AUTHENTICATED:
                self._reply_bad(command.tag, "Please log in first")
            elif State.SELECTED in states and State.AUTHENTICATED not in states:
                self._reply_bad(command.tag, "No mailbox selected")
            else:
                self._reply_bad(command.tag, f"{command.name} is not allowed now")
            return
        self._tag = command.tag
        tokens = command.args
        values: list[object] = []
        try:
            if spec.needs_mailbox:
                self.require_view()  # a deleted mailbox is reported before bad arguments
            # The spec's grammar, read here so that handlers receive values, not tokens.
            for argument in spec.args:
                spacing = argument.spacing
                if spacing == "space":
                    tokens.space()
                elif spacing == "optional" and not tokens.skip_space():
                    values.append(None)
                    continue
                values.append(argument.parse(tokens, self))
            tokens.end()
            result = await spec.handler(self, *values)
        except MailboxNameSyntaxError as exc:
            result = f"NO {exc}"
        except CommandSyntaxError as exc:
            self._bad_in_a_row += 1
            await self.send_updates(allow_expunge=spec.sends_expunge)
            self.out.line(f"{command.tag} BAD Error in IMAP command {command.name}: {exc}")
            self.out.flush()
            return
        except CommandFailedError as exc:
            result = f"NO {exc}"
        except AlreadyAnswered:
            self._bad_in_a_row = 0
            return
        except StoreError as exc:
            result = "NO " + store_error_text(exc)
        self._bad_in_a_row = 0
        if self.state is State.SELECTED or self.view is not None:
            await self._catch_up()
            await self.send_updates(allow_expunge=spec.sends_expunge)
            result = self._with_highestmodseq(result, spec.sends_expunge)
        self.out.line(f"{command.tag} {result}")
        self.out.flush()

    def _reply_bad(self, tag: str, reason: str) -> None:
        self._bad_in_a_row += 1
        self.out.line(f"{tag} BAD {reason}")
        self.out.flush()

    # --- the Session protocol: what handlers use ---------------------------------------

    @property
    def tls_active(self) -> bool:
        return self.stream.tls

    @property
    def tag(self) -> str:
        return self._tag

    def require_user(self) -> str:
        assert self.user is not None and self.state is not State.NOT_AUTHENTICATED
        return self.user

    async def drain(self) -> None:
        await self.stream.drain()

    def capabilities(self) -> str:
        caps = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.options.starttls is not None and not self.stream.tls:
                caps.append("STARTTLS")
            if self.plaintext_allowed():
                caps.append("AUTH=PLAIN")
            else:
                caps.append("LOGINDISABLED")
            return " ".join(caps)
        caps += [
            "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE",
            "MULTIAPPEND", f"APPENDLIMIT={self.options.max_literal_size}",
            "METADATA", "METADATA-SERVER",
            "SORT", "SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "ESEARCH",
            "ESORT", "CONTEXT=SEARCH", "COMPRESS=DEFLATE", "LIST-EXTENDED", "LIST-STATUS", "BINARY",
            "CATENATE", "CONDSTORE", "QRESYNC", "NOTIFY",
        ]  # fmt: skip
        return " ".join(caps)

    def plaintext_allowed(self) -> bool:
        policy = self.options.allow_plaintext_auth
        if self.stream.tls or policy == "always":
            return True
        if policy == "never":
            return False
        try:
            return ipaddress.ip_address(self.peer_host.split("%")[0]).is_loopback
        except ValueError:
            return False

    async def login(self, login: str, password: str, mechanism: str = "PLAIN") -> str:
        """Check credentials; on success enter the authenticated state.

        LOGIN is PLAIN underneath, as in Dovecot (and so logged as `method=PLAIN`).
        Before the password is checked, the client waits for its IP's turn and
        then its failure penalty (`AuthPenalty.turn`); each failure and success
        is logged with user, IP and mechanism.
        """
        if not self.plaintext_allowed():
            self.log_auth("Login refused (plaintext authentication disabled)", login, mechanism)
            raise CommandFailedError(
                "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure"
                " (SSL/TLS) connections."
            )
        penalty = self.server.penalty
        try:
            # One check at a time per IP, each after the penalty the one before earned.
            async with penalty.turn(self.peer_host):
                user = await self.server.authenticate(login, password) if login else None
                if user is None:
                    penalty.failed(self.peer_host, login, password)
                else:
                    penalty.succeeded(self.peer_host)
        except TooManyLoginsWaitingError:
            self.log_auth("Login refused (too many logins waiting out the auth penalty)",
                           login, mechanism)  # fmt: skip
            raise CommandFailedError(
                "[UNAVAILABLE] Too many logins waiting from this IP, try again later."
            ) from None
        if user is None:
            self._auth_failures += 1
            self.server.metrics.auth.failed(mechanism)
            log.info("%s", self.login_log.auth_failed(login, mechanism))
            await asyncio.sleep(self.options.auth_failure_delay)
            if self._auth_failures >= self.options.max_auth_failures:
                self.state = State.LOGOUT
                self._say_bye("Too many invalid authentication attempts.")
            raise CommandFailedError("[AUTHENTICATIONFAILED] Authentication failed.")
        limit = self.options.mail_max_userip_connections
        connections = self.server.user_ip_connections
        if limit and connections.count(user, self.peer_host) >= limit:
            # Dovecot answers so and disconnects; the password was right, so no penalty.
            self.log_auth(
                f"Login refused (mail_max_userip_connections={limit} reached)", user, mechanism
            )
            self.state = State.LOGOUT
            raise CommandFailedError(
                "[UNAVAILABLE] Maximum number of connections from user+IP exceeded"
                f" (mail_max_userip_connections={limit})"
            )
        connections.add(user, self.peer_host)
        self._counted_user_ip = True
        self.server.metrics.auth.succeeded(mechanism)
        log.info("%s", self.login_log.login(user, mechanism))
        self.login_log.enter_user(user)
        self.user = user
        self.state = State.AUTHENTICATED
        self._unsubscribe = self.store.hub.subscribe(self._on_change, user=user)
        await self.ensure_default_mailboxes()
        return f"OK [CAPABILITY {self.capabilities()}] Logged in"

    def log_auth(self, what: str, user: str, mechanism: str) -> None:
        """A login refused before its password was checked, in Dovecot's `imap-login` words
        (`login_log.py`); a plaintext refusal is also what the `Disconnected:` line says."""
        if what.startswith("Login refused (plaintext"):
            line = self.login_log.plaintext_refused(user, mechanism)
        else:
            line = self.login_log.refused(what, user, mechanism)
        log.info("%s", line)

    async def ensure_default_mailboxes(self) -> None:
        """The SPECIAL-USE mailboxes exist from the first login on (without push events).

        Not INBOX: Dovecot creates it when it is first used (`ensure_inbox`),
        and that creation is what a push script sees (MailboxCreate INBOX at
        the first SELECT; docs/dovecot-reference.md#inbox-is-created-on-first-use).
        """
        assert self.user is not None
        wanted = [(name, use) for name, use in self.options.default_mailboxes
                  if name.upper() != INBOX]
        if not wanted:
            return
        existing = {box.name for box in await self.store.list_mailboxes(self.user)}
        if any(name not in existing for name, _ in wanted):
            await self.store.ensure_mailboxes(self.user, wanted)

    async def ensure_inbox(self, name: str) -> None:
        """Create INBOX on first use, if `name` is INBOX (SELECT, EXAMINE, STATUS, APPEND,
        COPY, MOVE): the MailboxCreate push event fires then, as in Dovecot.

        Once per connection a read checks it exists; only a missing INBOX costs a write.
        """
        if self._inbox_exists or name.upper() != INBOX:
            return
        assert self.user is not None
        try:
            await self.store.mailbox(self.user, INBOX)
        except (MailboxNotFoundError, UnknownUserError):
            await self.store.ensure_mailboxes(self.user, [(INBOX, None)])
        self._inbox_exists = True

    async def start_notify(
        self,
        settings: NotifySettings,
        fetch_new: Callable[[list[int]], Awaitable[None]] | None,
    ) -> list[MailboxStatus]:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self.notify = settings
        self._notify_fetch = fetch_new
        if not settings.filters:
            return []
        watch = MailboxWatch(
            settings, self.store, self.require_user(),
            emit=self._notify_line,
            selected=lambda: self.view.name if self.view is not None else None,
            condstore=lambda: self.condstore,
        )  # fmt: skip
        covered = await watch.prime()
        self._watch = watch
        return covered

    def _notify_line(self, line: bytes) -> None:
        """A line of the watch: now between commands, after the tagged reply otherwise."""
        if self._busy:
            self._notify_lines.append(line)
            return
        self.out.add(line)
        self.out.flush()

    def _write_notify_lines(self) -> None:
        if self._notify_lines:
            for line in self._notify_lines:
                self.out.add(line)
            self._notify_lines.clear()
            self.out.flush()

    def begin_select(self) -> None:
        """Start buffering hub changes: a SELECT is about to read the mailbox."""
        self.view = None
        self.search_updates.clear()
        self.state = State.AUTHENTICATED
        self._loading = []

    def finish_select(self, view: MailboxView | None) -> None:
        loading, self._loading = self._loading or [], None
        self.view = view
        if view is None:
            return
        self.state = State.SELECTED
        for change in loading:
            if isinstance(change, ChangedElsewhere):
                self._heard_elsewhere(change)
            else:
                view.on_change(change)
        if view.needs_read:
            self._read_store(view)

    def enable_condstore(self) -> None:
        """CONDSTORE on (ENABLE, or a command that uses it); a selected mailbox's
        HIGHESTMODSEQ is said then, as Dovecot does, since SELECT did not say it."""
        if self.condstore:
            return
        self.condstore = True
        if self.view is not None:
            self.out.line(f"* OK [HIGHESTMODSEQ {self.view.highestmodseq}] Highest")

    def enable_qresync(self) -> None:
        self.enable_condstore()
        if not self.qresync and self.view is not None:
            # What the client knows of the selected mailbox starts here.
            self.view.qresync_highest(expunges_delayed=False)
        self.qresync = True

    def unselect(self) -> None:
        self.view = None
        self.search_updates.clear()
        self._loading = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def require_view(self) -> MailboxView:
        if self.view is None:
            raise CommandFailedError("No mailbox selected")
        if self.view.deleted:
            raise CommandFailedError("[NONEXISTENT] Selected mailbox was deleted")
        return self.view

    # --- untagged updates ------------------------------------------------------------

    @property
    def _pushing(self) -> bool:
        """Whether the selected mailbox's changes go out as they come: in IDLE, and
        between commands once NOTIFY named the selected mailbox (RFC 5465 §3)."""
        if self._idling:
            return True
        notify = self.notify
        return notify is not None and notify.selected and not self._busy

    def _on_change(self, change: Change) -> None:
        if self._watch is not None:
            self._watch.on_change(change)
        if self._loading is not None:
            self._loading.append(change)
            return
        if isinstance(change, ChangedElsewhere):
            self._heard_elsewhere(change)
            return
        view = self.view
        if view is None or not view.on_change(change):
            return
        if view.needs_read:  # another process committed before this: read both in order
            self._read_store(view)
            return
        if self._pushing:
            self._push_updates()

    def _push_updates(self) -> None:
        """Write the selected mailbox's news now (IDLE, or NOTIFY between commands)."""
        self._write_updates(allow_expunge=self._push_expunges)
        self.out.flush()
        if self.state is State.LOGOUT and not self._idling:
            self.stream.close()  # the mailbox was deleted: BYE said, nothing to wait for
        view = self.view
        if view is not None and self.search_updates and view.search_changes:
            task = asyncio.get_running_loop().create_task(self._push_search_updates(view))
            self._search_pushes.add(task)
            task.add_done_callback(self._search_pushes.discard)

    async def _push_search_updates(self, view: MailboxView) -> None:
        """The UPDATE searches' news after the updates just pushed (it reads the store),
        and after the RECENT of new mail, as in a command's answer."""
        claim = self._recent_claim
        if claim is not None and not claim.done():
            await asyncio.wait([claim])
        await refresh_search_updates(self, view)
        if self._pushing:
            self.out.flush()

    @property
    def _push_expunges(self) -> bool:
        """EXPUNGE may go out unasked: in IDLE, and between commands under NOTIFY SELECTED
        (SELECTED-DELAYED keeps them for the next command that allows them)."""
        return self._idling or (self.notify is not None and self.notify.immediate_expunges)

    def _heard_elsewhere(self, change: ChangedElsewhere) -> None:
        """Another process committed changes: read them from the store (one read at a
        time; one more after it when news came meanwhile) into the view."""
        view = self.view
        if view is None or (change.mailbox is not None and change.mailbox != view.name):
            return
        self._read_store(view)

    def _read_store(self, view: MailboxView) -> None:
        """Read the store's changes since the view's modseq into it, soon."""
        if self._resync is not None and not self._resync.done():
            self._resync_again = True
            return
        self._resync = asyncio.get_running_loop().create_task(self._read_elsewhere(view))

    async def _catch_up(self) -> None:
        """Before a command's answer: take in what other processes committed to the
        selected mailbox, as Dovecot syncs its index at the end of every command.

        A client that saw another connection's CLOSE answered and then sent NOOP
        here must be told of its expunges, also when another worker served the
        CLOSE (imaptest's `close`, `copy`, `expunge2`). That worker's announcement
        was sent before its answer, but this loop may run the NOOP before the
        feed's reader. So the hub is settled first (the feed's queue is read now,
        `ChangeHub.settle`): what it names for this mailbox is read from the store
        and awaited; nothing named, nothing read. A feed that cannot promise that
        (PostgreSQL's, or none) leaves one read of the store, `changes_since` the
        view's modseq. Local changes came as records already."""
        view = self.view
        if view is None or self.user is None or view.deleted:
            return
        if self.store.hub.settle():
            resync = self._resync
            if resync is not None and not resync.done():
                await asyncio.wait([resync])
            if not view.needs_read:
                return
        try:
            changes = await self.store.changes_since(self.user, view.name, view.highestmodseq)
        except MailboxNotFoundError:
            view.deleted = True
        except StoreError:
            log.warning("reading changes made elsewhere in %s failed", view.name,
                        exc_info=True)  # fmt: skip
        else:
            if self.view is view:
                view.on_resync(changes)

    async def _read_elsewhere(self, view: MailboxView) -> None:
        assert self.user is not None
        while True:
            self._resync_again = False
            try:
                changes = await self.store.changes_since(
                    self.user, view.name, view.highestmodseq
                )
            except MailboxNotFoundError:
                view.deleted = True
            except StoreError:
                log.warning("reading changes made elsewhere in %s failed", view.name,
                            exc_info=True)  # fmt: skip
                return
            else:
                if self.view is not view:
                    return
                view.on_resync(changes)
            if self.view is view and self._pushing and (view.has_pending or view.deleted):
                self._push_updates()
            if not self._resync_again:
                return

    def _with_highestmodseq(self, result: str, expunge_allowed: bool) -> str:
        """QRESYNC: the HIGHESTMODSEQ after a sync goes into a tagged `OK` without a
        code, else in an untagged OK before it (Dovecot's imap-sync.c)."""
        view = self.view
        if not self.qresync or view is None:
            return result
        modseq = view.qresync_highest(
            expunges_delayed=not expunge_allowed and view.has_pending_expunges
        )
        if modseq is None:
            return result
        if result.startswith("OK ") and not result.startswith("OK ["):
            return f"OK [HIGHESTMODSEQ {modseq}] {result[3:]}"
        self.out.line(f"* OK [HIGHESTMODSEQ {modseq}] Highest")
        return result

    async def send_updates(self, allow_expunge: bool) -> None:
        """Add pending EXPUNGE/EXISTS/RECENT/FETCH lines to the response being built."""
        view = self.view
        if view is None:
            return
        new_uids = self._write_updates(allow_expunge, defer_recent=True)
        if new_uids:
            await self._claim_recent(view, new_uids)
            if self._notify_fetch is not None and self._counts_changes:
                await self._notify_fetch(new_uids)
        if self.view is view and view.search_changes is not None:
            if self.search_updates:
                await refresh_search_updates(self, view)  # after EXISTS, as Dovecot
            else:
                view.search_changes = None  # none followed now (cancelled, or it failed)

    @property
    def _counts_changes(self) -> bool:
        """EXISTS, EXPUNGE and RECENT of the selected mailbox are said (NOTIFY may
        leave MessageNew out: Dovecot then says none of them, even after EXPUNGE)."""
        return self.notify is None or self.notify.count_changes

    def _write_updates(self, allow_expunge: bool, defer_recent: bool = False) -> list[int]:
        view = self.view
        if view is None:
            return []
        if view.deleted:
            self._say_bye("Selected mailbox was deleted, have to disconnect.")
            self.state = State.LOGOUT
            self.view = None
            return []
        if not view.has_pending:
            return []
        updates = view.take_updates(allow_expunge)
        out = self.out
        counts = self._counts_changes
        if updates.expunged_uids and self.search_updates:
            # UPDATE searches lose expunged messages first, in the numbering they leave.
            before = [seq + k for k, seq in enumerate(updates.expunged)]
            for line in self.search_updates.expunged_lines(updates.expunged_uids, before):
                out.line(line)
        # Dovecot's order: EXPUNGE, FLAGS before the FETCH that uses a new keyword, EXISTS.
        if not counts:
            pass
        elif self.qresync and updates.expunged_uids:
            out.add(b"* VANISHED %s\r\n" % format_uid_ranges(updates.expunged_uids).encode())
        else:
            for seq in updates.expunged:
                out.add(b"* %d EXPUNGE\r\n" % seq)
        if updates.new_keywords:
            self.write_flags_lines(view)
        if self.notify is not None and not self.notify.flag_changes:
            updates.flags = []
        for seq, uid, flags, keywords in updates.flags:
            text = format_flags(flags, keywords, uid in view.recent).encode()
            if self.condstore:
                # Dovecot's form: MODSEQ before FLAGS; the UID only under QRESYNC.
                modseq = view.modseq_of(uid)
                view.fetched(modseq)
                prefix = b"UID %d " % uid if self.qresync else b""
                out.add(b"* %d FETCH (%sMODSEQ (%d) FLAGS %s)\r\n" % (seq, prefix, modseq, text))
            else:
                out.add(b"* %d FETCH (UID %d FLAGS %s)\r\n" % (seq, uid, text))
        if updates.exists is not None:
            if counts:
                out.add(b"* %d EXISTS\r\n" % updates.exists)
            if updates.new_uids:
                if defer_recent:
                    return updates.new_uids
                self._recent_claim = asyncio.get_running_loop().create_task(
                    self._claim_recent_and_flush(view, updates.new_uids)
                )
                return []
        self._report_recent(view)
        if self._pushing:
            self._idle_highestmodseq(view)
        return []

    def _idle_highestmodseq(self, view: MailboxView) -> None:
        """In IDLE there is no tagged reply to carry QRESYNC's HIGHESTMODSEQ: an untagged
        OK follows the updates, as Dovecot sends it."""
        if self.qresync:
            modseq = view.qresync_highest(expunges_delayed=False)
            if modseq is not None:
                self.out.line(f"* OK [HIGHESTMODSEQ {modseq}] Highest")

    async def _claim_recent(self, view: MailboxView, new_uids: list[int]) -> None:
        """Take `\\Recent` for new messages no other session saw first; report RECENT.

        Only messages this session has announced are claimed (up to the highest
        new UID), so RECENT never exceeds the EXISTS the client knows. A
        read-only session claims nothing but, as Dovecot's, shows `\\Recent` on
        those no session has claimed yet.
        """
        assert self.user is not None
        try:
            if view.readonly:
                infos = await self.store.messages(self.user, view.name, new_uids)
                claimed = [info.uid for info in infos if info.recent]
            else:
                claimed = await self.store.take_recent(self.user, view.name, new_uids[-1])
        except StoreError:
            claimed = []
        view.recent.update(claimed)
        self._report_recent(view)

    def _report_recent(self, view: MailboxView) -> None:
        """`* n RECENT` when this session's count changed since it last said one (as Dovecot)."""
        if len(view.recent) != view.recent_reported:
            view.recent_reported = len(view.recent)
            if self._counts_changes:
                self.out.add(b"* %d RECENT\r\n" % view.recent_reported)

    async def _claim_recent_and_flush(self, view: MailboxView, new_uids: list[int]) -> None:
        await self._claim_recent(view, new_uids)
        if self.view is not view:
            return
        if self._notify_fetch is not None and self._counts_changes:
            await self._notify_fetch(new_uids)
        if self._pushing:
            self._idle_highestmodseq(view)
            self.out.flush()

    def write_flags_lines(self, view: MailboxView) -> None:
        names = " ".join(view.keyword_names)
        system = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
        flags = f"{system} {names}".strip()
        self.out.line(f"* FLAGS ({flags})")
        if view.readonly:
            self.out.line("* OK [PERMANENTFLAGS ()] Read-only mailbox.")
        else:
            self.out.line(f"* OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted.")

    # --- waiting for the client: IDLE, continuations, TLS -----------------------------------

    async def wait_in_idle(self) -> bytes | None:
        """Updates go out from the hub callback meanwhile (see `_on_change`)."""
        await self.send_updates(allow_expunge=True)
        self.out.flush()
        self._idling = True
        self._busy = False
        try:
            async with asyncio.timeout(self.options.idle_timeout):
                return await self.stream.readline(self.options.max_line_length)
        except TimeoutError:
            self.state = State.LOGOUT
            self._say_bye("Disconnected for inactivity.")
            return None
        finally:
            self._idling = False
            self._busy = True

    async def ask_continuation(self, request: str) -> bytes:
        self.out.line(request)
        self.out.flush()
        return await self.stream.readline(self.options.max_line_length)

    async def start_tls(self, context: ssl.SSLContext, reply: str) -> None:
        self.out.line(f"{self._tag} {reply}")
        self.out.flush()
        await self.stream.start_tls(context)
        self.out.set_transport(self.stream)
        self.login_log.tls_started()

    @property
    def compression_active(self) -> bool:
        return self.stream.compressed

    def start_compression(self, reply: str) -> None:
        self.out.line(f"{self._tag} {reply}")
        self.out.flush()
        self.stream.start_compression()


def _names_append(first_line: bytes) -> bool:
    """Whether a command's first line is an APPEND (`tag APPEND ...`)."""
    words = first_line.split(b" ", 2)
    return len(words) > 1 and words[1].upper() == b"APPEND"


def _names_setmetadata(first_line: bytes) -> bool:
    """Whether a command's first line is a SETMETADATA, whose values may be literals."""
    words = first_line.split(b" ", 2)
    return len(words) > 1 and words[1].upper() == b"SETMETADATA"


def _local_host(stream: ImapStream) -> str:
    """The address the client connected to (Dovecot's `lip`)."""
    transport = stream.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    return str(local[0]) if isinstance(local, tuple) else ""


def _is_loopback(host: str) -> bool:
    """Dovecot calls a connection from this host `secured` even without TLS."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
