"""Dovecot configuration syntax (2.3 and 2.4) read into a tree of sections and entries.

The parser knows the grammar only; which keys exist and what their values mean is
the settings layer's job. Every node remembers its file and line so that any later
error can point at the place an admin has to edit.

Grammar, line by line:

* ``key = value`` - spaces around ``=`` are optional. When the setting starts the
  line, its value is the REST OF THE LINE, trimmed, up to a comment (Dovecot's rule,
  so values may contain spaces: ``mail_plugins = $mail_plugins quota``).
* ``type {`` and ``type name {`` open a section; ``}`` closes one. Sections nest.
* One-line blocks: after a ``{`` or ``}`` on the same line, several ``key = value``
  pairs, ``{`` and ``}`` may follow, as in
  ``service lmtp { inet_listener lmtp { address = 127.0.0.1  port = 24 } }``.
  There a value is ONE token: a quoted string, or a run of non-space characters
  that ends before an unbalanced ``}`` (so ``%{user}`` stays whole). Write values
  with spaces in quotes, or on a line of their own.
* Values may be quoted with ``"..."`` or ``'...'``; inside, ``\\"``, ``\\'`` and
  ``\\\\`` are escapes and other backslashes are kept. Quoted values are literal:
  no ``$`` expansion, no ``<file``, and ``#`` is not a comment. ``<"path"`` quotes
  a file name.
* ``#`` starts a comment at the start of a line or after whitespace, outside quotes
  (``url = https://x/#frag`` keeps its ``#``; ``key = value  # note`` drops the note).
* ``key = <path`` means "the contents of file path"; the parser keeps the path and
  sets `ConfigEntry.from_file`, it does not read the file.
* ``$name`` in an unquoted value is replaced by the value ``name`` already has in
  the same section, in an earlier section of the same type and name (repeated
  blocks merge, so a second ``protocol lmtp { }`` continues the first, as
  Dovecot's filters do), or in an enclosing one - inside ``protocol lmtp { }``,
  ``$mail_plugins`` is the global value written so far. A reference of a key to
  itself that is not yet set is empty (``mail_plugins = $mail_plugins quota`` as the first
  ``mail_plugins``). Any other ``$`` is left as written, because URLs and secrets
  may contain ``$``.
* ``!include PATH`` and ``!include_try PATH`` splice other files into the current
  section. PATH is relative to the including file's directory and may be a glob
  (files are read in sorted order). ``!include_try`` ignores missing files;
  ``!include`` of a missing file, and an include loop, are errors. An included
  file must balance its own braces.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mailpush.errors import ConfigFileError, ConfigSyntaxError

__all__ = [
    "ConfigEntry",
    "ConfigSection",
    "parse_file",
    "parse_text",
]


@dataclass(frozen=True)
class ConfigEntry:
    """One ``key = value`` as written (after ``$`` expansion and unquoting)."""

    key: str
    value: str
    file: str
    line: int
    from_file: bool = False

    @property
    def where(self) -> str:
        """``file:line``, the form error messages and warnings use."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ConfigSection:
    """A ``type [name] { ... }`` block; the whole file is a section with an empty type.

    Settings and subsections keep their written order. A key may appear more than
    once; lookups return the last one, as Dovecot does, but all are kept.
    """

    type: str
    name: str | None
    settings: tuple[ConfigEntry, ...]
    sections: tuple[ConfigSection, ...]
    file: str
    line: int

    @property
    def where(self) -> str:
        """``file:line`` of the opening line."""
        return f"{self.file}:{self.line}"

    @property
    def label(self) -> str:
        """``type name`` as an admin wrote it, for messages."""
        return self.type if self.name is None else f"{self.type} {self.name}"

    def get(self, key: str) -> ConfigEntry | None:
        """The entry that wins for ``key`` (the last one written), or None."""
        for entry in reversed(self.settings):
            if entry.key == key:
                return entry
        return None

    def value(self, key: str, default: str | None = None) -> str | None:
        """The winning value of ``key``, or ``default`` when it is not set here."""
        entry = self.get(key)
        return default if entry is None else entry.value

    def find(self, type: str, name: str | None = None) -> tuple[ConfigSection, ...]:
        """Subsections of ``type`` (and ``name``, when given), in written order."""
        return tuple(
            section
            for section in self.sections
            if section.type == type and (name is None or section.name == name)
        )

    def section(self, type: str, name: str | None = None) -> ConfigSection | None:
        """The first subsection of ``type`` (and ``name``), or None."""
        found = self.find(type, name)
        return found[0] if found else None

    def walk(self) -> Iterator[ConfigSection]:
        """This section and every section below it, depth first."""
        yield self
        for section in self.sections:
            yield from section.walk()


