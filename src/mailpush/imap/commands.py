"""The command table: every command the server knows, from the modules that declare them.

The server hands this table to each connection; the connection itself
imports no command module, and the command modules import only the
`Session` protocol, so dependencies point one way.
"""

from __future__ import annotations

from .command_spec import CommandSpec, CommandTable
from .compress_commands import COMPRESS_COMMANDS
from .list_extended import LIST_COMMANDS
from .login_commands import LOGIN_COMMANDS
from .mailbox_commands import MAILBOX_COMMANDS
from .message_commands import MESSAGE_COMMANDS
from .metadata_commands import METADATA_COMMANDS
from .notify_commands import NOTIFY_COMMANDS
from .search_update_commands import SEARCH_UPDATE_COMMANDS
from .session_commands import SESSION_COMMANDS
from .sort_commands import SORT_COMMANDS

__all__ = ["COMMANDS", "command_table"]


def command_table(*groups: tuple[CommandSpec, ...]) -> CommandTable:
    """Index command declarations by name; a name declared twice is a programming error."""
    table: dict[str, CommandSpec] = {}
    for group in groups:
        for spec in group:
            if spec.name in table:
                raise ValueError(f"imap: command {spec.name} is declared twice")
            table[spec.name] = spec
    return table


COMMANDS = command_table(
    SESSION_COMMANDS, LOGIN_COMMANDS, MAILBOX_COMMANDS, MESSAGE_COMMANDS, METADATA_COMMANDS,
    SORT_COMMANDS, COMPRESS_COMMANDS, LIST_COMMANDS, NOTIFY_COMMANDS, SEARCH_UPDATE_COMMANDS,
)
