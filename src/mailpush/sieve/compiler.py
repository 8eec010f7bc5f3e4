"""Sieve source → `SieveScript`: sievelib checks the grammar, we build our own tree.

sievelib (RFC 5228 grammar, per-command argument rules, `require` bookkeeping)
does the parsing; its command objects stay in this module. What sievelib does
not check, we do here: `require` only at the top, only extensions the runner
implements, envelope parts, and the `variables` forms of imap4flags that we
do not support. Every error carries the source line, because an admin reads
`sieve: /path/to/script.sieve:12: reason` in the log and has to find it.

sievelib keeps no line numbers on its commands. Each command starts with an
identifier token and sievelib creates exactly one command per identifier, in
source order, so a lexer that notes the line of every identifier token gives,
zipped with a source-order walk of the tree, the line of every command.

Nesting is limited as in Pigeonhole (`SIEVE_MAX_BLOCK_NESTING` and
`SIEVE_MAX_TEST_NESTING`, both 32): the tree, our builder and the runner all
recurse per level, so a script nested hundreds of levels deep would exhaust
Python's stack. The lexer counts the depth as it hands out tokens, so such a
script is refused at the 33rd level, before anything recursive sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sievelib.parser import Lexer, Parser

from ..errors import SieveScriptError
from .script import (
    SUPPORTED_EXTENSIONS,
    AddressPart,
    AddressTest,
    AllOfTest,
    AnyOfTest,
    BodyTest,
    BodyTransform,
    Branch,
    Command,
    Comparator,
    ConstantTest,
    DiscardCommand,
    EnvelopeTest,
    ExistsTest,
    FileIntoCommand,
    FlagCommand,
    FlagOperation,
    HasFlagTest,
    HeaderTest,
    IfCommand,
    KeepCommand,
    Match,
    MatchType,
    NotTest,
    RedirectCommand,
    SieveScript,
    SizeTest,
    StopCommand,
    Test,
)

__all__ = ["compile_script"]

_ENVELOPE_PARTS = ("from", "to")
_QUANTIFIERS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_ERROR_LINE = re.compile(r"^line \d+: ")
_NOT_LOADED = re.compile(r"extension '([^']+)' not loaded")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
#: Pigeonhole's limits on `{ }` blocks inside blocks and tests inside tests.
MAX_BLOCK_NESTING = 32
MAX_TEST_NESTING = 32


def compile_script(source: bytes, name: str) -> SieveScript:
    """Compile `source`; `name` (the file path) is used in errors and logs.

    Raises SieveScriptError with the line and reason when the script is not
    valid Sieve or needs something mailpush does not implement.
    """
    parser = Parser()
    lexer = _LineLexer(Parser.lrules)
    parser.lexer = lexer
    try:
        parsed = parser.parse(source)
    except _TooDeepError as exc:
        raise SieveScriptError(name, exc.line, exc.reason) from None
    except Exception as exc:  # sievelib bug on odd input: still a broken script, not a crash
        raise SieveScriptError(name, lexer.line, f"cannot parse: {exc}") from exc
    if not parsed:
        line = int(parser.error_pos[0])
        raise SieveScriptError(name, line, _reason(str(parser.error)))
    commands: list[Any] = list(parser.result)
    nodes = [node for command in commands for node in command.walk()]
    lines = {id(node): line for node, line in zip(nodes, lexer.command_lines, strict=False)}
    return _Builder(name, lines).script(commands)


def _reason(error: str) -> str:
    reason = _ERROR_LINE.sub("", error).removeprefix("parsing error: ")
    missing = _NOT_LOADED.search(reason)
    if missing:
        extension = missing.group(1)
        return f'the "{extension}" extension is used without require "{extension}"'
    return reason


class _TooDeepError(Exception):
    """Raised from inside sievelib's parse loop, so it must not be one of sievelib's errors."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _LineLexer(Lexer):  # type: ignore[misc]
    """sievelib's lexer, noting the line of every identifier (= every command) it yields.

    Lines are counted incrementally: sievelib's own `curlineno()` rescans the
    text from the start on every call. It also refuses nesting beyond
    Pigeonhole's limits (see `_Nesting`).
    """

    def __init__(self, definitions: Sequence[tuple[bytes, bytes]]) -> None:
        super().__init__(definitions)
        self.command_lines: list[int] = []
        self.line = 1
        self._counted_to = 0

    def scan(self, text: bytes) -> Iterator[tuple[str, bytes]]:
        self.command_lines = []
        self.line = 1
        self._counted_to = 0
        nesting = _Nesting()
        for token in super().scan(text):
            self._advance(text)
            if token[0] == "identifier":
                self.command_lines.append(self.line)
            reason = nesting.step(token[0])
            if reason:
                raise _TooDeepError(self.line, reason)
            yield token

    def _advance(self, text: bytes) -> None:
        pos: int = self.pos
        if pos >= self._counted_to:
            self.line += text.count(b"\n", self._counted_to, pos)
        else:  # the parser stepped back one token
            self.line -= text.count(b"\n", pos, self._counted_to)
        self._counted_to = pos