def parse_text(text: str, filename: str = "<config>") -> ConfigSection:
    """Parse configuration text; ``filename`` is used in messages and to resolve includes.

    Includes in text whose ``filename`` is not a real file resolve against the
    current directory.
    """
    root = _SectionBuilder("", None, filename, 0, None)
    _Parser().parse_into(text, filename, root)
    return root.freeze()


def parse_file(path: str | os.PathLike[str]) -> ConfigSection:
    """Parse a configuration file and everything it includes."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigFileError(filename, f"cannot read configuration: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigFileError(filename, f"not UTF-8 text: {exc.reason}") from exc
    root = _SectionBuilder("", None, filename, 0, None)
    _Parser([os.path.realpath(filename)]).parse_into(text, filename, root)
    return root.freeze()


# --- private -------------------------------------------------------------------------

_KEY_RE = re.compile(r"[^\s={}\"'#]+")
_NAME_RE = re.compile(r"[^\s={}\"']+")
_VAR_RE = re.compile(r"\$([A-Za-z0-9_]+)")
_INCLUDE_RE = re.compile(r"!(include|include_try)(?:\s+(.*))?")
_QUOTES = "\"'"

_FailFn = Callable[[str], ConfigSyntaxError]


@dataclass
class _SectionBuilder:
    type: str
    name: str | None
    file: str
    line: int
    parent: _SectionBuilder | None
    settings: list[ConfigEntry] = field(default_factory=list)
    sections: list[_SectionBuilder] = field(default_factory=list)

    def lookup(self, key: str) -> str | None:
        scope: _SectionBuilder | None = self
        while scope is not None:
            for merged in scope._merged_scopes():
                for entry in reversed(merged.settings):
                    if entry.key == key:
                        return entry.value
            scope = scope.parent
        return None

    def _merged_scopes(self) -> Iterator[_SectionBuilder]:
        """This section, then earlier siblings of the same type and name, latest first."""
        yield self
        if self.parent is None:
            return
        for sibling in reversed(self.parent.sections):
            if sibling is not self and (sibling.type, sibling.name) == (self.type, self.name):
                yield sibling

    def freeze(self) -> ConfigSection:
        return ConfigSection(
            type=self.type,
            name=self.name,
            settings=tuple(self.settings),
            sections=tuple(section.freeze() for section in self.sections),
            file=self.file,
            line=self.line,
        )


class _Parser:
    """One parse, which remembers the chain of files being included to find loops."""

    def __init__(self, include_chain: list[str] | None = None) -> None:
        self._chain: list[str] = include_chain or []

    def parse_into(self, text: str, filename: str, base: _SectionBuilder) -> None:
        stack = [base]
        for number, line in enumerate(text.splitlines(), start=1):
            self._parse_line(line, filename, number, stack)
        if len(stack) > 1:
            open_section = stack[-1]
            label = open_section.type + (f" {open_section.name}" if open_section.name else "")
            raise ConfigSyntaxError(
                open_section.file,
                open_section.line,
                f"section '{label} {{' opened here is never closed (missing '}}')",
            )

    def _parse_line(
        self, line: str, filename: str, number: int, stack: list[_SectionBuilder]
    ) -> None:
        def fail(reason: str) -> ConfigSyntaxError:
            return ConfigSyntaxError(filename, number, reason)

        pos = 0
        starts_line = True
        end = len(line)
        while True:
            pos = _skip_spaces(line, pos)
            if pos >= end or line[pos] == "#":
                return
            char = line[pos]
            if char == "}":
                if len(stack) == 1:
                    raise fail("unexpected '}': no section is open here")
                stack.pop()
                pos += 1
                starts_line = False
                continue
            if char == "!" and starts_line:
                self._include(line[pos:], filename, number, stack[-1])
                return
            key_match = _KEY_RE.match(line, pos)
            if key_match is None:
                raise fail(f"expected 'key = value', 'type [name] {{' or '}}', got {line[pos:]!r}")
            key = key_match.group()
            pos = _skip_spaces(line, key_match.end())
            if pos < end and line[pos] == "=":
                value_start = _skip_spaces(line, pos + 1)
                value, from_file, quoted, pos = _read_value(
                    line, value_start, whole_line=starts_line, fail=fail
                )
                section = stack[-1]
                if not quoted and not from_file:
                    value = _expand(value, key, section)
                section.settings.append(ConfigEntry(key, value, filename, number, from_file))
                starts_line = False
                continue
            name: str | None = None
            if pos < end and line[pos] != "{":
                name, pos = _read_name(line, pos, fail)
                pos = _skip_spaces(line, pos)
            if pos < end and line[pos] == "{":
                parent = stack[-1]
                child = _SectionBuilder(key, name, filename, number, parent)
                parent.sections.append(child)
                stack.append(child)
                pos += 1
                starts_line = False
                continue
            raise fail(f"expected 'key = value', 'type [name] {{' or '}}', got {line.strip()!r}")

    def _include(self, text: str, filename: str, number: int, section: _SectionBuilder) -> None:
        def fail(reason: str) -> ConfigSyntaxError:
            return ConfigSyntaxError(filename, number, reason)

        match = _INCLUDE_RE.fullmatch(_strip_comment(text).strip())
        if match is None or not match.group(2):
            raise fail(f"expected '!include PATH' or '!include_try PATH', got {text.strip()!r}")
        directive, argument = match.group(1), match.group(2).strip()
        if argument[0] in _QUOTES:
            argument, _ = _read_quoted(argument, 0, fail)
        optional = directive == "include_try"
        base_dir = os.path.dirname(os.path.abspath(filename)) if os.path.isfile(filename) else "."
        pattern = os.path.join(base_dir, argument)
        if glob.has_magic(pattern):
            paths = sorted(glob.glob(pattern))
            if not paths and not optional:
                raise fail(f"!include {argument}: no file matches {pattern}")
        else:
            paths = [pattern]
        for path in paths:
            real = os.path.realpath(path)
            if real in self._chain:
                loop = " -> ".join([*self._chain[self._chain.index(real) :], real])
                raise fail(f"include loop: {loop}")
            try:
                with open(path, encoding="utf-8") as handle:
                    included = handle.read()
            except FileNotFoundError as exc:
                if optional:
                    continue
                raise fail(f"!include {argument}: file not found: {path}") from exc
            except OSError as exc:
                raise fail(f"!{directive} {argument}: cannot read {path}: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise fail(f"!{directive} {argument}: {path} is not UTF-8 text") from exc
            self._chain.append(real)
            try:
                self.parse_into(included, path, section)
            finally:
                self._chain.pop()


def _skip_spaces(line: str, pos: int) -> int:
    while pos < len(line) and line[pos].isspace():
        pos += 1
    return pos


def _strip_comment(text: str) -> str:
    """Cut at the first ``#`` that starts the text or follows whitespace."""
    for index, char in enumerate(text):
        if char == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index]
    return text


