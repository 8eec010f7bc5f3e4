"""Reading one driver instance's options, with errors that name the option and its place.

Dovecot spells the same option differently by syntax: 2.3 `chronos:url=…
msg_max_size=…`, a 2.4 block `url = …` or `push_notification_chronos_url = …`,
and lib-http's `http_client_request_timeout` inside a 2.4 block. Each read
takes the accepted names in order of preference; the first one present wins.
Values use the same parsers as global settings (`config.values`), so `500kb`
or `2s` mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import parse_bool, parse_duration, parse_size
from ..config.values import parse_int
from ..errors import InvalidValueError, SettingError

if TYPE_CHECKING:
    # Only a type here: `base` reads every driver's retry options through this module.
    from .base import DriverConfig

__all__ = ["DriverOptions", "RetryOptions"]

#: The most `delivery_attempts` accepted (0 is no limit).
MAX_DELIVERY_ATTEMPTS = 1000


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """One driver instance's limits for the framework's retries; None: the global setting.

    Read from the driver options `delivery_attempts`, `retry_initial`,
    `retry_max_interval` and `max_age`; a driver class states its own defaults
    (`PushDriver.retry_defaults`), because what a repeat costs differs by
    driver: a repeated Chronos PUT imports an invitation again, a repeated
    webhook POST is dropped by its `webhook-id`.
    """

    #: Attempts of one delivery in all, the first included; an attempt that timed out
    #: counts (its request may have arrived). 0: no limit but the age.
    attempts: int | None = None
    initial: float | None = None
    max_interval: float | None = None
    max_age: float | None = None


class DriverOptions:
    def __init__(self, config: DriverConfig) -> None:
        self.config = config
        self._options: Mapping[str, str] = config.options

    def error(self, option: str, reason: str) -> SettingError:
        """A SettingError for `option` of this instance, e.g. `chronos msg_max_size: …`."""
        return SettingError(f"{self.config.instance} {option}", reason, self.config.where or None)

    def find(self, *names: str) -> tuple[str, str] | None:
        """(name, value) of the first of `names` that is set."""
        for name in names:
            if name in self._options:
                return name, self._options[name]
        return None

    def text(self, *names: str, default: str = "") -> str:
        found = self.find(*names)
        return default if found is None else found[1].strip()

    def flag(self, *names: str) -> bool:
        """A 2.3 bare option (`user_from_metadata`) or a 2.4 boolean (`… = yes`)."""
        found = self.find(*names)
        if found is None:
            return False
        name, value = found
        if value.strip() == "":
            return True
        try:
            return parse_bool(value)
        except InvalidValueError as exc:
            raise self.error(name, str(exc)) from None

    def duration(self, *names: str, default: float, bare_unit: str | None = "s") -> float:
        """Seconds; a number without unit is `bare_unit` (None: a unit is required)."""
        found = self.find(*names)
        if found is None:
            return default
        name, value = found
        try:
            seconds = parse_duration(value, bare_unit=bare_unit)
        except InvalidValueError as exc:
            raise self.error(name, str(exc)) from None
        if seconds <= 0:
            raise self.error(name, f"must be more than 0, got {value!r}")
        return seconds

    def size(self, *names: str, default: int) -> int:
        found = self.find(*names)
        if found is None:
            return default
        name, value = found
        try:
            size = parse_size(value)
        except InvalidValueError as exc:
            raise self.error(name, str(exc)) from None
        if size <= 0:
            raise self.error(name, f"must be more than 0, got {value!r}")
        return size

    def count(self, *names: str, default: int, minimum: int = 0, maximum: int = 100) -> int:
        found = self.find(*names)
        if found is None:
            return default
        name, value = found
        try:
            return parse_int(value, minimum=minimum, maximum=maximum)
        except InvalidValueError as exc:
            raise self.error(name, str(exc)) from None

    def attempts(self, *, default_retries: int) -> int:
        """Requests per dispatcher call: 2.3 `max_retries` + 1, or 2.4
        `http_client_request_max_attempts`."""
        if self.find("max_retries") is not None:
            return self.count("max_retries", default=default_retries) + 1
        return self.count(
            "http_client_request_max_attempts", default=default_retries + 1, minimum=1
        )

    def retry(self, defaults: RetryOptions) -> RetryOptions:
        """This instance's retry options; each one not given keeps `defaults`' value."""
        attempts = defaults.attempts
        if self.find("delivery_attempts") is not None:
            attempts = self.count("delivery_attempts", default=0, maximum=MAX_DELIVERY_ATTEMPTS)
        return RetryOptions(
            attempts,
            self._optional_duration("retry_initial", defaults.initial),
            self._optional_duration("retry_max_interval", defaults.max_interval),
            self._optional_duration("max_age", defaults.max_age),
        )

    def _optional_duration(self, name: str, default: float | None) -> float | None:
        if self.find(name) is None:
            return default
        return self.duration(name, default=0.0)

    def words(self, *names: str) -> tuple[str, ...]:
        """Words separated by commas (2.3 values cannot hold spaces) or spaces (2.4)."""
        text = self.text(*names)
        return tuple(word for word in text.replace(",", " ").split() if word)
