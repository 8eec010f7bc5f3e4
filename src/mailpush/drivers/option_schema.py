"""How a push driver declares its options: once, with the settings' own declaration objects.

Each option is a `config.schema.SettingSpec` (name, type, default written as
configuration text, doc) plus what only driver options need: the other names
Dovecot accepts for it (2.3 `timeout_msecs`, lib-http's
`http_client_request_timeout` in a 2.4 block, a top-level
`push_notification_<driver>_*`), the unit of a bare number, and bounds. The
driver reads its values through these declarations (`driver_options`), and
`docs/drivers/<driver>.md` is generated from them (`drivers.docs`), so what is
parsed, what is the default and what is documented cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from ..config.schema import SettingSpec, SettingType

__all__ = ["DriverOption", "DriverOptionSchema", "declare_option"]


@dataclass(frozen=True)
class DriverOption:
    """One option of a push driver. `spec.default` is parsed like an admin's value."""

    spec: SettingSpec
    #: Other names accepted for it, in order of preference after `spec.name`.
    aliases: tuple[str, ...] = ()
    #: Durations: the unit of a number written without one; None: a unit is required.
    bare_unit: str | None = "s"
    #: Numbers: the smallest and largest value accepted.
    minimum: int = 0
    maximum: int = 100
    #: The driver refuses to start without it.
    required: bool = False
    #: What an empty default means, for the docs (e.g. the global setting used instead).
    default_doc: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def type(self) -> SettingType:
        return self.spec.type

    @property
    def default(self) -> str:
        return self.spec.default

    @property
    def names(self) -> tuple[str, ...]:
        """Every accepted name, the preferred first."""
        return (self.spec.name, *self.aliases)

    def with_default(self, default: str, *, default_doc: str = "") -> DriverOption:
        """This shared option with one driver's default (chronos retries later than webhook)."""
        return replace(self, spec=replace(self.spec, default=default), default_doc=default_doc)

    def with_bare_unit(self, bare_unit: str | None) -> DriverOption:
        """This shared option with another unit for bare numbers (Dovecot's milliseconds)."""
        return replace(self, bare_unit=bare_unit)


def declare_option(
    name: str,
    type: SettingType,
    default: str,
    doc: str,
    *,
    aliases: tuple[str, ...] = (),
    bare_unit: str | None = "s",
    minimum: int = 0,
    maximum: int = 100,
    required: bool = False,
    default_doc: str = "",
    choices: tuple[str, ...] = (),
) -> DriverOption:
    """A driver option; the arguments are those of `SettingSpec` and `DriverOption`."""
    return DriverOption(
        SettingSpec(name, type, default, doc, choices=choices),
        aliases, bare_unit, minimum, maximum, required, default_doc,
    )


@dataclass(frozen=True)
class DriverOptionSchema:
    """Everything a driver accepts, and what the driver is, for its generated page."""

    driver: str
    #: What the driver does, a few sentences for its documentation page (Markdown).
    summary: str
    options: tuple[DriverOption, ...] = ()

    def __iter__(self) -> Iterator[DriverOption]:
        return iter(self.options)

    def get(self, name: str) -> DriverOption | None:
        """The declaration of `name` (its preferred name), or None if the driver has none."""
        for option in self.options:
            if option.name == name:
                return option
        return None

    def known_names(self) -> tuple[str, ...]:
        """Every name an option may be written with, in declaration order."""
        return tuple(name for option in self.options for name in option.names)
