"""The variables a Lua script's user has for `mail_user:var_expand()`, plugin settings
and `lua_settings`, and how each treats an unknown one.

Long forms `%{user}`, `%{username}`, `%{domain}`, `%{home}`, `%{service}`,
`%{session}`, `%{uid}`, `%{gid}`, `%{pid}`, `%{hostname}`, and the short
forms Dovecot has for some of them (`%u %n %d %h %s %i %p`); the expanding
itself (`%L`/`%U`, `%%`) is `mailpush.var_expand`. `var_expand()` refuses
unknown variables (Dovecot raises `var_expand(<t>) failed: …`); setting
values keep them as written, so a URL such as `http://host/a%20b` survives.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from ... import var_expand

__all__ = ["UnknownVariableError", "UserVariables", "expand"]

_HOSTNAME = socket.gethostname()


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
        return {
            **var_expand.user_values(self.user),
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
    policy = _refuse if strict else var_expand.keep_as_written
    return var_expand.expand(template, variables.values(), policy)


def _refuse(unknown: var_expand.UnknownVariable) -> NoReturn:
    # Dovecot's wording; the Lua side adds `var_expand(<template>) failed: `.
    raise UnknownVariableError(f"Unknown variable '{unknown.text}'")
