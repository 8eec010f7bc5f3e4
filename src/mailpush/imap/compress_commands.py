"""COMPRESS (RFC 4978): switch the connection to deflate, with Dovecot 2.3's answers.

The tagged OK goes out uncompressed and everything after it (both ways) is
deflate; the codec and its bounds are in compression.py. Only DEFLATE
exists; a second COMPRESS is `NO [COMPRESSIONACTIVE]`.
"""

from __future__ import annotations

from .command_errors import AlreadyAnswered, CommandFailedError
from .command_spec import Argument, CommandSpec, command
from .parser import CommandSyntaxError, Tokenizer
from .session_protocol import Session
from .states import AUTHENTICATED

__all__ = ["COMPRESS_COMMANDS", "compress"]


async def compress(conn: Session, mechanism: str) -> str:
    if conn.compression_active:
        raise CommandFailedError("[COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled.")
    if mechanism.upper() != "DEFLATE":
        raise CommandFailedError("Unknown compression mechanism.")
    conn.start_compression("OK Begin compression.")
    raise AlreadyAnswered


def _mechanism(tokens: Tokenizer, conn: Session) -> str:
    if tokens.at_end() or not tokens.peek_is(b" "):
        raise CommandSyntaxError("Invalid arguments.")
    tokens.space()
    try:
        mechanism = tokens.atom("mechanism")
    except CommandSyntaxError:
        raise CommandSyntaxError("Invalid arguments.") from None
    if not tokens.at_end():
        raise CommandSyntaxError("Invalid arguments.")
    return mechanism


#: Reads its own space: a missing or extra argument is Dovecot's "Invalid arguments".
_MECHANISM = Argument("mechanism", _mechanism, "own")

COMPRESS_COMMANDS: tuple[CommandSpec, ...] = (
    command("COMPRESS", AUTHENTICATED, compress, _MECHANISM),
)
