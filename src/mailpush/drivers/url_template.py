"""Endpoint URLs with Dovecot's user variables (`%u`, `%n`, `%d`, `%{user}`…), per user.

Dovecot expands %variables in plugin settings for each user, so one setting
can send each user's notifications to their own path
(`https://ox/push/%{user}`). The variables are those of
`auth_username_format`, with the `%L`/`%U` case modifiers (expanded by
`mailpush.var_expand`); a literal `%` is written `%%`, as in Dovecot. The
user name is percent-encoded where it is inserted, so a name cannot change
the URL's structure.
"""

from __future__ import annotations

from typing import NoReturn
from urllib.parse import quote

from ..errors import SettingError
from ..logging_config import mask_secrets
from ..var_expand import UnknownVariable, describe_known, expand, user_values

__all__ = ["UrlTemplate"]

_SAMPLE_USER = "user@example.org"


class UrlTemplate:
    def __init__(self, template: str, setting: str, where: str | None = None) -> None:
        """Checks the template now, so a typo stops start-up (SettingError)."""
        self.template = template
        self._setting = setting
        self._where = where
        self.sample = expand(template, user_values(_SAMPLE_USER), self._refuse)

    def expand(self, user: str) -> str:
        return expand(self.template, user_values(quote(user, safe="@+")), self._refuse)

    def _refuse(self, unknown: UnknownVariable) -> NoReturn:
        # The template may hold the endpoint's password: the message masks it.
        known = describe_known(user_values(""))
        reason = f"{unknown.reason} in '{unknown.template}' (known: {known})"
        raise SettingError(
            self._setting,
            f"{mask_secrets(reason)}; write %% for a literal % "
            "(also in percent-encoded passwords: p%%40ss)",
            self._where,
        )
