"""Commands before login: STARTTLS, LOGIN and AUTHENTICATE PLAIN.

The credentials check and the move to the authenticated state (penalty,
limits, logging) are the session's `login`; these handlers read the
credentials off the wire. AUTHENTICATE's SASL exchange is RFC 4616 PLAIN,
with the RFC 4959 initial response.
"""

from __future__ import annotations

import base64
import binascii

from .command_arguments import ASTRING
from .command_errors import AlreadyAnswered, CommandFailedError
from .command_spec import Argument, CommandSpec, command, optional
from .parser import CommandSyntaxError, Tokenizer
from .session_protocol import Session
from .states import NOT_AUTHENTICATED

__all__ = ["LOGIN_COMMANDS", "authenticate", "login", "starttls"]


async def starttls(conn: Session) -> str:
    context = conn.options.starttls
    if context is None:
        raise CommandSyntaxError("STARTTLS is not available")
    if conn.tls_active:
        raise CommandSyntaxError("TLS is already active")
    # The tagged OK must precede the handshake, in the clear.
    await conn.start_tls(context, "OK Begin TLS negotiation now.")
    raise AlreadyAnswered


async def login(conn: Session, user: str, password: str) -> str:
    return await conn.login(user, password)


async def authenticate(conn: Session, mechanism: str, initial: bytes | None) -> str:
    if mechanism != "PLAIN":
        raise CommandFailedError("Unsupported authentication mechanism.")
    if not conn.plaintext_allowed():
        conn.log_auth("Login refused (plaintext authentication disabled)", "", mechanism)
        raise CommandFailedError(
            "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure"
            " (SSL/TLS) connections."
        )
    if initial is None:
        initial = await conn.ask_continuation("+ ")
    if initial.strip() == b"*":
        raise CommandSyntaxError("Authentication aborted by client")
    if initial == b"=":
        initial = b""
    try:
        decoded = base64.b64decode(initial, validate=True)
    except (binascii.Error, ValueError):
        raise CommandSyntaxError("Invalid base64 data in continued response") from None
    fields = decoded.split(b"\x00")
    if len(fields) != 3:
        raise CommandFailedError("[AUTHENTICATIONFAILED] Authentication failed.")
    authzid, authcid, password = (f.decode("utf-8", "replace") for f in fields)
    if authzid and authzid != authcid:
        raise CommandFailedError("[AUTHORIZATIONFAILED] Authorization failed.")
    return await conn.login(authcid, password, mechanism)


# --- arguments -------------------------------------------------------------------------


def _mechanism(tokens: Tokenizer, conn: Session) -> str:
    return tokens.atom("mechanism").upper()


def _initial_response(tokens: Tokenizer, conn: Session) -> bytes:
    return tokens.astring()


_MECHANISM = Argument("auth-type", _mechanism)
_INITIAL_RESPONSE = optional(Argument("initial-resp", _initial_response))

LOGIN_COMMANDS: tuple[CommandSpec, ...] = (
    command("STARTTLS", NOT_AUTHENTICATED, starttls),
    command("LOGIN", NOT_AUTHENTICATED, login, ASTRING, ASTRING),
    command("AUTHENTICATE", NOT_AUTHENTICATED, authenticate, _MECHANISM, _INITIAL_RESPONSE),
)
