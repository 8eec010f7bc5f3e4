"""Dovecot's `%`-variables, expanded in one place for every setting and script that has them.

A template names a variable by its one letter (`%u`) or its long name
(`%{user}`); `%L` and `%U` before the name lower- or upper-case the value
(`%Lu`, `%U{domain}`, applied in order), and `%%` is a literal `%`. The one
letters are Dovecot's, the same for every caller (`SHORT_NAMES`); what a
caller knows is the set of long names it passes values for. So `%h` is the
home where a caller has a home (Sieve paths, Lua) and unknown where it has
none (`auth_username_format`).

What happens to a `%` the values cannot answer is the caller's policy,
passed as a function: `auth_username_format`, driver URLs and Sieve paths
refuse the setting (raise their own error), Lua's `plugin_getenv` keeps the
text as written (`keep_as_written`) so a URL such as `http://host/a%20b`
survives, Lua's `var_expand()` raises its script error. The expander
imports nothing from mailpush: auth, sieve and the drivers all use it and
must not need each other for it.

Where Dovecot 2.3's `var_expand` does something mailpush does not, the
difference is deliberate and reported through the policy, never silently
swallowed:

- a `%` (or `%L`) at the end of the template: Dovecot drops it; here it is
  an unknown variable ("at the end is incomplete");
- `%{` with no `}` after it: Dovecot takes `{` as a one-letter name; here
  it is reported as unterminated, and keeping it as written keeps only the
  `%` (and modifiers), so the rest of the template is still read;
- `%{a{b}c}`: Dovecot counts nested braces; here the name ends at the first
  `}` (`a{b`), as mailpush always did;
- `%L%`: Dovecot gives `%`; here it is unknown (only a bare `%%` is `%`);
- Dovecot's other modifiers (`%E %X %R %H %N %M %D %T`) and field
  width/offset (`%3u`, `%.2n`) are not implemented: the policy is told
  so by name, and keeping the text as written keeps `%M` / `%3`, so the
  rest stays literal as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

__all__ = [
    "SHORT_NAMES",
    "UnknownPolicy",
    "UnknownVariable",
    "Value",
    "describe_known",
    "expand",
    "keep_as_written",
    "user_values",
]

#: Dovecot's one-letter forms and the long names they stand for.
SHORT_NAMES: Mapping[str, str] = {
    "u": "user",
    "n": "username",
    "d": "domain",
    "h": "home",
    "s": "service",
    "i": "uid",
    "p": "pid",
}

#: A value, or a function giving it only when a template names it (and free to
#: raise then: a Sieve path needs a home only if it uses `%h`).
Value: TypeAlias = str | Callable[[], str]


@dataclass(frozen=True, slots=True)
class UnknownVariable:
    """One `%` in `template` that the caller's values cannot answer."""

    template: str
    #: The characters it took from the template (`%Lx`, `%{nope}`, `%` of an
    #: unterminated `%{`); `keep_as_written` puts exactly these back.
    text: str
    #: Why, for a message: `unknown variable '%x'`, `'%' at the end is incomplete`.
    reason: str


#: Given an unknown variable, the text to put in its place, or raise.
UnknownPolicy: TypeAlias = Callable[[UnknownVariable], str]


def keep_as_written(unknown: UnknownVariable) -> str:
    """The policy of settings that may hold a literal `%` (a percent-encoded URL)."""
    return unknown.text


def expand(
    template: str,
    values: Mapping[str, Value],
    unknown: UnknownPolicy,
    letters: Mapping[str, str] = SHORT_NAMES,
) -> str:
    """`template` with each variable replaced by its value from `values` (keyed by long name).

    Values are inserted as they are: a `%` inside a value is never expanded
    again. `unknown` decides every `%` that names nothing in `values`.
    `letters` is for the one setting whose one-letter forms are its own in
    Dovecot too (`deliver_log_format`: `%m` msgid, `%s` subject, `%$` status).
    """
    if "%" not in template:
        return template
    out: list[str] = []
    for piece in _parse(template):
        if isinstance(piece, str):
            out.append(piece)
            continue
        name = piece.name
        if piece.letter is not None and letters is not SHORT_NAMES:
            name = letters.get(piece.letter)
        if name is not None and name in values:
            value = values[name]
            out.append(_apply_case(value if isinstance(value, str) else value(), piece.case))
            continue
        reason = piece.problem or f"unknown variable '{piece.text}'"
        out.append(unknown(UnknownVariable(template, piece.text, reason)))
    return "".join(out)


