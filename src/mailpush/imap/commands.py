"""Which handler runs each command, and in which connection states it is allowed."""

from __future__ import annotations

from .. import __version__
from . import mailbox_commands as mailboxes
from . import message_commands as messages
from . import metadata_commands as metadata
from .connection import Handler, ImapConnection, State
from .parser import Command, CommandSyntaxError

__all__ = ["COMMANDS"]

_ANY = frozenset(State)
_NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
_AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
_SELECTED = frozenset({State.SELECTED})


async def _capability(conn: ImapConnection, command: Command) -> str:
    command.args.end()
    conn.out.line(f"* CAPABILITY {conn.capabilities()}")
    return "OK Pre-login capabilities listed, post-login capabilities have more."


async def _noop(conn: ImapConnection, command: Command) -> str:
    command.args.end()
    return "OK NOOP completed."


async def _logout(conn: ImapConnection, command: Command) -> str:
    command.args.end()
    conn.out.line("* BYE Logging out")
    conn.unselect()
    conn.state = State.LOGOUT
    return "OK Logout completed."


async def _id(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    if not tokens.open_paren():
        tokens.expect(b"NIL")
    elif not tokens.close_paren():
        count = 0
        while True:
            tokens.string()
            tokens.space()
            tokens.nstring_or_nil()
            count += 1
            if count > 30:
                raise CommandSyntaxError("Too many ID parameters")
            if tokens.close_paren():
                break
            tokens.space()
    tokens.end()
    conn.out.line(f'* ID ("name" "mailpush" "version" "{__version__}")')
    return "OK ID completed."


async def _enable(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    tokens.atom("capability")
    while tokens.skip_space():
        tokens.atom("capability")
    tokens.end()
    # None of the ENABLE-able extensions (CONDSTORE, QRESYNC, UTF8=ACCEPT) is offered.
    conn.out.line("* ENABLED")
    return "OK Enabled."


async def _namespace(conn: ImapConnection, command: Command) -> str:
    command.args.end()
    conn.out.line('* NAMESPACE (("" "/")) NIL NIL')
    return "OK Namespace completed."


async def _login(conn: ImapConnection, command: Command) -> str:
    tokens = command.args
    tokens.space()
    login = tokens.astring_text()
    tokens.space()
    password = tokens.astring_text()
    tokens.end()
    return await conn.login(login, password)


async def _authenticate(conn: ImapConnection, command: Command) -> str:
    return await conn.authenticate(command)


async def _starttls(conn: ImapConnection, command: Command) -> str:
    return await conn.starttls(command)


async def _idle(conn: ImapConnection, command: Command) -> str:
    return await conn.idle(command)


COMMANDS: dict[str, tuple[Handler, frozenset[State]]] = {
    "CAPABILITY": (_capability, _ANY),
    "NOOP": (_noop, _ANY),
    "LOGOUT": (_logout, _ANY),
    "ID": (_id, _ANY),
    "STARTTLS": (_starttls, _NOT_AUTH),
    "LOGIN": (_login, _NOT_AUTH),
    "AUTHENTICATE": (_authenticate, _NOT_AUTH),
    "ENABLE": (_enable, _AUTH),
    "NAMESPACE": (_namespace, _AUTH),
    "IDLE": (_idle, _AUTH),
    "SELECT": (mailboxes.select, _AUTH),
    "EXAMINE": (mailboxes.examine, _AUTH),
    "CREATE": (mailboxes.create, _AUTH),
    "DELETE": (mailboxes.delete, _AUTH),
    "RENAME": (mailboxes.rename, _AUTH),
    "SUBSCRIBE": (mailboxes.subscribe, _AUTH),
    "UNSUBSCRIBE": (mailboxes.unsubscribe, _AUTH),
    "LIST": (mailboxes.list_mailboxes, _AUTH),
    "LSUB": (mailboxes.lsub, _AUTH),
    "STATUS": (mailboxes.status, _AUTH),
    "APPEND": (mailboxes.append, _AUTH),
    "CHECK": (messages.check, _SELECTED),
    "CLOSE": (messages.close, _SELECTED),
    "UNSELECT": (messages.unselect, _SELECTED),
    "EXPUNGE": (messages.expunge, _SELECTED),
    "UID EXPUNGE": (messages.expunge, _SELECTED),
    "SEARCH": (messages.search, _SELECTED),
    "UID SEARCH": (messages.search, _SELECTED),
    "FETCH": (messages.fetch, _SELECTED),
    "UID FETCH": (messages.fetch, _SELECTED),
    "STORE": (messages.store, _SELECTED),
    "UID STORE": (messages.store, _SELECTED),
    "COPY": (messages.copy, _SELECTED),
    "UID COPY": (messages.copy, _SELECTED),
    "MOVE": (messages.move, _SELECTED),
    "UID MOVE": (messages.move, _SELECTED),
    "GETMETADATA": (metadata.getmetadata, _AUTH),
    "SETMETADATA": (metadata.setmetadata, _AUTH),
}