def _read_value(
    line: str, pos: int, *, whole_line: bool, fail: _FailFn
) -> tuple[str, bool, bool, int]:
    """Read a value at ``pos``: (text, from_file, quoted, position after it)."""
    end = len(line)
    if pos < end and line[pos] in _QUOTES:
        value, pos = _read_quoted(line, pos, fail)
        if whole_line:
            rest = _skip_spaces(line, pos)
            if rest < end and line[rest] != "#":
                raise fail(
                    f"unexpected text after the quoted value: {line[rest:].strip()!r} "
                    f"(quote the whole value)"
                )
            pos = end
        return value, False, True, pos
    from_file = pos < end and line[pos] == "<"
    if from_file:
        pos = _skip_spaces(line, pos + 1)
        if pos < end and line[pos] in _QUOTES:
            path, after = _read_quoted(line, pos, fail)
            return path, True, False, end if whole_line else after
    if whole_line:
        return _strip_comment(line[pos:]).strip(), from_file, False, end
    start = pos
    depth = 0
    while pos < end and not line[pos].isspace():
        if line[pos] == "{":
            depth += 1
        elif line[pos] == "}":
            if depth == 0:
                break
            depth -= 1
        pos += 1
    return line[start:pos], from_file, False, pos


def _read_quoted(line: str, pos: int, fail: _FailFn) -> tuple[str, int]:
    quote = line[pos]
    pos += 1
    out: list[str] = []
    while pos < len(line):
        char = line[pos]
        if char == "\\" and pos + 1 < len(line) and line[pos + 1] in (quote, "\\"):
            out.append(line[pos + 1])
            pos += 2
            continue
        if char == quote:
            return "".join(out), pos + 1
        out.append(char)
        pos += 1
    raise fail(f"unterminated quoted value: missing closing {quote}")


def _read_name(line: str, pos: int, fail: _FailFn) -> tuple[str, int]:
    if line[pos] in _QUOTES:
        return _read_quoted(line, pos, fail)
    match = _NAME_RE.match(line, pos)
    if match is None:
        raise fail(f"expected 'key = value', 'type [name] {{' or '}}', got {line.strip()!r}")
    return match.group(), match.end()


def _expand(value: str, key: str, section: _SectionBuilder) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        found = section.lookup(name)
        if found is not None:
            return found
        if name == key:
            return ""
        return match.group()

    if "$" not in value:
        return value
    return _VAR_RE.sub(replace, value).strip()
