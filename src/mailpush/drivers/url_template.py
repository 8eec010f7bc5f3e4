"""Endpoint URLs with Dovecot's user variables (`%u`, `%n`, `%d`, `%{user}`…), per user.

Dovecot expands %variables in plugin settings for each user, so one setting
can send each user's notifications to their own path
(`https://ox/push/%{user}`). The variables and the `%L` lower-casing
modifier are those of `auth_username_format`; a literal `%` is written `%%`,
as in Dovecot. The user name is percent-encoded where it is inserted, so a
name cannot change the URL's structure.
"""

from __future__ import annotations

from urllib.parse import quote

from ..auth.username_format import format_username
from ..errors import SettingError
from ..logging_config import mask_secrets

__all__ = ["UrlTemplate"]

_SAMPLE_USER = "user@example.org"


class UrlTemplate:
    def __init__(self, template: str, setting: str, where: str | None = None) -> None:
        """Checks the template now, so a typo stops start-up (SettingError)."""
        self.template = template
        try:
            self.sample = format_username(template, _SAMPLE_USER)
        except SettingError as exc:
            raise SettingError(
                setting,
                f"{mask_secrets(exc.reason)}; write %% for a literal % "
                "(also in percent-encoded passwords: p%%40ss)",
                where,
            ) from None

    def expand(self, user: str) -> str:
        return format_username(self.template, quote(user, safe="@+"))
