"""Map a login or recipient address to a passwd-file key, as Dovecot's
`auth_username_format` does.

A username format knows the user variables only: `%u` (whole name), `%n` (local
part), `%d` (domain), their long forms `%{user}`, `%{username}`, `%{domain}`, the
`%L`/`%U` case modifiers and `%%` (expanded by `mailpush.var_expand`). Anything else
is refused when the template is first used, not silently copied, so a typo in the
setting shows up as a configuration error instead of as unknown users.
"""

from __future__ import annotations

from typing import NoReturn

from mailpush.auth.passwd_file import PasswdFile, UserRecord
from mailpush.errors import SettingError
from mailpush.var_expand import UnknownVariable, describe_known, expand, user_values

__all__ = ["format_username", "resolve_user"]

SETTING = "auth_username_format"


def format_username(template: str, name: str) -> str:
    """`name` rewritten by `template`, e.g. `%Ln` turns `Alice@Example.org` into `alice`.

    The domain starts after the first `@`, as in Dovecot; a name without `@` has an
    empty domain and is its own local part.
    """
    return expand(template, user_values(name), _refuse)


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


def _refuse(unknown: UnknownVariable) -> NoReturn:
    known = describe_known(user_values(""))
    raise SettingError(SETTING, f"{unknown.reason} in '{unknown.template}' (known: {known})")
