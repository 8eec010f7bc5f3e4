"""The Python functions one user's Lua state calls directly (the library's `host` table).

These run synchronously inside a Lua call, so they do nothing slow: logging,
the clock, settings lookups, checking HTTP options. Anything that waits (HTTP,
the store) goes through `host_io.py` instead, by yielding.

Strings cross as bytes (the state is created with `encoding=None`); results
that can fail are `(ok, value_or_message)` pairs so the Lua side raises the
error at the script's line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from ..lua_strings import text
from ..var_expand import UnknownVariableError, UserVariables, expand
from .http_requests import (
    DEFAULT_RESPONSE_MAX_SIZE,
    HttpClientSettings,
    HttpOptionError,
    check_url,
    client_settings,
)

__all__ = ["HostApi"]

log = logging.getLogger(__name__)

_LEVELS = {
    b"debug": logging.DEBUG,
    b"info": logging.INFO,
    b"warning": logging.WARNING,
    b"error": logging.ERROR,
}


def _field_value(value: object) -> object:
    if isinstance(value, bytes):
        return text(value)
    if isinstance(value, bool | int | float):
        return value
    return "(not a string or number)"


class HostApi:
    """The synchronous host functions of one (driver instance, user) Lua state."""

    def __init__(
        self,
        user: str,
        settings: Callable[[], Mapping[str, str]],
        variables: UserVariables,
        prefix: str,
        fallback: Mapping[str, str] | None = None,
        response_max_size: int = DEFAULT_RESPONSE_MAX_SIZE,
    ) -> None:
        self.user = user
        #: lua_http_response_max_size, applied to every client the script makes.
        self.response_max_size = response_max_size
        self._settings = settings
        #: The 2.4 block's `lua_settings { }`, for settings the plugin lacks.
        self._fallback = fallback or {}
        self.variables = variables
        #: Log lines start with this (`lua: alice: `).
        self.prefix = prefix

    def functions(self) -> dict[bytes, Callable[..., Any]]:
        return {
            b"now": time.monotonic,
            b"wall_time": time.time,
            b"log": self.log,
            b"debug_enabled": self.debug_enabled,
            b"http_client": self.http_client,
            b"http_check_url": self.http_check_url,
            b"plugin_getenv": self.plugin_getenv,
            b"var_expand": self.var_expand,
        }

    def log(self, level: bytes, message: bytes, name: bytes | None = None,
            fields: Any = None) -> None:
        extra: dict[str, object] = {"lua_user": self.user}
        if isinstance(name, bytes):
            extra["lua_event"] = text(name)
        if fields is not None:
            # Only plain values: a script's table here would be turned into text by the
            # log formatter, running its __tostring where no limit does.
            extra["lua_fields"] = {text(k): _field_value(v) for k, v in fields.items()
                                   if isinstance(k, bytes)}
        log.log(_LEVELS.get(level, logging.INFO) if isinstance(level, bytes) else logging.INFO,
                "%s%s", self.prefix, text(message) if isinstance(message, bytes) else "",
                extra=extra)

    def debug_enabled(self) -> bool:
        return log.isEnabledFor(logging.DEBUG)

    def http_client(self, options: Any) -> tuple[bool, object]:
        """The client's settings, kept by the Lua object (opaque to the script): freed with it."""
        try:
            settings: HttpClientSettings = client_settings(options.items())
        except HttpOptionError as exc:
            return False, str(exc).encode()
        return True, replace(settings, max_response_size=self.response_max_size)

    def http_check_url(self, url: bytes) -> bytes | None:
        problem = check_url(text(url))
        return None if problem is None else problem.encode()

    def plugin_getenv(self, key: bytes) -> bytes | None:
        """A plugin {} setting, overridden by the user's userdb field, %-expanded.

        Then the 2.4 `lua_settings { }`: scripts written for 2.3 read their URL
        with `plugin_getenv`, and in 2.4 it lives in that block.
        """
        name = text(key)
        value = self._settings().get(name)
        if value is None:
            value = self._fallback.get(name)
        if value is None:
            return None
        return expand(value, self.variables, strict=False).encode()

    def var_expand(self, template: bytes, service: bytes | None = None,
                   session: bytes | None = None) -> tuple[bool, bytes]:
        variables = self.variables
        if service is not None or session is not None:
            variables = UserVariables(
                variables.user, variables.home, text(service) or variables.service,
                text(session) or variables.session, variables.uid, variables.gid,
            )
        try:
            return True, expand(text(template), variables, strict=True).encode()
        except UnknownVariableError as exc:
            return False, str(exc).encode()
