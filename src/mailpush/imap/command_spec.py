"""A command declared as data: its name, the states it runs in, its argument grammar, its handler.

The connection looks a command up in a table of `CommandSpec`s, checks the
state, reads each `Argument` (a space before it, end of line after the
last) and calls the handler with the values. A handler never touches the
tokenizer, and `command()` lets mypy check that the handler's parameters
match the values its arguments produce.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, overload

from .parser import Tokenizer
from .session_protocol import Session
from .states import State

__all__ = ["Argument", "CommandSpec", "CommandTable", "Spacing", "command", "optional"]

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

#: How an argument is separated from what comes before it:
#: "space": by one space, which the dispatcher reads;
#: "optional": it is there only when a space follows (its value is None otherwise);
#: "own": its parser reads its own spaces (a list of repeated items that may be empty).
Spacing = Literal["space", "optional", "own"]


@dataclass(frozen=True, slots=True)
class Argument(Generic[T]):
    """One argument's grammar: `parse` reads it at the tokenizer, after its leading space.

    `parse` raises `CommandSyntaxError` (BAD) for what does not fit the
    grammar, or `CommandFailedError` (NO) where Dovecot refuses an argument
    while still reading the command.
    """

    #: What the argument is, for the reader of a command table.
    name: str
    parse: Callable[[Tokenizer, Session], T]
    spacing: Spacing = "space"


def optional(argument: Argument[T]) -> Argument[T | None]:
    """`argument`, or None when the command ends before it."""
    parse: Callable[[Tokenizer, Session], T | None] = argument.parse
    return Argument(argument.name, parse, "optional")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    states: frozenset[State]
    #: Called as `handler(session, *values)`, one value per argument.
    handler: Callable[..., Awaitable[str]]
    args: tuple[Argument[Any], ...] = ()
    #: The selected mailbox must still exist before the arguments are read:
    #: a NO [NONEXISTENT] comes before any complaint about them.
    needs_mailbox: bool = False
    #: Whether pending `* n EXPUNGE` may follow the command (not during FETCH, STORE
    #: or SEARCH, RFC 3501 §7.4.1, where sequence numbers must stay put).
    sends_expunge: bool = True


#: Command name (upper case, `UID FETCH` with its prefix) to its declaration.
CommandTable = Mapping[str, CommandSpec]


@overload
def command(
    name: str,
    states: frozenset[State],
    handler: Callable[[Session], Awaitable[str]],
    /,
    *,
    needs_mailbox: bool = ...,
    sends_expunge: bool = ...,
) -> CommandSpec: ...


@overload
def command(
    name: str,
    states: frozenset[State],
    handler: Callable[[Session, A], Awaitable[str]],
    a: Argument[A],
    /,
    *,
    needs_mailbox: bool = ...,
    sends_expunge: bool = ...,
) -> CommandSpec: ...


@overload
def command(
    name: str,
    states: frozenset[State],
    handler: Callable[[Session, A, B], Awaitable[str]],
    a: Argument[A],
    b: Argument[B],
    /,
    *,
    needs_mailbox: bool = ...,
    sends_expunge: bool = ...,
) -> CommandSpec: ...


@overload
def command(
    name: str,
    states: frozenset[State],
    handler: Callable[[Session, A, B, C], Awaitable[str]],
    a: Argument[A],
    b: Argument[B],
    c: Argument[C],
    /,
    *,
    needs_mailbox: bool = ...,
    sends_expunge: bool = ...,
) -> CommandSpec: ...


def command(
    name: str,
    states: frozenset[State],
    handler: Callable[..., Awaitable[str]],
    /,
    *args: Argument[Any],
    needs_mailbox: bool = False,
    sends_expunge: bool = True,
) -> CommandSpec:
    """A `CommandSpec` whose handler is type-checked against its arguments."""
    return CommandSpec(name, states, handler, args, needs_mailbox, sends_expunge)
