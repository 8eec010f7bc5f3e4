"""Which Sieve scripts run for a user, from Dovecot's plugin settings.

`sieve_before`, `sieve_before2`, … then the user's `sieve`, then
`sieve_after`, `sieve_after2`, … — numbered settings are read until the first
missing number, as Dovecot does. Values are Dovecot script locations:
`[file:]path[;option=value...]`; for the personal script the `;active=`
option names the active script (`sieve = file:~/sieve;active=~/.dovecot.sieve`).
`~` and `%h` (`%{home}`) are the user's home, and `%u`, `%n`, `%d` (with
`%L`/`%U`) are expanded as in `auth_username_format` (by `mailpush.var_expand`).
Per-user userdb fields override the global values before this module sees them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..errors import SettingError
from ..var_expand import UnknownVariable, Value, describe_known, expand, user_values

__all__ = ["ScriptLocation", "SIEVE_SETTINGS", "has_sieve_settings", "script_locations"]

#: The settings that name scripts; without any of them Sieve is skipped entirely.
SIEVE_SETTINGS = ("sieve", "sieve_before", "sieve_after")


@dataclass(frozen=True, slots=True)
class ScriptLocation:
    #: The setting it came from, for messages (`sieve_before2`).
    setting: str
    path: Path
    #: The user's own script: a missing file is normal, not worth a warning.
    personal: bool


def has_sieve_settings(settings: Mapping[str, str]) -> bool:
    return any(settings.get(name, "").strip() for name in SIEVE_SETTINGS)


def script_locations(
    settings: Mapping[str, str], user: str, home: str | None
) -> list[ScriptLocation]:
    """The script locations in execution order.

    Raises SettingError naming the setting when a value cannot be expanded
    (an unknown `%` variable, `~` for a user without a home, another location
    type than `file:`).
    """
    locations = [
        ScriptLocation(setting, path, personal=False)
        for setting, path in _numbered(settings, "sieve_before", user, home)
    ]
    personal = settings.get("sieve", "").strip()
    if personal:
        locations.append(ScriptLocation("sieve", _path("sieve", personal, user, home), True))
    locations.extend(
        ScriptLocation(setting, path, personal=False)
        for setting, path in _numbered(settings, "sieve_after", user, home)
    )
    return locations


def _numbered(
    settings: Mapping[str, str], base: str, user: str, home: str | None
) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    number = 1
    while True:
        setting = base if number == 1 else f"{base}{number}"
        value = settings.get(setting, "").strip()
        if not value:
            return found
        found.append((setting, _path(setting, value, user, home)))
        number += 1


def _path(setting: str, value: str, user: str, home: str | None) -> Path:
    kind, colon, rest = value.partition(":")
    if colon and kind.isalpha() and "/" not in kind:
        if kind != "file":
            raise SettingError(
                setting,
                f"script location type '{kind}:' is not supported by mailpush; "
                "give a file or directory path",
            )
        value = rest
    location, *options = value.split(";")
    for option in options:
        name, _, option_value = option.partition("=")
        if name.strip() == "active" and option_value.strip():
            location = option_value.strip()
    return _expand(setting, location.strip(), user, home)


def _expand(setting: str, text: str, user: str, home: str | None) -> Path:
    """`~`, `%h` and the user variables of a location, expanded in one pass over the setting.

    The home and the user name are inserted as they are: a `%` in them is
    never expanded again, and a `~` coming from them is not the home.
    """
    value = text
    tilde = text == "~" or text.startswith("~/")
    if tilde:
        text = text[1:]
    values: dict[str, Value] = {
        **user_values(user),
        "home": lambda: _needs_home(setting, value, user, home),
    }

    def refuse(unknown: UnknownVariable) -> NoReturn:
        raise SettingError(
            setting, f"{unknown.reason} in '{value}' (known: {describe_known(values)})"
        )

    text = expand(text, values, refuse)
    if tilde:
        text = _needs_home(setting, value, user, home) + text
    path = Path(text)
    if not path.is_absolute():
        if not home:
            raise SettingError(
                setting,
                f"'{text}' is relative, which means relative to the home directory, "
                f"and {user} has none; give an absolute path",
            )
        path = Path(home) / path
    return path


def _needs_home(setting: str, value: str, user: str, home: str | None) -> str:
    if not home:
        raise SettingError(
            setting,
            f"'{value}' needs the user's home directory, and {user} has none "
            "(set it in the passwd-file or as userdb_home)",
        )
    return home

