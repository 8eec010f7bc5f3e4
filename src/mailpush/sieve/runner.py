"""Running compiled Sieve scripts against one message: the result is a list of actions.

Nothing here touches the store. The runner decides *what* should happen
(keep, file into these mailboxes with these flags, drop); the planner turns
that into delivery targets. Sieve has no loops, so a script's run time is
bounded by its size; the number of actions it may queue is bounded by
`sieve_max_actions` like in Dovecot.

Several scripts run in sequence (`sieve_before`…, the user's, `sieve_after`…)
as Pigeonhole's multiscript does: each script starts with a fresh flag
variable, the actions of the scripts that completed are kept, and the
sequence ends at the first script that cancels the implicit keep (so
`sieve_after` runs only while the keep is still in effect). A script that
cannot be compiled or fails at run time ends the sequence too; its own
actions are dropped and the implicit keep applies, so the message is never
lost to a broken script. The same holds for a bug of ours: any unexpected
exception while running a script is logged with the script's path and
treated like a run-time error of that script.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import SieveError, SieveRuntimeError
from .matching import matches_any
from .message import SieveMessage, address_part
from .script import (
    AddressTest,
    AllOfTest,
    AnyOfTest,
    BodyTest,
    Command,
    ConstantTest,
    DiscardCommand,
    EnvelopeTest,
    ExistsTest,
    FileIntoCommand,
    FlagCommand,
    HasFlagTest,
    HeaderTest,
    IfCommand,
    KeepCommand,
    NotTest,
    RedirectCommand,
    SieveScript,
    SizeTest,
    StopCommand,
    Test,
)

__all__ = [
    "Action",
    "FileIntoAction",
    "KeepAction",
    "RedirectAction",
    "ScriptOutcome",
    "SieveResult",
    "run_script",
    "run_sequence",
]

log = logging.getLogger(__name__)

#: Dovecot's `sieve_max_actions` default.
DEFAULT_MAX_ACTIONS = 32


@dataclass(frozen=True, slots=True)
class KeepAction:
    """Store into the default mailbox (INBOX, or the `+detail` one when so configured)."""

    flags: tuple[str, ...]
    script: str
    line: int


@dataclass(frozen=True, slots=True)
class FileIntoAction:
    mailbox: str
    flags: tuple[str, ...]
    #: `:create` was given (the `mailbox` extension).
    create: bool
    script: str
    line: int


@dataclass(frozen=True, slots=True)
class RedirectAction:
    """Asked for but never performed: mailpush sends no mail (the keep stays in effect)."""

    address: str
    script: str
    line: int


Action = KeepAction | FileIntoAction | RedirectAction


@dataclass(frozen=True, slots=True)
class ScriptOutcome:
    actions: tuple[Action, ...]
    implicit_keep: bool
    #: The imap4flags variable when the script ended; the implicit keep uses it.
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SieveResult:
    """What a sequence of scripts decided for one message."""

    actions: tuple[Action, ...]
    implicit_keep: bool
    #: Flags for the implicit keep.
    keep_flags: tuple[str, ...]
    #: The script error that ended the sequence early, if any (the keep then applies).
    failure: SieveError | None = None

    @property
    def discarded(self) -> bool:
        """Nothing is to be stored at all."""
        return not self.implicit_keep and not any(
            isinstance(action, KeepAction | FileIntoAction) for action in self.actions
        )


def run_sequence(
    scripts: Sequence[SieveScript | SieveError],
    message: SieveMessage,
    *,
    max_actions: int = DEFAULT_MAX_ACTIONS,
) -> SieveResult:
    """Run `scripts` in order; an entry that is an error stands for a script that won't compile."""
    actions: list[Action] = []
    flags: tuple[str, ...] = ()
    for entry in scripts:
        if isinstance(entry, SieveError):
            return SieveResult(tuple(actions), True, (), entry)
        try:
            outcome = run_script(entry, message, max_actions=max_actions)
        except SieveRuntimeError as exc:
            return SieveResult(tuple(actions), True, (), exc)
        except Exception as exc:  # a bug in mailpush must not cost the message
            log.exception("%s: unexpected error while running the script", entry.name)
            failure = SieveRuntimeError(entry.name, 0, f"unexpected error: {exc!r}")
            return SieveResult(tuple(actions), True, (), failure)
        actions.extend(outcome.actions)
        flags = outcome.flags
        if not outcome.implicit_keep:
            return SieveResult(tuple(actions), False, ())
    return SieveResult(tuple(actions), True, flags)


