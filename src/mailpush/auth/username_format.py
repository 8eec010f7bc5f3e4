"""Map a login or recipient address to a passwd-file key, as Dovecot's
`auth_username_format` does.

Only the part of Dovecot's variable language a username format needs is implemented:
`%u` (whole name), `%n` (local part), `%d` (domain), their long forms `%{user}`,
`%{username}`, `%{domain}`, the lower-casing modifier `%L` (`%Lu`, `%L{user}`) and `%%`.
Anything else is refused when the template is first used, not silently copied, so a
typo in the setting shows up as a configuration error instead of as unknown users.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from mailpush.auth.passwd_file import PasswdFile, UserRecord
from mailpush.errors import SettingError

__all__ = ["format_username", "resolve_user"]

SETTING = "auth_username_format"


def format_username(template: str, name: str) -> str:
    """`name` rewritten by `template`, e.g. `%Ln` turns `Alice@Example.org` into `alice`.

    The domain starts after the first `@`, as in Dovecot; a name without `@` has an
    empty domain and is its own local part.
    """
    local, _, domain = name.partition("@")
    values = {"u": name, "n": local, "d": domain}
    parts = []
    for piece in _compile(template):
        if piece.variable is None:
            parts.append(piece.text)
        else:
            value = values[piece.variable]
            parts.append(value.lower() if piece.lowercase else value)
    return "".join(parts)


def resolve_user(passwd: PasswdFile, address: str, template: str = "%Lu") -> UserRecord | None:
    """The passwd-file entry for a login name or a recipient address.

    The formatted name is looked up first, so an entry holding the full address wins;
    failing that, an address finds the entry named by its local part, which lets a
    passwd-file of bare `alice` lines receive mail for `alice@` any domain the MTA
    routes here.
    """
    key = format_username(template, address)
    record = passwd.lookup(key)
    if record is not None:
        return record
    local, at, _ = key.partition("@")
    if at and local:
        return passwd.lookup(local)
    return None


@dataclass(frozen=True)
class _Piece:
    """Literal `text`, or a `variable` (u, n, d) to substitute."""

    text: str = ""
    variable: str | None = None
    lowercase: bool = False


_LONG_NAMES = {"user": "u", "username": "n", "domain": "d"}
_KNOWN = "%u, %n, %d, %{user}, %{username}, %{domain}, the %L modifier and %%"


@lru_cache(maxsize=32)
def _compile(template: str) -> tuple[_Piece, ...]:
    """The template as pieces; cached because it is one setting used per login."""
    pieces: list[_Piece] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char != "%":
            literal.append(char)
            i += 1
            continue
        start = i
        i += 1
        lowercase = False
        while i < len(template) and template[i] == "L":
            lowercase = True
            i += 1
        if i >= len(template):
            raise _bad(template, f"'{template[start:]}' at the end is incomplete")
        if template[i] == "%" and not lowercase:
            literal.append("%")
            i += 1
            continue
        if template[i] == "{":
            end = template.find("}", i)
            if end == -1:
                raise _bad(template, f"'{template[start:]}' has no closing '}}'")
            long_name = template[i + 1 : end]
            variable = _LONG_NAMES.get(long_name)
            i = end + 1
        else:
            variable = template[i] if template[i] in "und" else None
            i += 1
        if variable is None:
            raise _bad(template, f"unknown variable '{template[start:i]}'")
        if literal:
            pieces.append(_Piece(text="".join(literal)))
            literal = []
        pieces.append(_Piece(variable=variable, lowercase=lowercase))
    if literal:
        pieces.append(_Piece(text="".join(literal)))
    return tuple(pieces)


def _bad(template: str, reason: str) -> SettingError:
    return SettingError(SETTING, f"{reason} in '{template}' (known: {_KNOWN})")
