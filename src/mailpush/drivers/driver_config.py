"""One configured driver instance, as the configuration gives it, before any option is read.

It lives apart from `base` (the driver interface) and `driver_options` (reading
the options) because both need it, and neither should import the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DriverConfig"]


@dataclass(frozen=True, slots=True)
class DriverConfig:
    """One configured driver instance, from either configuration syntax."""

    #: Stable, unique name of this instance (outbox rows refer to it).
    instance: str
    #: Registered driver name, lower case.
    driver: str
    options: Mapping[str, str] = field(default_factory=dict)
    #: 2.4 nested blocks, e.g. `lua_settings { }`.
    subsections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Where it was configured, for error messages (`file:line` or the setting name).
    where: str = ""
    syntax: Literal["2.3", "2.4"] = "2.3"
