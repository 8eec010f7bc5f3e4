"""Reading one driver instance's options through their declarations, with errors naming them.

Dovecot spells the same option differently by syntax: 2.3 `chronos:url=…
msg_max_size=…`, a 2.4 block `url = …` or `push_notification_chronos_url = …`,
and lib-http's `http_client_request_timeout` inside a 2.4 block. A declaration
(`option_schema.DriverOption`) lists the accepted names in order of
preference; the first one present wins. Values, defaults included, go
through the same parsers as global settings (`config.values`), so `500kb` or
`2s` mean the same everywhere and the documented default is the one used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..config import parse_bool, parse_duration, parse_size
from ..config.schema import SettingType
from ..config.values import parse_int
from ..errors import InvalidValueError, SettingError
from .driver_config import DriverConfig
from .option_schema import DriverOption, DriverOptionSchema
from .shared_options import DELIVERY_ATTEMPTS, MAX_AGE, RETRY_INITIAL, RETRY_MAX_INTERVAL

__all__ = ["DriverOptions", "RetryOptions", "read_retry_options"]

_Number = TypeVar("_Number", int, float)


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """One driver instance's limits for the framework's retries; None: the global setting.

    Read from the driver options `delivery_attempts`, `retry_initial`,
    `retry_max_interval` and `max_age`; each driver declares its own defaults
    (`PushDriver.option_schema`), because what a repeat costs differs by
    driver: a repeated Chronos PUT imports an invitation again, a repeated
    webhook POST is dropped by its `webhook-id`.
    """

    #: Attempts of one delivery in all, the first included; an attempt that timed out
    #: counts (its request may have arrived). 0: no limit but the age.
    attempts: int | None = None
    initial: float | None = None
    max_interval: float | None = None
    max_age: float | None = None


def read_retry_options(options: DriverOptions, schema: DriverOptionSchema) -> RetryOptions:
    """The retry options of one instance, with the defaults `schema` declares for them."""

    def declared(shared: DriverOption) -> DriverOption:
        return schema.get(shared.name) or shared

    return RetryOptions(
        options.optional_count(declared(DELIVERY_ATTEMPTS)),
        options.optional_duration(declared(RETRY_INITIAL)),
        options.optional_duration(declared(RETRY_MAX_INTERVAL)),
        options.optional_duration(declared(MAX_AGE)),
    )


class DriverOptions:
    """The options of one driver instance, read one declaration at a time."""

    def __init__(self, config: DriverConfig) -> None:
        self.config = config
        self._options: Mapping[str, str] = config.options

    def error(self, option: str, reason: str) -> SettingError:
        """A SettingError for `option` of this instance, e.g. `chronos msg_max_size: …`."""
        return SettingError(f"{self.config.instance} {option}", reason, self.config.where or None)

    def find(self, option: DriverOption) -> tuple[str, str] | None:
        """(name, value) of the first of the option's names that is set."""
        for name in option.names:
            if name in self._options:
                return name, self._options[name]
        return None

    def text(self, option: DriverOption) -> str:
        found = self.find(option)
        return option.default if found is None else found[1].strip()

    def words(self, option: DriverOption) -> tuple[str, ...]:
        """Words separated by commas (2.3 values cannot hold spaces) or spaces (2.4)."""
        text = self.text(option)
        return tuple(word for word in text.replace(",", " ").split() if word)

    def flag(self, option: DriverOption) -> bool:
        """A 2.3 bare option (`user_from_metadata`) or a 2.4 boolean (`… = yes`)."""
        _expect(option, SettingType.BOOL)
        found = self.find(option)
        if found is None:
            return parse_bool(option.default) if option.default else False
        name, value = found
        if value.strip() == "":
            return True
        try:
            return parse_bool(value)
        except InvalidValueError as exc:
            raise self.error(name, str(exc)) from None

    def duration(self, option: DriverOption) -> float:
        """Seconds, more than 0; a number without unit is in `option.bare_unit`."""
        seconds = self.optional_duration(option)
        assert seconds is not None, f"{option.name} declares no default"
        return seconds

    def optional_duration(self, option: DriverOption) -> float | None:
        """As `duration`; None when it is not set and declares no default."""
        _expect(option, SettingType.DURATION)
        found = self.find(option)
        if found is None:
            if not option.default:
                return None
            return parse_duration(option.default, bare_unit=option.bare_unit)
        name, value = found
        return self._positive(
            name, value, lambda text: parse_duration(text, bare_unit=option.bare_unit)
        )

    def size(self, option: DriverOption) -> int:
        """Bytes, more than 0."""
        _expect(option, SettingType.SIZE)
        found = self.find(option)
        if found is None:
            return parse_size(option.default)
        name, value = found
        return self._positive(name, value, parse_size)

    def count(self, option: DriverOption) -> int:
        """A whole number within the option's bounds."""
        number = self.optional_count(option)
        assert number is not None, f"{option.name} declares no default"
        return number

    def optional_count(self, option: DriverOption) -> int | None:
        """As `count`; None when it is not set and declares no default."""
        _expect(option, SettingType.COUNT, SettingType.LIMIT, SettingType.NUMBER)
        found = self.find(option)
        if found is None:
            if not option.default:
                return None
            return parse_int(option.default, minimum=option.minimum, maximum=option.maximum)
        name, value = found
        try:
            return parse_int(value, minimum=option.minimum, maximum=option.maximum)
        except InvalidValueError as exc:
            raise self.error(name, str(exc)) from None

    def attempts(self, max_retries: DriverOption, max_attempts: DriverOption) -> int:
        """Requests per dispatcher call: 2.3 `max_retries` + 1, or 2.4
        `http_client_request_max_attempts`."""
        if self.find(max_retries) is not None:
            return self.count(max_retries) + 1
        return self.count(max_attempts)

    def _positive(self, name: str, value: str, parse: Callable[[str], _Number]) -> _Number:
        """`value`, set as option `name`, parsed; refused unless more than 0."""
        try:
            number = parse(value)
        except InvalidValueError as exc:
            raise self.error(name, str(exc)) from None
        if number <= 0:
            raise self.error(name, f"must be more than 0, got {value!r}")
        return number


def _expect(option: DriverOption, *types: SettingType) -> None:
    """A declaration read as another type is a programming error, caught by any test."""
    assert option.type in types, f"{option.name} is declared {option.type.value}"
