"""Commands about the session itself: CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, IDLE."""

from __future__ import annotations

from .. import __version__
from .command_errors import CommandFailedError
from .command_spec import Argument, CommandSpec, command
from .parser import CommandSyntaxError, Tokenizer
from .session_protocol import Session
from .states import ANY_STATE, AUTHENTICATED, State

__all__ = [
    "SESSION_COMMANDS", "capability", "enable", "id_", "idle", "logout", "namespace", "noop",
]  # fmt: skip

#: More ID parameters than this is a BAD (RFC 2971 allows at most 30).
MAX_ID_PARAMETERS = 30


async def capability(conn: Session) -> str:
    conn.out.line(f"* CAPABILITY {conn.capabilities()}")
    return "OK Pre-login capabilities listed, post-login capabilities have more."


async def noop(conn: Session) -> str:
    return "OK NOOP completed."


async def logout(conn: Session) -> str:
    conn.out.line("* BYE Logging out")
    conn.unselect()
    conn.state = State.LOGOUT
    return "OK Logout completed."


async def id_(conn: Session, parameters: list[tuple[bytes, bytes | None]] | None) -> str:
    conn.out.line(f'* ID ("name" "mailpush" "version" "{__version__}")')
    return "OK ID completed."


async def enable(conn: Session, capabilities: list[str]) -> str:
    """CONDSTORE and QRESYNC (RFC 7162) are what can be enabled; others are ignored.

    As Dovecot, `* ENABLED` names each known one asked for, even when it was on
    already, and QRESYNC turns CONDSTORE on without naming it.
    """
    enabled: list[str] = []
    for name in (c.upper() for c in capabilities):
        if name == "CONDSTORE":
            conn.enable_condstore()
        elif name == "QRESYNC":
            conn.enable_qresync()
        else:
            continue
        if name not in enabled:
            enabled.append(name)
    conn.out.line(" ".join(["* ENABLED", *enabled]))
    return "OK Enabled."


async def namespace(conn: Session) -> str:
    conn.out.line('* NAMESPACE (("" "/")) NIL NIL')
    return "OK Namespace completed."


async def idle(conn: Session) -> str:
    conn.out.line("+ idling")
    line = await conn.wait_in_idle()
    if line is None:
        raise CommandFailedError("IDLE timed out")
    if line.strip().upper() != b"DONE":
        raise CommandSyntaxError("Expected DONE")
    return "OK Idle completed."


# --- arguments -------------------------------------------------------------------------


def _id_parameters(tokens: Tokenizer, conn: Session) -> list[tuple[bytes, bytes | None]] | None:
    """`NIL` or `("name" "value" ...)`, the client's identification."""
    if not tokens.open_paren():
        tokens.expect(b"NIL")
        return None
    parameters: list[tuple[bytes, bytes | None]] = []
    if tokens.close_paren():
        return parameters
    while True:
        name = tokens.string()
        tokens.space()
        parameters.append((name, tokens.nstring_or_nil()))
        if len(parameters) > MAX_ID_PARAMETERS:
            raise CommandSyntaxError("Too many ID parameters")
        if tokens.close_paren():
            return parameters
        tokens.space()


def _capability_names(tokens: Tokenizer, conn: Session) -> list[str]:
    names = [tokens.atom("capability")]
    while tokens.skip_space():
        names.append(tokens.atom("capability"))
    return names


_ID_PARAMETERS = Argument("id-params-list", _id_parameters)
_CAPABILITY_NAMES = Argument("capability", _capability_names)

SESSION_COMMANDS: tuple[CommandSpec, ...] = (
    command("CAPABILITY", ANY_STATE, capability),
    command("NOOP", ANY_STATE, noop),
    command("LOGOUT", ANY_STATE, logout),
    command("ID", ANY_STATE, id_, _ID_PARAMETERS),
    command("ENABLE", AUTHENTICATED, enable, _CAPABILITY_NAMES),
    command("NAMESPACE", AUTHENTICATED, namespace),
    command("IDLE", AUTHENTICATED, idle),
)
