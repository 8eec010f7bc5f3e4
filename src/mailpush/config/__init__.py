"""Dovecot-style configuration (2.3 ``plugin {}`` keys and 2.4 named blocks) into typed settings.

`load_settings` (in `reader.py`) is the entry point and `Settings` (in `settings.py`)
what it returns; `dovecot_sections.py` knows Dovecot's nested sections. `parse_size`
and `parse_duration` are shared with drivers that read their own options, so units
mean the same everywhere.
"""

from mailpush.config.reader import load_settings
from mailpush.config.settings import (
    AuthSettings,
    Listener,
    LmtpSettings,
    LoadedConfig,
    PassdbSettings,
    PushNotificationBlock,
    PushSettings,
    Settings,
    SslSettings,
    UserdbSettings,
)
from mailpush.config.syntax import ConfigEntry, ConfigSection, parse_file, parse_text
from mailpush.config.values import parse_bool, parse_duration, parse_list, parse_size

__all__ = [
    "AuthSettings",
    "ConfigEntry",
    "ConfigSection",
    "Listener",
    "LmtpSettings",
    "LoadedConfig",
    "PassdbSettings",
    "PushNotificationBlock",
    "PushSettings",
    "Settings",
    "SslSettings",
    "UserdbSettings",
    "load_settings",
    "parse_bool",
    "parse_duration",
    "parse_file",
    "parse_list",
    "parse_size",
    "parse_text",
]
