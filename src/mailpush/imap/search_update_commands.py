"""CANCELUPDATE (RFC 5267 §4.3): stop following UPDATE searches, named by their tags.

As Dovecot 2.3.19: one or more quoted strings (or literals), else BAD
"Invalid parameters."; the tags are cancelled in order and the first one
that names no UPDATE search stops the command with `NO Unknown tag.` (those
before it stay cancelled). Allowed once logged in, mailbox selected or not.
"""

from __future__ import annotations

from .command_errors import CommandFailedError
from .command_spec import Argument, CommandSpec, command, optional
from .parser import CommandSyntaxError, Tokenizer
from .session_protocol import Session
from .states import AUTHENTICATED

__all__ = ["SEARCH_UPDATE_COMMANDS", "cancelupdate"]


async def cancelupdate(conn: Session, tags: list[str] | None) -> str:
    if not tags:
        raise CommandSyntaxError("Invalid parameters.")
    for tag in tags:
        if not conn.search_updates.cancel(tag):
            raise CommandFailedError("Unknown tag.")
    return "OK Updates cancelled."


def _tags(tokens: Tokenizer, conn: Session) -> list[str]:
    tags: list[str] = []
    while True:
        if not (tokens.peek_is(b'"') or tokens.peek_is(b"{")):
            raise CommandSyntaxError("Invalid parameters.")
        tags.append(tokens.string().decode("utf-8", "replace"))
        if not tokens.skip_space():
            return tags


SEARCH_UPDATE_COMMANDS: tuple[CommandSpec, ...] = (
    command("CANCELUPDATE", AUTHENTICATED, cancelupdate, optional(Argument("tag-string", _tags))),
)