def run_script(
    script: SieveScript, message: SieveMessage, *, max_actions: int = DEFAULT_MAX_ACTIONS
) -> ScriptOutcome:
    """Run one script. Raises SieveRuntimeError (with file and line) when it breaks a limit."""
    execution = _Execution(script, message, max_actions)
    try:
        execution.run_block(script.commands)
    except _Stop:
        pass
    return ScriptOutcome(tuple(execution.actions), execution.implicit_keep, tuple(execution.flags))


class _Stop(Exception):
    """`stop`: unwinds every nested block at once."""


class _Execution:
    def __init__(self, script: SieveScript, message: SieveMessage, max_actions: int) -> None:
        self.script = script
        self.message = message
        self.max_actions = max_actions
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.flags: list[str] = []

    # --- commands ----------------------------------------------------------------------

    def run_block(self, commands: Sequence[Command]) -> None:
        for command in commands:
            self.run(command)

    def run(self, command: Command) -> None:
        if isinstance(command, IfCommand):
            for branch in command.branches:
                if branch.test is None or self.test(branch.test):
                    self.run_block(branch.block)
                    return
        elif isinstance(command, StopCommand):
            raise _Stop
        elif isinstance(command, KeepCommand):
            flags = self.flags if command.flags is None else _flag_list(command.flags)
            self.add(KeepAction(tuple(flags), self.script.name, command.line))
            self.implicit_keep = False
        elif isinstance(command, FileIntoCommand):
            flags = self.flags if command.flags is None else _flag_list(command.flags)
            self.add(
                FileIntoAction(
                    command.mailbox, tuple(flags), command.create, self.script.name, command.line
                )
            )
            if not command.copy:
                self.implicit_keep = False
        elif isinstance(command, RedirectCommand):
            # Not performed, so it must not cancel the keep: the message would be lost.
            self.add(RedirectAction(command.address, self.script.name, command.line))
        elif isinstance(command, DiscardCommand):
            self.implicit_keep = False
        elif isinstance(command, FlagCommand):
            self.change_flags(command)

    def add(self, action: Action) -> None:
        if self.max_actions and len(self.actions) >= self.max_actions:
            raise SieveRuntimeError(
                self.script.name,
                action.line,
                f"total number of actions exceeds the limit of {self.max_actions} "
                "(sieve_max_actions)",
            )
        self.actions.append(action)

    def change_flags(self, command: FlagCommand) -> None:
        given = _flag_list(command.flags)
        if command.operation == "set":
            self.flags = given
        elif command.operation == "add":
            self.flags = _flag_list([*self.flags, *given])
        else:
            removed = {flag.lower() for flag in given}
            self.flags = [flag for flag in self.flags if flag.lower() not in removed]

    # --- tests -------------------------------------------------------------------------

    def test(self, test: Test) -> bool:
        message = self.message
        if isinstance(test, HeaderTest):
            values = [value for name in test.names for value in message.header_values(name)]
            return matches_any(values, test.keys, test.match)
        if isinstance(test, AddressTest):
            values = [
                address_part(address, test.part)
                for name in test.headers
                for address in message.addresses(name)
            ]
            return matches_any(values, test.keys, test.match)
        if isinstance(test, EnvelopeTest):
            envelope = message.envelope
            values = [
                address_part(envelope.sender if part == "from" else envelope.recipient, test.part)
                for part in test.parts
            ]
            return matches_any(values, test.keys, test.match)
        if isinstance(test, ExistsTest):
            return all(message.has_header(name) for name in test.names)
        if isinstance(test, SizeTest):
            return message.size > test.limit if test.over else message.size < test.limit
        if isinstance(test, ConstantTest):
            return test.value
        if isinstance(test, AllOfTest):
            return all(self.test(sub) for sub in test.tests)
        if isinstance(test, AnyOfTest):
            return any(self.test(sub) for sub in test.tests)
        if isinstance(test, NotTest):
            return not self.test(test.test)
        if isinstance(test, BodyTest):
            texts = message.body_texts(test.transform, test.content_types)
            return matches_any(texts, test.keys, test.match)
        if isinstance(test, HasFlagTest):
            return matches_any(self.flags, _flag_list(test.flags), test.match)
        raise AssertionError(f"unknown test {test!r}")


def _flag_list(strings: Sequence[str]) -> list[str]:
    """Flags from imap4flags strings: each may hold several, space-separated; no repeats.

    Flags compare case-insensitively (RFC 5232), so the first spelling wins.
    """
    seen: set[str] = set()
    flags: list[str] = []
    for text in strings:
        for flag in text.split():
            if flag.lower() not in seen:
                seen.add(flag.lower())
                flags.append(flag)
    return flags
