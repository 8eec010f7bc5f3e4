"""A compiled Sieve script: our own frozen command tree, free of any parser object.

The compiler (`compiler.py`) builds it once per script version; the runner
only ever sees these records, so the parser library can change without the
runner noticing, and a cached script can be shared by concurrent deliveries.
Every node keeps the source line it came from, for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MatchType = Literal["is", "contains", "matches"]
Comparator = Literal["i;octet", "i;ascii-casemap"]
AddressPart = Literal["all", "localpart", "domain"]
BodyTransform = Literal["raw", "content", "text"]
FlagOperation = Literal["set", "add", "remove"]

#: Extensions a script may `require` (RFC 5228 names). Anything else fails to
#: compile, so a script is never half-understood.
SUPPORTED_EXTENSIONS = frozenset(
    {
        "fileinto",
        "envelope",
        "mailbox",
        "copy",
        "imap4flags",
        "body",
        "comparator-i;octet",
        "comparator-i;ascii-casemap",
    }
)


@dataclass(frozen=True, slots=True)
class Match:
    """How keys are compared: RFC 5228 defaults are `:is` with `i;ascii-casemap`."""

    type: MatchType = "is"
    comparator: Comparator = "i;ascii-casemap"


# --- tests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderTest:
    names: tuple[str, ...]
    keys: tuple[str, ...]
    match: Match
    line: int


@dataclass(frozen=True, slots=True)
class AddressTest:
    headers: tuple[str, ...]
    keys: tuple[str, ...]
    match: Match
    part: AddressPart
    line: int


@dataclass(frozen=True, slots=True)
class EnvelopeTest:
    #: Lowercased envelope parts: `from`, `to`.
    parts: tuple[str, ...]
    keys: tuple[str, ...]
    match: Match
    part: AddressPart
    line: int


@dataclass(frozen=True, slots=True)
class ExistsTest:
    names: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class SizeTest:
    over: bool
    limit: int
    line: int


@dataclass(frozen=True, slots=True)
class ConstantTest:
    """`true` or `false`."""

    value: bool
    line: int


@dataclass(frozen=True, slots=True)
class AllOfTest:
    tests: tuple[Test, ...]
    line: int


@dataclass(frozen=True, slots=True)
class AnyOfTest:
    tests: tuple[Test, ...]
    line: int


@dataclass(frozen=True, slots=True)
class NotTest:
    test: Test
    line: int


@dataclass(frozen=True, slots=True)
class BodyTest:
    transform: BodyTransform
    #: For `:content`: the MIME types asked for (`""` is every part, `text` a main type).
    content_types: tuple[str, ...]
    keys: tuple[str, ...]
    match: Match
    line: int


@dataclass(frozen=True, slots=True)
class HasFlagTest:
    flags: tuple[str, ...]
    match: Match
    line: int


Test = (
    HeaderTest
    | AddressTest
    | EnvelopeTest
    | ExistsTest
    | SizeTest
    | ConstantTest
    | AllOfTest
    | AnyOfTest
    | NotTest
    | BodyTest
    | HasFlagTest
)


# --- commands ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Branch:
    """One arm of an if/elsif/else chain; `test` is None for `else`."""

    test: Test | None
    block: tuple[Command, ...]
    line: int


@dataclass(frozen=True, slots=True)
class IfCommand:
    branches: tuple[Branch, ...]
    line: int


@dataclass(frozen=True, slots=True)
class KeepCommand:
    #: `:flags` given; None means the script's current flag variable.
    flags: tuple[str, ...] | None
    line: int


@dataclass(frozen=True, slots=True)
class FileIntoCommand:
    mailbox: str
    copy: bool
    create: bool
    flags: tuple[str, ...] | None
    line: int


@dataclass(frozen=True, slots=True)
class RedirectCommand:
    address: str
    copy: bool
    line: int


@dataclass(frozen=True, slots=True)
class DiscardCommand:
    line: int


@dataclass(frozen=True, slots=True)
class StopCommand:
    line: int


@dataclass(frozen=True, slots=True)
class FlagCommand:
    """imap4flags `setflag`, `addflag`, `removeflag` on the script's flag variable."""

    operation: FlagOperation
    flags: tuple[str, ...]
    line: int


Command = (
    IfCommand
    | KeepCommand
    | FileIntoCommand
    | RedirectCommand
    | DiscardCommand
    | StopCommand
    | FlagCommand
)


@dataclass(frozen=True, slots=True)
class SieveScript:
    """A script ready to run; `name` is its file path, used in every log line about it."""

    name: str
    extensions: frozenset[str]
    commands: tuple[Command, ...]
