"""Tokenizing one IMAP command: tag, name, and the arguments each handler asks for.

The connection hands over the whole command as it came off the wire, literals
included (`{n}` / `{n+}`, CRLF, then n bytes), so arguments are read in one
pass without a second framing layer. The `Argument`s of each command's
`CommandSpec` pull typed values (`astring`, `sequence_set`, `flag_list`...) in
grammar order; anything that does not fit raises `CommandSyntaxError` whose
reason the client sees in the tagged `BAD`.

Nesting is bounded: every `(` a grammar opens and every operator that nests
its operands (SEARCH's NOT and OR) counts one level, and more than
`MAX_NESTING` levels is a `BAD`. Handlers parse nested grammar recursively,
and 8,000 nested `(` in a SEARCH used to exhaust Python's recursion limit and
drop the connection. Dovecot's parser has no such limit (its 64 KiB line
limit bounds nesting); no client nests anywhere near 100 levels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .mutf7 import InvalidMutf7Error, decode_mutf7
from .sequence_set import InvalidSequenceSetError, SequenceSet, parse_sequence_set

__all__ = [
    "MAX_NESTING", "Command", "CommandSyntaxError", "Tokenizer", "parse_command", "literal_at_end",
]  # fmt: skip

#: Deepest nesting of parenthesised lists and nesting operators in one command.
MAX_NESTING = 100


class CommandSyntaxError(ValueError):
    """The command does not follow the IMAP grammar; answered with `BAD <reason>`."""


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    #: Upper-cased command name; `UID FETCH` and friends keep the UID prefix.
    name: str
    args: Tokenizer


#: A line that announces a literal: `... {123}` or `... {123+}` right before CRLF.
_LITERAL_AT_END = re.compile(rb"\{(\d{1,20})(\+?)\}$")

#: Characters allowed in an atom (RFC 3501 ATOM-CHAR): no CTL, SP, ( ) { % * " \ ].
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]' + bytes(range(0x20)) + b"\x7f")
_ATOM_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in _ATOM_SPECIALS)
_ASTRING_CHARS = _ATOM_CHARS + b"]"
_LIST_CHARS = _ASTRING_CHARS + b"%*"
_TAG_CHARS = bytes(c for c in _ASTRING_CHARS if c != ord("+"))
#: Sequence-set characters, for a fast scan.
_SEQ_CHARS = b"0123456789:*,$"


def literal_at_end(line: bytes) -> tuple[int, bool] | None:
    """(size, synchronising) when `line` (without CRLF) ends by announcing a literal."""
    if not line.endswith(b"}"):
        return None
    match = _LITERAL_AT_END.search(line)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) != b"+"


def parse_command(data: bytes) -> Command:
    """Read tag and command name; the returned tokenizer sits at the first argument."""
    tokens = Tokenizer(data)
    tag = tokens.run_of(_TAG_CHARS, "tag")
    if tokens.at_end():
        raise CommandSyntaxError("Missing command")
    tokens.space()
    name = tokens.run_of(_ATOM_CHARS, "command name").upper()
    if name == "UID":
        tokens.space()
        name = "UID " + tokens.run_of(_ATOM_CHARS, "command name").upper()
    return Command(tag, name, tokens)


def extract_tag(data: bytes) -> str:
    """The tag of a command that could not be read whole, or `*` if it has none."""
    match = re.match(rb"[\x21-\x7e]{1,64}", data)
    if match is None or any(c not in _TAG_CHARS for c in match.group()):
        return "*"
    return match.group().decode("ascii")


class Tokenizer:
    """A cursor over one command's bytes with the IMAP grammar's primitives."""

    __slots__ = ("data", "depth", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        #: Levels of nesting open at `pos` (see MAX_NESTING).
        self.depth = 0

    # --- position -------------------------------------------------------------

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def peek_is(self, char: bytes) -> bool:
        return self.data.startswith(char, self.pos)

    def end(self) -> None:
        """Everything must have been consumed."""
        if not self.at_end():
            rest = self.data[self.pos : self.pos + 20].decode("ascii", "replace")
            raise CommandSyntaxError(f"Unexpected argument at {rest!r}")

    def space(self) -> None:
        if not self.peek_is(b" "):
            if self.at_end():
                raise CommandSyntaxError("Missing argument")
            raise CommandSyntaxError("Expected a space between arguments")
        self.pos += 1

    def skip_space(self) -> bool:
        """Consume one space if there is one; True when an argument follows."""
        if self.peek_is(b" "):
            self.pos += 1
            return True
        return False

    def expect(self, literal: bytes) -> None:
        if self.data[self.pos : self.pos + len(literal)].upper() != literal.upper():
            raise CommandSyntaxError(f"Expected {literal.decode()!r}")
        self.pos += len(literal)

    # --- primitives ----------------------------------------------------------

    def run_of(self, allowed: bytes, what: str) -> str:
        start = self.pos
        data = self.data
        end = len(data)
        pos = start
        while pos < end and data[pos] in allowed:
            pos += 1
        if pos == start:
            if start >= end:
                raise CommandSyntaxError(f"Missing {what}")
            raise CommandSyntaxError(f"Invalid characters in {what}")
        self.pos = pos
        return data[start:pos].decode("ascii")

    def atom(self, what: str = "atom") -> str:
        return self.run_of(_ATOM_CHARS, what)

    def flag(self) -> str:
        """`\\Seen`, `\\*` or a keyword atom."""
        if self.peek_is(b"\\"):
            self.pos += 1
            if self.peek_is(b"*"):
                self.pos += 1
                return "\\*"
            return "\\" + self.atom("flag")
        return self.atom("flag")

    def number(self, what: str = "number") -> int:
        text = self.run_of(b"0123456789", what)
        value = int(text)
        if value > 0xFFFFFFFF:
            raise CommandSyntaxError(f"{what} {text} is too large")
        return value

    def nz_number(self, what: str = "number") -> int:
        value = self.number(what)
        if value == 0:
            raise CommandSyntaxError(f"{what} must not be 0")
        return value

    def string(self) -> bytes:
        """A quoted string or a literal."""
        char = self.peek()
        if char == 0x22:  # "
            return self.quoted()
        if char == 0x7B or (char == 0x7E and self.data.startswith(b"{", self.pos + 1)):
            return self.literal()
        raise CommandSyntaxError("Expected a string")

    def quoted(self) -> bytes:
        data = self.data
        pos = self.pos + 1
        out = bytearray()
        while True:
            end = data.find(b'"', pos)
            slash = data.find(b"\\", pos, end if end >= 0 else len(data))
            if end < 0:
                raise CommandSyntaxError("Missing closing '\"' in a quoted string")
            if slash < 0:
                out += data[pos:end]
                pos = end + 1
                break
            out += data[pos:slash]
            escaped = data[slash + 1 : slash + 2]
            if escaped not in (b"\\", b'"'):
                raise CommandSyntaxError("Invalid escape in a quoted string")
            out += escaped
            pos = slash + 2
        if b"\r" in out or b"\n" in out:
            raise CommandSyntaxError("CR or LF in a quoted string")
        self.pos = pos
        return bytes(out)

    def literal(self) -> bytes:
        data = self.data
        start = self.pos + (1 if data[self.pos] == 0x7E else 0)
        close = data.find(b"}", start)
        if close < 0:
            raise CommandSyntaxError("Unterminated literal size")
        size_text = data[start + 1 : close].rstrip(b"+")
        if not size_text.isdigit():
            raise CommandSyntaxError("Invalid literal size")
        size = int(size_text)
        if not data.startswith(b"\r\n", close + 1):
            raise CommandSyntaxError("A literal size must end its line")
        begin = close + 3
        if begin + size > len(data):
            raise CommandSyntaxError("Literal is shorter than announced")
        self.pos = begin + size
        return data[begin : begin + size]

    def astring(self) -> bytes:
        char = self.peek()
        if char in (0x22, 0x7B):
            return self.string()
        return self.run_of(_ASTRING_CHARS, "argument").encode("ascii")

    def nstring_or_nil(self) -> bytes | None:
        if self.data[self.pos : self.pos + 3].upper() == b"NIL":
            self.pos += 3
            return None
        return self.string()

    def astring_text(self) -> str:
        """An astring as text: UTF-8 where valid, Latin-1 otherwise (never fails)."""
        raw = self.astring()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def mailbox(self) -> str:
        """A mailbox name, decoded from modified UTF-7 (raw UTF-8 is tolerated)."""
        raw = self.astring()
        return _decode_mailbox(raw)

    def list_mailbox(self) -> str:
        """A LIST pattern: like a mailbox name but `%` and `*` are allowed unquoted."""
        char = self.peek()
        raw = (
            self.string()
            if char in (0x22, 0x7B)
            else self.run_of(_LIST_CHARS, "mailbox pattern").encode("ascii")
        )
        return _decode_mailbox(raw)

    def list_pattern(self) -> str | None:
        """A LIST reference or pattern; None when it is not valid modified UTF-7.

        No mailbox name can match such a pattern, so LIST answers OK with
        nothing rather than NO, as Dovecot does.
        """
        try:
            return self.list_mailbox()
        except MailboxNameSyntaxError:
            return None

    def sequence_set(self) -> SequenceSet:
        text = self.run_of(_SEQ_CHARS, "sequence set")
        try:
            return parse_sequence_set(text)
        except InvalidSequenceSetError as exc:
            raise CommandSyntaxError(f"Invalid messageset: {exc}") from exc

    def open_paren(self) -> bool:
        """Consume `(` if it comes next; it opens one level of nesting."""
        if self.peek_is(b"("):
            self._enter()
            self.pos += 1
            return True
        return False

    def close_paren(self) -> bool:
        """Consume `)` if it comes next; it closes the level its `(` opened."""
        if self.peek_is(b")"):
            self.pos += 1
            self.depth = max(self.depth - 1, 0)
            return True
        return False

    @contextmanager
    def nested(self) -> Iterator[None]:
        """One level of nesting for an operator whose operands recurse (SEARCH NOT, OR)."""
        self._enter()
        try:
            yield
        finally:
            self.depth -= 1

    def _enter(self) -> None:
        if self.depth >= MAX_NESTING:
            raise CommandSyntaxError(
                f"Too deep nesting: more than {MAX_NESTING} levels of parentheses"
                " or NOT/OR operators"
            )
        self.depth += 1

    def flag_list(self) -> list[str]:
        """`(\\Seen $Label)`: a parenthesised, space-separated list of flags."""
        return self.paren_list(self.flag, "Expected a parenthesised flag list")

    def atom_list(self) -> list[str]:
        """`(A B C)` of atoms (STATUS items, ENABLE-like lists)."""
        return self.paren_list(self.atom)

    def paren_list(
        self, item: Callable[[], str], expected: str = "Expected a parenthesised list"
    ) -> list[str]:
        """`()` or `(x y z)`: the items `item` reads, one space between; `expected` if no `(`."""
        if not self.open_paren():
            raise CommandSyntaxError(expected)
        items: list[str] = []
        if self.close_paren():
            return items
        while True:
            items.append(item())
            if self.close_paren():
                return items
            self.space()


def _decode_mailbox(raw: bytes) -> str:
    if raw.isascii():
        try:
            return decode_mutf7(raw.decode("ascii"))
        except InvalidMutf7Error as exc:
            raise MailboxNameSyntaxError(str(exc)) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MailboxNameSyntaxError("Mailbox name is not valid mUTF-7 or UTF-8") from exc


class MailboxNameSyntaxError(CommandSyntaxError):
    """A mailbox name that is neither valid modified UTF-7 nor UTF-8.

    Dovecot answers these with `NO`, not `BAD`: the command was well formed.
    """
