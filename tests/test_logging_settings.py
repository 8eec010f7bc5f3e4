"""Dovecot's log settings read from a configuration file, with Dovecot's defaults between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpush.config import load_settings
from mailpush.errors import SettingError
from mailpush.logs.settings import DEFAULT_DELIVER_LOG_FORMAT, SYSLOG, LogSettings


def log_settings(tmp_path: Path, text: str) -> LogSettings:
    path = tmp_path / "mailpush.conf"
    path.write_text(text, encoding="utf-8")
    return load_settings(path).settings.log


def test_without_log_settings_everything_goes_to_standard_error(tmp_path: Path) -> None:
    assert log_settings(tmp_path, "") == LogSettings(
        None, None, None, "mail", "%b %d %H:%M:%S ", DEFAULT_DELIVER_LOG_FORMAT
    )


def test_log_path_syslog_is_syslog_not_a_file_named_syslog(tmp_path: Path) -> None:
    settings = log_settings(tmp_path, "log_path = syslog\nsyslog_facility = local5\n")
    assert (settings.path, settings.info_path, settings.debug_path) == (SYSLOG,) * 3
    assert settings.syslog_facility == "local5"
    assert not (tmp_path / "syslog").exists()


def test_info_and_debug_paths_default_as_in_dovecot_and_resolve_like_log_path(
    tmp_path: Path,
) -> None:
    settings = log_settings(tmp_path, "log_path = logs/errors.log\ninfo_log_path = syslog\n")
    assert settings.path == tmp_path / "logs" / "errors.log"
    assert (settings.info_path, settings.debug_path) == (SYSLOG, SYSLOG)

    settings = log_settings(
        tmp_path, "log_path = /dev/stderr\ninfo_log_path = info.log\ndebug_log_path = syslog\n"
    )
    assert (settings.path, settings.info_path, settings.debug_path) == (
        None, tmp_path / "info.log", SYSLOG,
    )  # fmt: skip


def test_log_timestamp_keeps_its_quoted_trailing_space(tmp_path: Path) -> None:
    settings = log_settings(tmp_path, 'log_timestamp = "%Y-%m-%d %H:%M:%S "\n')
    assert settings.timestamp == "%Y-%m-%d %H:%M:%S "


def test_deliver_log_format_is_read(tmp_path: Path) -> None:
    settings = log_settings(tmp_path, "deliver_log_format = msgid=%m: %$\n")
    assert settings.deliver_log_format == "msgid=%m: %$"


def test_an_unknown_syslog_facility_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="syslog_facility") as refused:
        log_settings(tmp_path, "syslog_facility = mial\n")
    assert "local7" in str(refused.value)
