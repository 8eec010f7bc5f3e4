"""RFC 2033 LMTP on top of aiosmtpd: one reply per accepted recipient.

aiosmtpd owns the wire (command parsing, dot-unstuffing, SIZE, pipelining);
`LmtpHandler` resolves recipients and hands the message to the delivery
agent, one store operation per recipient, run concurrently so that all
recipients of a transaction share one group commit. A reply is sent only
after the store committed, so a 250 means the mail is on disk.

Every accepted recipient gets exactly one reply after DATA, whatever the
recipients' addresses hold: an address is checked when it is given (RCPT and
MAIL answer `501` for a path that is not RFC 5321 syntax, `path_syntax`, or
holds bytes that are not UTF-8, and `553 5.6.7` for a non-ASCII address in a
transaction that did not declare SMTPUTF8, RFC 6531), and a reply line can
never fail to encode
(`MailpushLMTP.push`), so nothing the client sent can turn a stored
message's 250 into an error the MTA would bounce.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, Envelope, Session

from ..delivery import DeliveryAgent, DeliveryRequest
from ..errors import MailpushError, StoreError
from ..listener import bound_address, listen
from ..logs.session import LogSession, enter_session, new_session_id
from ..service_metrics import LmtpMetrics
from .data_reader import read_data
from .path_syntax import PathSyntaxError, parse_path

log = logging.getLogger(__name__)

#: Longest line accepted inside DATA (and longest command line read). Longer
#: lines get `500 5.5.2` and the message is refused whole: nothing is stored.
MAX_LINE_LENGTH = 1024 * 1024

#: Resolves an envelope recipient (detail already removed) to a user name, or None.
RecipientResolver = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class LmtpOptions:
    address: str = "127.0.0.1"
    port: int = 2424
    hostname: str = field(default_factory=socket.gethostname)
    max_message_size: int = 50 * 1024 * 1024
    recipient_delimiter: str = "+"
    #: Idle seconds before a connection is dropped.
    timeout: float = 300.0


@dataclass(slots=True)
class _Recipient:
    address: str
    user: str
    detail: str | None


class LmtpHandler:
    """aiosmtpd hooks: RCPT resolves users, DATA delivers to each of them."""

    def __init__(
        self,
        agent: DeliveryAgent,
        resolve: RecipientResolver,
        options: LmtpOptions,
        metrics: LmtpMetrics | None = None,
    ) -> None:
        self._agent = agent
        self._resolve = resolve
        self._options = options
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.metrics = metrics or LmtpMetrics()
        #: The open connections (`mailpush who`).
        self.connections: set[MailpushLMTP] = set()

    def reconfigure(
        self, agent: DeliveryAgent, resolve: RecipientResolver, options: LmtpOptions
    ) -> None:
        """A reload: every DATA from now on, on open connections too, uses these."""
        self._agent, self._resolve, self._options = agent, resolve, options

    def opened(self, connection: MailpushLMTP) -> None:
        self.connections.add(connection)
        self.metrics.connections.inc()
        self.metrics.connections_current.inc()

    def closed(self, connection: MailpushLMTP) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self.metrics.connections_current.dec()

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        extra = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        return responses[:1] + extra + responses[1:]

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        problem = address_problem(address, envelope.smtp_utf8, "recipient")
        if problem is not None:
            log.info("rcpt refused: %s", problem)
            return problem
        local, detail = split_detail(address, self._options.recipient_delimiter)
        try:
            user = self._resolve(local)
        except MailpushError as exc:
            log.error("rcpt %s: user lookup failed: %s", address, exc)
            return f"451 4.3.0 <{address}> Temporary user lookup failure"
        if user is None:
            log.info("rcpt %s: unknown user", address)
            return f"550 5.1.1 <{address}> User doesn't exist: {address}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        recipients: list[_Recipient] = getattr(envelope, "mailpush_recipients", [])
        recipients.append(_Recipient(address, user, detail))
        envelope.mailpush_recipients = recipients  # type: ignore[attr-defined]
        return "250 2.1.5 OK"

    async def handle_MAIL(  # noqa: N802
        self, server: Any, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        if address != "<>":
            problem = address_problem(address, envelope.smtp_utf8, "sender")
            if problem is not None:
                log.info("mail from refused: %s", problem)
                return problem
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.mailpush_recipients = []  # type: ignore[attr-defined]
        return "250 2.1.0 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        recipients: list[_Recipient] = getattr(envelope, "mailpush_recipients", [])
        started = time.perf_counter()
        self._in_flight += 1
        self._idle.clear()
        try:
            transaction = _transaction_log_session(server, session)
            replies = await asyncio.gather(*(
                self._deliver_one(r, raw, envelope.mail_from, transaction.for_recipient(r.user, n))
                for n, r in enumerate(recipients, 1)
            ))  # fmt: skip
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
        self.metrics.delivered(len(raw), replies, time.perf_counter() - started)
        return "\r\n".join(replies)

    async def _deliver_one(
        self, rcpt: _Recipient, raw: bytes, sender: str | None, log_session: LogSession
    ) -> str:
        # Its own task (gather): the prefix is this recipient's only.
        enter_session(log_session)
        # aiosmtpd hands over the null sender as "<>"; the request holds it as "".
        envelope_sender = "" if sender in (None, "<>") else sender
        request = DeliveryRequest(
            rcpt.user, raw, rcpt.address, rcpt.detail, sender=envelope_sender
        )
        try:
            # Shielded: a client that disconnects mid-commit must not cancel a
            # delivery the store may already have made durable.
            saved = await asyncio.shield(self._agent.deliver(request))
        except StoreError as exc:
            log.error("delivery to %s (from <%s>) failed: %s", rcpt.address, sender, exc)
            return f"451 4.2.0 <{rcpt.address}> Temporary failure saving the message"
        except Exception:
            # A bug must never turn into a permanent refusal (the MTA would bounce the
            # mail): answer "try later", so the message stays queued at the MTA.
            log.exception("delivery to %s (from <%s>) failed unexpectedly", rcpt.address, sender)
            return f"451 4.3.0 <{rcpt.address}> Internal error, try again later"
        if not saved:  # discarded by Sieve: accepted, nothing stored
            return f"250 2.0.0 <{rcpt.address}> Saved"
        return f"250 2.0.0 <{rcpt.address}> Saved (uid {saved[-1].messages[0].uid})"

    async def wait_idle(self) -> None:
        """Return when no DATA is being delivered."""
        await self._idle.wait()

    async def handle_exception(self, error: Exception) -> str:
        """A bug in a command handler: "try again later", never a permanent 5xx.

        aiosmtpd's own answer is `500 Error: (ExceptionName) message`, which
        makes the MTA bounce the mail and echoes internal text to the client.
        DATA never gets here: `_deliver_one` answers for each recipient itself.
        """
        log.error("command failed unexpectedly", exc_info=error)
        return "451 4.3.0 Internal error, try again later"


class MailpushLMTP(LMTP):
    """aiosmtpd's LMTP with long lines allowed and enhanced status codes everywhere."""

    line_length_limit = MAX_LINE_LENGTH

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Accepted recipients of the DATA command being read; 0 outside DATA.
        self._data_recipients = 0
        #: Once `354` is sent: how many replies the message owes (one per accepted
        #: recipient, RFC 2033); 0 otherwise.
        self._replies_owed = 0
        #: When the client connected (`mailpush who`).
        self.connected_at = time.time()
        #: Dovecot's lmtp session id (22 characters) and how many DATA it has seen.
        self.log_session_id = new_session_id(16)
        self.transactions = 0
        #: Replies held back while the client's next pipelined command is already read.
        self._unsent: list[bytes] = []
        #: "sender" or "recipient" while MAIL or RCPT runs (whose reply may wait for the
        #: next one); the refusal of its bad path.
        self._path_role: str | None = None
        self._path_refusal: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connected_at = time.time()
        self.event_handler.opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.event_handler.closed(self)

    @property
    def recipients(self) -> list[str]:
        """The users the transaction under way delivers to (`mailpush who`), maybe none."""
        found: list[_Recipient] = getattr(self.envelope, "mailpush_recipients", None) or []
        return [rcpt.user for rcpt in found]

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's name
        """aiosmtpd's DATA, with every refusal after `354` said once per recipient.

        aiosmtpd answers a line too long or a message too large with a single
        reply, as SMTP would; an LMTP client waits for one per recipient and
        hangs (or misreads the next transaction's replies). A handler that fails
        unexpectedly after `354` gets the same treatment.
        """
        self._data_recipients = len(self.envelope.rcpt_tos) if self.envelope is not None else 0
        try:
            await self._data(arg)
        except ConnectionError:
            raise
        except Exception as error:
            if not self._replies_owed:
                raise
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd, untyped
            await self.push(await self.handle_exception(error))
        finally:
            self._data_recipients = 0
            self._replies_owed = 0

    async def _data(self, arg: str) -> None:
        """aiosmtpd's DATA, its section read by `data_reader` in a few steps, not per line.

        The checks, replies and handler call are aiosmtpd's, in its order (the
        message is bytes: the server is made with `decode_data=False`)."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert envelope is not None
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            read = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            # aiosmtpd cancels the command when the client hangs up.
            log.info("Connection lost during DATA")
            self._writer.close()
            raise
        if read.refusal is not None:
            await self.push(read.refusal.value)
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd, untyped
            return
        envelope.content = envelope.original_content = read.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd, untyped
        await self.push("250 OK" if status is MISSING else status)

    def _strip_command_keyword(self, keyword: str, arg: str) -> str | None:
        """aiosmtpd's, but a space after `FROM:` / `TO:` stays, for `_getaddr` to refuse
        (RFC 5321 section 3.3 permits none; Dovecot refuses it too)."""
        if arg[: len(keyword)].upper() == keyword:
            return arg[len(keyword):].rstrip()
        return None

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The path of MAIL or RCPT as RFC 5321 writes it (`path_syntax`), and its parameters.

        aiosmtpd's own reads it with the stdlib's RFC 5322 header parser, which
        took malformed paths and was a sixth of a delivery's CPU time. A path
        that is not RFC 5321 syntax is refused with why (`_path_refusal`, sent
        by `push` in place of aiosmtpd's "553 malformed address")."""
        if not arg:
            return "", ""  # aiosmtpd answers its syntax line
        try:
            path = parse_path(arg)
            if not path.address and self._path_role == "recipient":
                raise PathSyntaxError("Null path not allowed")
        except PathSyntaxError as exc:
            if self._path_role is not None:
                verb, code = _PATH_REFUSALS[self._path_role]
                self._path_refusal = f"501 {code} Invalid {verb}: {exc}"
            return None, None
        if not path.address:
            return "<>", path.rest  # the null sender, as aiosmtpd hands it over
        local_part = path.address.rpartition("@")[0]
        if self.local_part_limit and len(local_part) > self.local_part_limit:
            return None, None
        return path.address, path.rest

    async def push(self, status: Any) -> None:
        """Send a reply; every line gets an enhanced code and always encodes.

        After `354`, a one-line reply to a message with several recipients is a
        refusal of the whole message and goes out once per recipient. A reply may
        echo what the client sent (an address, an unknown command name): control
        characters and bytes that were not UTF-8 (decoded as surrogates) become
        `?`, so writing the reply cannot fail, above all not after DATA, when the
        message is already stored.
        """
        if status == _MALFORMED_ADDRESS and self._path_refusal is not None:
            status, self._path_refusal = self._path_refusal, None
        if isinstance(status, str):
            lines = status.split("\r\n")
            if self._replies_owed and len(lines) != self._replies_owed:
                # One refusal for the whole message: each recipient gets it.
                lines = lines[:1] * self._replies_owed
            status = "\r\n".join(
                _with_enhanced_code(_REPLY_UNSAFE.sub("?", line)) for line in lines
            )
            for line in lines:
                self.event_handler.metrics.reply(line)
            if status.startswith("354") and self._data_recipients:
                self._replies_owed, self._data_recipients = self._data_recipients, 0
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        self._unsent.append(status + b"\r\n")
        if self._path_role is not None and self._command_waiting():
            return
        self._writer.write(b"".join(self._unsent))
        self._unsent.clear()
        await self._writer.drain()

    async def smtp_MAIL(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's name
        """aiosmtpd's MAIL, whose reply may go out with the next (`_command_waiting`)."""
        with self._path_command("sender"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's name
        """aiosmtpd's RCPT, whose reply may go out with the next (`_command_waiting`)."""
        with self._path_command("recipient"):
            await super().smtp_RCPT(arg)

    @contextlib.contextmanager
    def _path_command(self, role: str) -> Iterator[None]:
        """While MAIL or RCPT runs: its reply may be held, and a bad path is its `role`'s."""
        self._path_role = role
        try:
            yield
        finally:
            self._path_role, self._path_refusal = None, None

    def _command_waiting(self) -> bool:
        """Whether the client's next command line is read already (pipelined, RFC 2920).

        Its reply follows at once, so a reply to MAIL or RCPT waits to go out
        with it: one write and one wake-up of the client for the MAIL, RCPT and
        DATA an MTA sends together, not three. Only those two are held: every
        other reply (`354`, which the client waits for; a message's; `221`
        and the refusals after which aiosmtpd closes the connection) sends
        whatever was held with it, so nothing held is ever cut off. Nor is a
        reply held while the next read could wait for the client (RFC 2920
        section 3.2)."""
        buffered = getattr(self._reader, "_buffer", None)
        return buffered is not None and b"\n" in buffered


@dataclass(frozen=True, slots=True)
class _TransactionLogSession:
    """The log session ids of one DATA, as Dovecot 2.3's lmtp numbers them (observed):
    the connection's id, `:T<n>` from its second transaction on, `:R<n>` from the
    second recipient on (`GALCHgHIE2sJTgAAg+zDdQ:T2:R2`)."""

    session_id: str
    rip: str
    lip: str

    def for_recipient(self, user: str, number: int) -> LogSession:
        session_id = self.session_id if number == 1 else f"{self.session_id}:R{number}"
        return LogSession.for_user("lmtp", user, session_id, self.rip, self.lip)


def _transaction_log_session(server: Any, session: Session) -> _TransactionLogSession:
    if isinstance(server, MailpushLMTP):
        server.transactions += 1
        session_id = server.log_session_id
        if server.transactions > 1:
            session_id += f":T{server.transactions}"
        transport = server.transport
        local = transport.get_extra_info("sockname") if transport is not None else None
    else:
        session_id, local = new_session_id(16), None
    rip = session.peer[0] if isinstance(session.peer, tuple) else ""
    lip = local[0] if isinstance(local, tuple) else ""
    return _TransactionLogSession(session_id, str(rip), str(lip))


#: aiosmtpd's reply when `_getaddr` could not read a path.
_MALFORMED_ADDRESS = "553 5.1.3 Error: malformed address"
#: The verb Dovecot's refusal names and the RFC 3463 code, per role of the path.
_PATH_REFUSALS = {"sender": ("FROM", "5.1.7"), "recipient": ("TO", "5.1.3")}
#: What a reply line must not carry: control characters, and the surrogates that
#: stand for bytes that were not UTF-8 (aiosmtpd decodes with surrogateescape).
_REPLY_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
#: What an envelope address must not contain at all.
_ADDRESS_INVALID = _REPLY_UNSAFE
_ENHANCED = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)")
_DEFAULT_ENHANCED = {
    "221": "2.0.0", "250": "2.0.0", "252": "2.0.0", "421": "4.3.0", "451": "4.3.0",
    "452": "4.3.1", "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1",
    "504": "5.5.4", "550": "5.1.1", "552": "5.3.4", "554": "5.0.0", "555": "5.5.4",
}


def _with_enhanced_code(line: str) -> str:
    """RFC 2034 wants a code in every 2xx/4xx/5xx reply, aiosmtpd's own replies included.

    The greeting (220) and LHLO capability lines (`250-…`, `250 HELP`) take none.
    """
    if (
        len(line) < 4
        or line[0] not in "245"
        or line[3] == "-"
        or line.startswith("220")
        or line == "250 HELP"
        or _ENHANCED.match(line)
    ):
        return line
    code = _DEFAULT_ENHANCED.get(line[:3], f"{line[0]}.0.0")
    return f"{line[:4]}{code} {line[4:]}"


def address_problem(address: str, smtputf8: bool, role: str) -> str | None:
    """The refusal for an unusable MAIL FROM / RCPT TO address, or None when it is fine.

    `role` is "sender" or "recipient". Control characters and bytes that are
    not UTF-8 are a syntax error (`501`, RFC 5321 §4.1.2 allows neither). A
    UTF-8 address needs SMTPUTF8 on MAIL FROM (RFC 6531); without it the
    address is refused with `553 5.6.7` before anything is stored.
    """
    code = "5.1.3" if role == "recipient" else "5.1.7"
    if _ADDRESS_INVALID.search(address):
        return f"501 {code} Bad {role} address syntax"
    if not smtputf8 and not address.isascii():
        shown = address.encode("ascii", "replace").decode("ascii")
        return (
            f"553 5.6.7 <{shown}> Non-ASCII {role} address not permitted"
            " without SMTPUTF8"
        )
    return None


def split_detail(address: str, delimiter: str) -> tuple[str, str | None]:
    """`alice+work@example.org` → (`alice@example.org`, `work`)."""
    if not delimiter:
        return address, None
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    for ch in delimiter:
        if ch in local:
            base, _, detail = local.partition(ch)
            return (f"{base}@{domain}" if at else base), detail
    return address, None


class LmtpServer:
    """The listening LMTP service."""

    def __init__(
        self,
        agent: DeliveryAgent,
        resolve: RecipientResolver,
        options: LmtpOptions,
        metrics: LmtpMetrics | None = None,
    ) -> None:
        self.options = options
        self.handler = LmtpHandler(agent, resolve, options, metrics)
        self._server: asyncio.Server | None = None

    def reconfigure(
        self, agent: DeliveryAgent, resolve: RecipientResolver, options: LmtpOptions
    ) -> None:
        """A reload: new connections get `options` (size limit, hostname); every DATA from
        now on is delivered by `agent` to users `resolve` finds. The address stays."""
        self.options = options
        self.handler.reconfigure(agent, resolve, options)

    def _protocol(self) -> MailpushLMTP:
        return MailpushLMTP(
            self.handler,
            data_size_limit=self.options.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.options.hostname,
            ident="mailpush LMTP",
            timeout=self.options.timeout,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> tuple[str, int]:
        self._server = await listen(
            "lmtp", self._protocol, self.options.address, self.options.port
        )
        return bound_address(self._server)

    async def stop(self, timeout: float) -> None:
        """Stop accepting, let in-flight deliveries finish (up to `timeout` s), then close."""
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self.handler.wait_idle(), timeout)
        except TimeoutError:
            log.warning("deliveries still running after %.0fs at shutdown", timeout)
        self._server = None
