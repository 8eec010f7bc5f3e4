"""Driver names → driver classes, looked up case-insensitively as Dovecot does."""

from __future__ import annotations

from ..errors import SettingError
from .base import PushDriver


class DriverRegistry:
    def __init__(self, drivers: list[type[PushDriver]] | None = None) -> None:
        self._drivers: dict[str, type[PushDriver]] = {}
        for driver in drivers or []:
            self.register(driver)

    def register(self, driver: type[PushDriver]) -> None:
        key = driver.name.lower()
        if key in self._drivers:
            raise ValueError(f"push driver {driver.name!r} registered twice")
        self._drivers[key] = driver

    def known(self) -> list[str]:
        return sorted(self._drivers)

    def classes(self) -> list[type[PushDriver]]:
        """The registered drivers, by name."""
        return [self._drivers[name] for name in self.known()]

    def get(self, name: str, setting: str, where: str | None = None) -> type[PushDriver]:
        try:
            return self._drivers[name.lower()]
        except KeyError:
            known = ", ".join(self.known())
            reason = f"unknown driver {name!r} (known: {known})"
            raise SettingError(setting, reason, where) from None


def default_registry() -> DriverRegistry:
    """Every driver mailpush ships."""
    from .chronos import ChronosDriver
    from .dlog import DlogDriver
    from .lua import LuaDriver
    from .ox import OxDriver
    from .webhook import WebhookDriver

    return DriverRegistry([ChronosDriver, DlogDriver, LuaDriver, OxDriver, WebhookDriver])
