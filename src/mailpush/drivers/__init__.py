"""Push drivers behind one small interface, and the registry that names them."""

from .base import DriverServices, PushDriver, RequestJournal, StoreView
from .driver_config import DriverConfig
from .driver_options import RetryOptions
from .driver_settings import driver_configs, parse_driver_value
from .option_schema import DriverOption, DriverOptionSchema
from .registry import DriverRegistry, default_registry

__all__ = [
    "DriverConfig",
    "DriverOption",
    "DriverOptionSchema",
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