class _Nesting:
    """Block and test depth from the token stream alone, without building anything.

    In Sieve an identifier is either a command (at the start of a statement)
    or a test; after a command's or a test's identifier, the next identifier
    at the same parenthesis level is its sub-test (`not not true`), and a
    comma in a test list starts a sibling. So the test depth is the sum, over
    the open parentheses, of the identifiers chained at each level.
    """

    def __init__(self) -> None:
        self.blocks = 0
        #: Identifiers chained per open parenthesis; empty between statements.
        self.chains: list[int] = []
        self.in_string_list = False

    def step(self, kind: str) -> str | None:
        """Account for one token; the reason to refuse the script when it nests too deep."""
        if kind == "identifier":
            if not self.chains:
                self.chains = [0]  # a command
                return None
            self.chains[-1] += 1
            if sum(self.chains) > MAX_TEST_NESTING:
                return f"cannot nest tests deeper than {MAX_TEST_NESTING} levels"
        elif kind == "left_cbracket":
            self.chains = []
            self.blocks += 1
            if self.blocks > MAX_BLOCK_NESTING:
                return f"cannot nest command blocks deeper than {MAX_BLOCK_NESTING} levels"
        elif kind in ("right_cbracket", "semicolon"):
            self.chains = []
            if kind == "right_cbracket":
                self.blocks = max(self.blocks - 1, 0)
        elif kind == "left_bracket":
            self.in_string_list = True
        elif kind == "right_bracket":
            self.in_string_list = False
        elif self.chains and kind == "left_parenthesis":
            self.chains.append(0)
        elif len(self.chains) > 1 and kind == "right_parenthesis":
            self.chains.pop()
        elif len(self.chains) > 1 and kind == "comma" and not self.in_string_list:
            self.chains[-1] = 0
        return None


