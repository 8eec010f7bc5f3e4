"""Dovecot's %-variables for `mail_user:var_expand()`, plugin settings and `lua_settings`.

Short forms `%u %n %d %h %s %i %p %%`, the modifiers `%L` (lower) and `%U`
(upper), and long forms `%{user}`, `%{username}`, `%{domain}`, `%{home}`,
`%{service}`, `%{session}`, `%{uid}`, `%{gid}`, `%{pid}`, `%{hostname}`.
`var_expand()` refuses unknown variables (Dovecot raises
`var_expand(<t>) failed: …`); setting values keep them as written, so a URL
such as `http://host/a%20b` survives.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["UnknownVariableError", "UserVariables", "expand"]

_HOSTNAME = socket.gethostname()
_SHORT = {"u": "user", "n": "username", "d": "domain", "h": "home", "s": "service",
          "i": "uid", "p": "pid"}


class UnknownVariableError(ValueError):
    """A template names a variable that does not exist."""


@dataclass(frozen=True, slots=True)
class UserVariables:
    user: str
    home: str = ""
    service: str = ""
    session: str = ""
    uid: str = ""
    gid: str = ""

    def values(self) -> Mapping[str, str]:
        local, _, domain = self.user.partition("@")
        return {
            "user": self.user,
            "username": local,
            "domain": domain,
            "home": self.home,
            "service": self.service,
            "session": self.session,
            "uid": self.uid,
            "gid": self.gid,
            "pid": str(os.getpid()),
            "hostname": _HOSTNAME,
        }


def expand(template: str, variables: UserVariables, *, strict: bool) -> str:
    """`template` with its variables replaced; `strict` raises UnknownVariableError."""
    if "%" not in template:
        return template
    values = variables.values()
    out: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        start = i
        i += 1
        case = ""
        while i < len(template) and template[i] in "LU":
            case = template[i]
            i += 1
        name: str | None = None
        if i < len(template) and template[i] == "%" and not case:
            out.append("%")
            i += 1
            continue
        if i < len(template) and template[i] == "{":
            end = template.find("}", i)
            if end != -1:
                name = template[i + 1 : end]
                i = end + 1
        elif i < len(template):
            name = _SHORT.get(template[i])
            i += 1
        if name is None or name not in values:
            if strict:
                raise UnknownVariableError(f"Unknown variable '{template[start:i]}'")
            out.append(template[start:i])
            continue
        value = values[name]
        out.append(value.lower() if case == "L" else value.upper() if case == "U" else value)
    return "".join(out)
