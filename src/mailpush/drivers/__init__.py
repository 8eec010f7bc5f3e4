"""Push drivers behind one small interface, and the registry that names them."""

from .base import DriverConfig, DriverServices, PushDriver, RequestJournal, StoreView
from .driver_options import RetryOptions
from .driver_settings import driver_configs, parse_driver_value
from .registry import DriverRegistry, default_registry

__all__ = [
    "DriverConfig",
    "DriverRegistry",
    "DriverServices",
    "PushDriver",
    "RequestJournal",
    "RetryOptions",
    "StoreView",
    "default_registry",
    "driver_configs",
    "parse_driver_value",
]