class _Builder:
    """Turns sievelib commands into our frozen nodes, checking what sievelib leaves open."""

    def __init__(self, name: str, lines: dict[int, int]) -> None:
        self._name = name
        self._lines = lines
        self._extensions: set[str] = set()

    def script(self, commands: list[Any]) -> SieveScript:
        body: list[Any] = []
        for command in commands:
            if command.name == "require":
                if body:
                    raise self._error(command, "require must come before any other command")
                self._require(command)
            else:
                body.append(command)
        return SieveScript(self._name, frozenset(self._extensions), self._block(body))

    def _error(self, command: Any, reason: str) -> SieveScriptError:
        return SieveScriptError(self._name, self._line(command), reason)

    def _line(self, command: Any) -> int:
        return self._lines.get(id(command), 0)

    def _require(self, command: Any) -> None:
        for extension in _strings(command.arguments["capabilities"]):
            if extension not in SUPPORTED_EXTENSIONS:
                supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
                raise self._error(
                    command,
                    f'require: the Sieve extension "{extension}" is not supported '
                    f"(mailpush supports: {supported})",
                )
            self._extensions.add(extension)

    def _block(self, commands: Sequence[Any]) -> tuple[Command, ...]:
        built: list[Command] = []
        branches: list[Branch] = []
        for command in commands:
            name = command.name
            if name in ("elsif", "else"):
                # sievelib guarantees they follow an if/elsif.
                test = self._test(command.arguments["test"]) if name == "elsif" else None
                branches.append(Branch(test, self._block(command.children), self._line(command)))
                if_line = built[-1].line if built else self._line(command)
                built[-1:] = [IfCommand(tuple(branches), if_line)]
                continue
            if name == "if":
                test = self._test(command.arguments["test"])
                branches = [Branch(test, self._block(command.children), self._line(command))]
                built.append(IfCommand(tuple(branches), self._line(command)))
                continue
            built.append(self._action(command))
        return tuple(built)

    def _action(self, command: Any) -> Command:
        name = command.name
        args: dict[str, Any] = command.arguments
        line = self._line(command)
        if name == "require":
            raise self._error(command, "require must come before any other command")
        if name == "keep":
            return KeepCommand(self._flags_option(command), line)
        if name == "fileinto":
            return FileIntoCommand(
                mailbox=_string(args["mailbox"]),
                copy="copy" in args,
                create="create" in args,
                flags=self._flags_option(command),
                line=line,
            )
        if name == "redirect":
            return RedirectCommand(_string(args["address"]), "copy" in args, line)
        if name == "discard":
            return DiscardCommand(line)
        if name == "stop":
            return StopCommand(line)
        if name in ("setflag", "addflag", "removeflag"):
            if "variable-name" in args and "list-of-flags" in args:
                raise self._error(
                    command,
                    f"{name} with a variable name needs the unsupported variables extension",
                )
            operation = cast(FlagOperation, name.removesuffix("flag"))
            return FlagCommand(operation, _strings(args["list-of-flags"]), line)
        raise self._error(command, f"the {name} command is not supported by mailpush")

    def _flags_option(self, command: Any) -> tuple[str, ...] | None:
        if "flags" not in command.arguments:
            return None
        return _strings(command.extra_arguments["flags"])

    def _test(self, command: Any) -> Test:
        name = command.name
        args: dict[str, Any] = command.arguments
        line = self._line(command)
        if name == "header":
            return HeaderTest(
                _strings(args["header-names"]),
                _strings(args["key-list"]),
                self._match(command),
                line,
            )
        if name == "address":
            return AddressTest(
                _strings(args["header-list"]),
                _strings(args["key-list"]),
                self._match(command),
                _address_part(args),
                line,
            )
        if name == "envelope":
            parts = tuple(part.lower() for part in _strings(args["header-list"]))
            for part in parts:
                if part not in _ENVELOPE_PARTS:
                    raise self._error(
                        command, f'envelope: unknown envelope part "{part}" (use "from" or "to")'
                    )
            return EnvelopeTest(
                parts, _strings(args["key-list"]), self._match(command), _address_part(args), line
            )
        if name == "exists":
            return ExistsTest(_strings(args["header-names"]), line)
        if name == "size":
            return SizeTest(args["comparator"].lower() == ":over", _number(args["limit"]), line)
        if name in ("true", "false"):
            return ConstantTest(name == "true", line)
        if name in ("allof", "anyof"):
            tests = tuple(self._test(test) for test in args["tests"])
            return AllOfTest(tests, line) if name == "allof" else AnyOfTest(tests, line)
        if name == "not":
            return NotTest(self._test(args["test"]), line)
        if name == "body":
            return self._body(command)
        if name == "hasflag":
            if "variable-list" in args and "list-of-flags" in args:
                raise self._error(
                    command, "hasflag with variable names needs the unsupported variables extension"
                )
            return HasFlagTest(_strings(args["list-of-flags"]), self._match(command), line)
        raise self._error(command, f"the {name} test is not supported by mailpush")

    def _body(self, command: Any) -> BodyTest:
        args: dict[str, Any] = command.arguments
        transform = cast(BodyTransform, args.get("body-transform", ":text").lower()[1:])
        types: tuple[str, ...] = ()
        if transform == "content":
            wanted = _strings(command.extra_arguments["body-transform"])
            types = tuple(content_type.strip().lower() for content_type in wanted)
        return BodyTest(
            transform, types, _strings(args["key-list"]), self._match(command), self._line(command)
        )

    def _match(self, command: Any) -> Match:
        match_type = command.arguments.get("match-type", ":is").lower()[1:]
        if match_type not in ("is", "contains", "matches"):
            raise self._error(command, f"the :{match_type} match type is not supported")
        comparator = "i;ascii-casemap"
        if "comparator" in command.arguments:
            comparator = _string(command.extra_arguments["comparator"]).lower()
        if comparator not in ("i;octet", "i;ascii-casemap"):
            raise self._error(command, f'comparator "{comparator}" is not supported')
        return Match(cast(MatchType, match_type), cast(Comparator, comparator))


def _address_part(args: dict[str, Any]) -> AddressPart:
    return cast(AddressPart, args.get("address-part", ":all").lower()[1:])


def _strings(value: str | list[str]) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(_string(item) for item in value)
    return (_string(value),)


def _string(token: str) -> str:
    """The value of a quoted string or a `text:` multi-line string token (RFC 5228 §2.4.2)."""
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        return _ESCAPE.sub(r"\1", token[1:-1])
    if token.startswith("text:"):
        _, _, rest = token.partition("\n")
        lines = rest.rstrip("\r")[:-1].splitlines(keepends=True)  # drop the final "."
        return "".join(line[1:] if line.startswith("..") else line for line in lines)
    return token


def _number(token: str) -> int:
    token = str(token)
    scale = _QUANTIFIERS.get(token[-1].lower(), 1)
    digits = token[:-1] if scale != 1 else token
    return int(digits) * scale