def user_values(user: str) -> dict[str, str]:
    """`%u`, `%n`, `%d` of a user name, as every caller has them.

    The domain starts after the first `@`, as in Dovecot; a name without `@`
    has an empty domain and is its own local part.
    """
    local, _, domain = user.partition("@")
    return {"user": user, "username": local, "domain": domain}


def describe_known(values: Mapping[str, object]) -> str:
    """The forms a caller's values allow, for an error message: `%u, %n, %{user}, …`."""
    letters = {name: letter for letter, name in SHORT_NAMES.items()}
    forms = [f"%{letters[name]}" for name in values if name in letters]
    forms.extend(f"%{{{name}}}" for name in values)
    return ", ".join(forms) + ", the %L and %U modifiers and %%"


# --- parsing, once per template -------------------------------------------------------


_CASE_MODIFIERS = "LU"
#: What follows `%` in Dovecot but not here: other modifiers, then field width/offset.
_DOVECOT_MODIFIERS = "EXRHNMDT"
_DOVECOT_WIDTH = "-.0123456789"


@dataclass(frozen=True, slots=True)
class _Variable:
    """A `%…` of the template: `name` to look up, or the `problem` that makes it unknown.

    A `problem` comes with no `name`; no name and no problem is a letter that
    is none of Dovecot's.
    """

    text: str
    name: str | None
    case: str = ""
    problem: str | None = None
    #: The character after `%` (and modifiers) of a one-letter form (`%Lu` → `u`).
    letter: str | None = None


def _apply_case(value: str, case: str) -> str:
    for modifier in case:
        value = value.lower() if modifier == "L" else value.upper()
    return value


def _parse(template: str) -> tuple[str | _Variable, ...]:
    """The template as literal text and variables, in time linear in its length.

    Settings are parsed once (cached); a script's long or one-off templates are
    not kept.
    """
    if len(template) <= _CACHED_LENGTH:
        return _parse_cached(template)
    return _parse_uncached(template)


_CACHED_LENGTH = 1024


def _parse_uncached(template: str) -> tuple[str | _Variable, ...]:
    pieces: list[str | _Variable] = []
    literal: list[str] = []
    length = len(template)
    #: The first `}` at or after the current `%{`, found once per `}` (not once per `%{`).
    close = -1
    i = 0
    while i < length:
        percent = template.find("%", i)
        if percent == -1:
            literal.append(template[i:])
            break
        literal.append(template[i:percent])
        i = percent + 1
        while i < length and template[i] in _CASE_MODIFIERS:
            i += 1
        case = template[percent + 1 : i]
        if i == length:
            text = template[percent:]
            variable = _Variable(text, None, problem=f"'{text}' at the end is incomplete")
        elif template[i] == "%" and not case:
            literal.append("%")
            i += 1
            continue
        elif template[i] == "{":
            if close != length and close < i:
                close = template.find("}", i)
                if close == -1:
                    close = length
            if close == length:
                text = template[percent:i]
                variable = _Variable(text, None, problem=f"'{text}{{' has no closing '}}'")
            else:
                variable = _Variable(template[percent : close + 1], template[i + 1 : close], case)
                i = close + 1
        else:
            i += 1
            text = template[percent:i]
            char = text[-1]
            problem = _not_implemented(text, char)
            variable = _Variable(text, SHORT_NAMES.get(char), case, problem,
                                 None if problem else char)  # fmt: skip
        _flush(literal, pieces)
        pieces.append(variable)
    _flush(literal, pieces)
    return tuple(pieces)


_parse_cached = lru_cache(maxsize=256)(_parse_uncached)


def _flush(literal: list[str], pieces: list[str | _Variable]) -> None:
    text = "".join(literal)
    literal.clear()
    if text:
        pieces.append(text)


def _not_implemented(text: str, char: str) -> str | None:
    """Why a Dovecot form mailpush lacks is unknown here, or None for an ordinary letter."""
    if char in _DOVECOT_MODIFIERS:
        return (
            f"'{text}': Dovecot's %{char} modifier is not supported "
            "(mailpush knows the %L and %U modifiers)"
        )
    if char in _DOVECOT_WIDTH:
        return f"'{text}': Dovecot's field width and offset are not supported"
    return None
