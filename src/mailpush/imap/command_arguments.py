"""The argument grammars several commands share, as `Argument`s over the parser's `Tokenizer`.

Grammars only one command uses (APPEND's messages, STORE's action, the
METADATA lists...) are declared next to that command's handler.
"""

from __future__ import annotations

from .command_errors import CommandFailedError
from .command_spec import Argument
from .parser import Tokenizer
from .sequence_set import SequenceSet
from .session_protocol import Session

__all__ = ["ASTRING", "FLAGS", "MAILBOX", "MAILBOX_OR_EMPTY", "SEQUENCE_SET"]


def _astring(tokens: Tokenizer, session: Session) -> str:
    return tokens.astring_text()


def _mailbox(tokens: Tokenizer, session: Session) -> str:
    name = tokens.mailbox()
    if not name:
        raise CommandFailedError("[CANNOT] Empty mailbox name.")
    return name


def _mailbox_or_empty(tokens: Tokenizer, session: Session) -> str:
    return tokens.mailbox()


def _sequence_set(tokens: Tokenizer, session: Session) -> SequenceSet:
    return tokens.sequence_set()


def _flags(tokens: Tokenizer, session: Session) -> list[str]:
    """`(\\Seen $Label)`, or the flags without parentheses (RFC 3501 allows both in STORE)."""
    if tokens.peek_is(b"("):
        return tokens.flag_list()
    names = [tokens.flag()]
    while tokens.skip_space():
        names.append(tokens.flag())
    return names


#: An astring as text (UTF-8 where valid, else Latin-1): LOGIN's user and password.
ASTRING = Argument("astring", _astring)
#: A mailbox name, decoded from modified UTF-7; an empty one is refused with NO.
MAILBOX = Argument("mailbox", _mailbox)
#: A mailbox name that may be `""` (METADATA's server entries; COPY lets the store refuse it).
MAILBOX_OR_EMPTY = Argument("mailbox", _mailbox_or_empty)
SEQUENCE_SET = Argument("sequence-set", _sequence_set)
FLAGS = Argument("flag-list", _flags)
