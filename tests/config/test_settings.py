"""Typed settings: defaults, conversions, errors that name the setting, and warnings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mailpush.config.docs import REGENERATE_COMMAND, render_settings_markdown
from mailpush.config.reader import load_settings, parse_setting_value
from mailpush.config.schema import SETTINGS
from mailpush.config.settings import Listener, LoadedConfig
from mailpush.config.values import parse_bool, parse_duration, parse_list, parse_size
from mailpush.errors import ConfigSyntaxError, InvalidValueError, SettingError

REPO_ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> LoadedConfig:
    path = tmp_path / "mailpush.conf"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_settings(path)


# --- value parsers shared with drivers ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1234", 1234),
        ("10b", 10),
        ("500kb", 500 * 1024),
        ("64k", 64 * 1024),
        ("1mb", 1024**2),
        ("10M", 10 * 1024**2),
        ("2 GB", 2 * 1024**3),
        ("1t", 1024**4),
        ("1Tb", 1024**4),
    ],
)
def test_parse_size_accepts_dovecot_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "kb", "1.5mb", "10 parsecs", "-1k", "1 k b"])
def test_parse_size_rejects_other_text_with_units_listed(text: str) -> None:
    with pytest.raises(InvalidValueError, match="expected a size") as caught:
        parse_size(text)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30.0),
        ("30", 30.0),
        ("100ms", 0.1),
        ("5 mins", 300.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("3 hours", 10800.0),
        ("1d", 86400.0),
        ("2 days", 172800.0),
        ("1w", 604800.0),
        ("2weeks", 1209600.0),
        ("10 secs", 10.0),
        ("1.5s", 1.5),
    ],
)
def test_parse_duration_accepts_dovecot_units(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


def test_parse_duration_can_require_a_unit_like_dovecot() -> None:
    with pytest.raises(InvalidValueError, match="expected a duration"):
        parse_duration("30", bare_unit=None)


@pytest.mark.parametrize("text", ["", "soon", "5 fortnights", "s"])
def test_parse_duration_rejects_other_text(text: str) -> None:
    with pytest.raises(InvalidValueError, match="expected a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("yes", True), ("No", False), ("true", True), ("false", False), ("1", True), ("0", False)],
)
def test_parse_bool_accepts_yes_no_true_false_one_zero(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


def test_parse_list_splits_on_spaces_and_commas() -> None:
    assert parse_list(" *, ::  imap,lmtp ") == ("*", "::", "imap", "lmtp")


# --- defaults -----------------------------------------------------------------------


def test_no_config_file_gives_safe_loopback_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_settings(None)
    settings = loaded.settings
    assert loaded.warnings == ()
    assert settings.protocols == ("imap", "lmtp")
    assert settings.listeners == (
        Listener("lmtp", "127.0.0.1", 2424, ssl=False),
        Listener("imap", "127.0.0.1", 1143, ssl=False),
    )
    assert settings.ssl.mode == "yes" and not settings.ssl.enabled
    assert settings.data_dir == tmp_path / "mailpush-data"
    assert settings.auth.passdb.driver == "passwd-file"
    assert settings.auth.passdb.path == tmp_path / "mailpush-data" / "users"
    assert settings.auth.userdb.path == settings.auth.passdb.path
    assert settings.auth.username_format == "%Lu"
    assert settings.auth.disable_plaintext_auth is True
    assert settings.lmtp.recipient_delimiter == "+"
    assert settings.lmtp.save_to_detail_mailbox is False
    # Written nowhere: every service loads the push plugins (schema default).
    assert settings.mail_plugins == ("push_notification", "mail_lua", "push_notification_lua")
    assert dict(settings.plugin) == {}
    assert settings.mail_fsync == "optimized" and settings.fsync_before_ack
    assert settings.mail_debug is False
    assert settings.log_path is None
    assert settings.imap_max_line_length == 64 * 1024
    assert settings.max_message_size == 50 * 1024 * 1024
    assert settings.metrics_listen is None
    assert settings.shutdown_timeout == 30.0
    assert settings.source_path is None


def test_every_declared_default_is_valid_for_its_type() -> None:
    for spec in SETTINGS:
        parse_setting_value(spec, spec.default)


def test_every_setting_is_declared_once() -> None:
    keys = [(spec.section, spec.name) for spec in SETTINGS]
    assert len(keys) == len(set(keys))


def test_docs_settings_md_is_generated_from_the_declarations() -> None:
    checked_in = (REPO_ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert checked_in == render_settings_markdown(), (
        f"docs/settings.md is out of date; regenerate it with: {REGENERATE_COMMAND}"
    )


def test_docs_list_every_setting() -> None:
    text = render_settings_markdown()
    for spec in SETTINGS:
        assert f"| `{spec.name}` |" in text


# --- reading a file -----------------------------------------------------------------


def test_full_config_with_one_line_services_and_plugins(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """\
        protocols = lmtp imap
        listen = *, ::
        ssl = yes
        ssl_cert = </etc/ssl/mail.pem
        ssl_key = tls/mail.key
        service lmtp { inet_listener lmtp { address = 127.0.0.1  port = 24 } }
        service imap-login { inet_listener imap { port = 143 } inet_listener imaps { port = 993  ssl = yes } }
        mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua
        plugin {
          push_notification_driver = lua:file=/path/to/lua/script
          push_lua_url = https://push.example/hook   # read by the script
        }
        """,  # noqa: E501
    )
    settings = loaded.settings
    assert loaded.warnings == ()
    assert settings.protocols == ("lmtp", "imap")
    assert settings.ssl.cert_path == Path("/etc/ssl/mail.pem")
    assert settings.ssl.key_path == tmp_path / "tls" / "mail.key"
    assert settings.listeners == (
        Listener("lmtp", "127.0.0.1", 24, ssl=False),
        Listener("imap", "0.0.0.0", 143, ssl=False),
        Listener("imap", "::", 143, ssl=False),
        Listener("imaps", "0.0.0.0", 993, ssl=True),
        Listener("imaps", "::", 993, ssl=True),
    )
    assert settings.mail_plugins == (
        "mail_lua",
        "notify",
        "push_notification",
        "push_notification_lua",
    )
    assert dict(settings.plugin) == {
        "push_notification_driver": "lua:file=/path/to/lua/script",
        "push_lua_url": "https://push.example/hook",
    }
    assert settings.source_path == tmp_path / "mailpush.conf"


def test_imaps_is_not_started_without_certificate_and_says_so_when_configured(
    tmp_path: Path,
) -> None:
    loaded = load(
        tmp_path, "service imap-login {\n  inet_listener imaps {\n    port = 993\n  }\n}\n"
    )
    assert [listener.service for listener in loaded.settings.listeners] == ["lmtp", "imap"]
    assert any("inet_listener imaps is not started" in w for w in loaded.warnings)


def test_port_zero_disables_a_listener(tmp_path: Path) -> None:
    loaded = load(tmp_path, "service lmtp { inet_listener lmtp { port = 0 } }\n")
    assert [listener.service for listener in loaded.settings.listeners] == ["imap"]


def test_protocols_choose_which_listeners_exist(tmp_path: Path) -> None:
    loaded = load(tmp_path, "protocols = lmtp\n")
    assert [listener.service for listener in loaded.settings.listeners] == ["lmtp"]


def test_unsupported_protocol_is_refused_with_the_supported_list(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "protocols = imap pop3\n")
    assert caught.value.setting == "protocols"
    assert "'pop3'" in caught.value.reason and "imap, lmtp" in caught.value.reason


def test_mail_plugins_24_block_adds_yes_and_removes_no(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """\
        mail_plugins = quota old
        mail_plugins {
        notify = yes
        push_notification = yes
        push_notification_chronos = yes
        old = no
        }
        """,
    )
    assert loaded.settings.mail_plugins == (
        "quota",
        "notify",
        "push_notification",
        "push_notification_chronos",
    )
    assert loaded.warnings == ()


def test_mail_plugins_block_value_must_be_yes_or_no(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "mail_plugins {\n  notify = maybe\n}\n")
    assert caught.value.setting == "mail_plugins { notify }"
    assert caught.value.where == f"{tmp_path / 'mailpush.conf'}:2"


def test_push_notification_blocks_are_kept_raw_with_nested_blocks(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """\
        push_notification chronos {
        driver = chronos
        url = http://login:pass@node1.domain.tld:8009/chronos/v1/itip/pushmail
        msg_max_size = 500kb
        }
        push_notification lua {
          lua_file = /etc/dovecot/push.lua
          lua_settings {
            push_lua_url = https://push.example/hook
          }
        }
        """,
    )
    chronos, lua = loaded.settings.push_notification_blocks
    assert chronos.name == "chronos" and chronos.line == 1
    assert chronos.file == str(tmp_path / "mailpush.conf")
    assert dict(chronos.settings) == {
        "driver": "chronos",
        "url": "http://login:pass@node1.domain.tld:8009/chronos/v1/itip/pushmail",
        "msg_max_size": "500kb",
    }
    assert lua.name == "lua"
    assert dict(lua.settings) == {"lua_file": "/etc/dovecot/push.lua"}
    assert dict(lua.subsections["lua_settings"]) == {"push_lua_url": "https://push.example/hook"}
    assert loaded.warnings == ()


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    loaded = load(tmp_path, "mailpush_data_dir = data\nlog_path = logs/mailpush.log\n")
    assert loaded.settings.data_dir == tmp_path / "data"
    assert loaded.settings.log_path == tmp_path / "logs" / "mailpush.log"
    assert loaded.settings.auth.passdb.path == tmp_path / "data" / "users"


def test_own_settings_with_units(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        "mailpush_max_message_size = 10M\nmailpush_shutdown_timeout = 2 mins\n"
        "imap_max_line_length = 8kb\nmail_fsync = never\nmail_debug = yes\n",
    )
    settings = loaded.settings
    assert settings.max_message_size == 10 * 1024**2
    assert settings.shutdown_timeout == 120.0
    assert settings.imap_max_line_length == 8192
    assert settings.mail_fsync == "never" and not settings.fsync_before_ack
    assert settings.mail_debug is True


# --- auth ---------------------------------------------------------------------------


def test_passdb_args_keep_scheme_and_username_format_and_find_the_file(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """\
        passdb {
          driver = passwd-file
          args = scheme=SHA512-CRYPT username_format=%u /etc/dovecot/users
        }
        userdb {
          driver = static
          args = uid=vmail gid=vmail home=/var/vmail/%u
        }
        """,
    )
    auth = loaded.settings.auth
    assert auth.passdb.path == Path("/etc/dovecot/users")
    assert auth.passdb.scheme == "SHA512-CRYPT"
    assert auth.passdb.username_format == "%u"
    assert auth.userdb.driver == "static" and auth.userdb.path is None
    assert dict(auth.userdb.args) == {"uid": "vmail", "gid": "vmail", "home": "/var/vmail/%u"}


def test_userdb_passwd_file_uses_its_own_file(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        "passdb {\n  args = users\n}\nuserdb {\n  driver = passwd-file\n  args = other\n}\n",
    )
    assert loaded.settings.auth.passdb.path == tmp_path / "users"
    assert loaded.settings.auth.userdb.path == tmp_path / "other"


def test_unsupported_passdb_driver_names_setting_and_supported_drivers(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "passdb {\n  driver = sql\n  args = /etc/dovecot/sql.conf\n}\n")
    assert caught.value.setting == "passdb { driver }"
    assert "'sql'" in caught.value.reason and "passwd-file" in caught.value.reason
    assert caught.value.where == f"{tmp_path / 'mailpush.conf'}:2"


def test_passdb_without_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="needs the path"):
        load(tmp_path, "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN\n}\n")


def test_only_first_passdb_is_used_and_the_rest_is_warned(tmp_path: Path) -> None:
    loaded = load(tmp_path, "passdb {\n  args = a\n}\npassdb {\n  args = b\n}\n")
    assert loaded.settings.auth.passdb.path == tmp_path / "a"
    assert any("only the first passdb" in w and ":4" in w for w in loaded.warnings)


def test_unsupported_userdb_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="supported: passwd-file, static"):
        load(tmp_path, "userdb {\n  driver = prefetch\n}\n")


# --- errors naming setting and place ------------------------------------------------


def test_bad_boolean_names_setting_and_file_line(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "\nmail_debug = maybe\n")
    assert caught.value.setting == "mail_debug"
    assert caught.value.reason == "expected yes or no, got 'maybe'"
    assert str(caught.value) == (
        f"{tmp_path / 'mailpush.conf'}:2: mail_debug: expected yes or no, got 'maybe'"
    )


def test_bad_size_names_setting_and_file_line(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "mailpush_max_message_size = huge\n")
    assert caught.value.setting == "mailpush_max_message_size"
    assert caught.value.where == f"{tmp_path / 'mailpush.conf'}:1"
    assert "expected a size" in caught.value.reason


def test_bad_duration_names_setting_and_file_line(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "mailpush_shutdown_timeout = a while\n")
    assert caught.value.setting == "mailpush_shutdown_timeout"
    assert caught.value.where == f"{tmp_path / 'mailpush.conf'}:1"


def test_bad_nested_port_names_the_full_path(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "service lmtp { inet_listener lmtp { port = 99999 } }\n")
    assert caught.value.setting == "service lmtp { inet_listener lmtp { port } }"
    assert "0..65535" in caught.value.reason


def test_bad_choice_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="expected one of optimized, always, never"):
        load(tmp_path, "mail_fsync = sometimes\n")


def test_ssl_required_without_certificate_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "ssl = required\n")
    assert caught.value.setting == "ssl"


def test_ssl_cert_without_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as caught:
        load(tmp_path, "ssl_cert = </etc/ssl/cert.pem\n")
    assert caught.value.setting == "ssl_key"


def test_file_value_of_a_text_setting_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "delimiter").write_text("-\n", encoding="utf-8")
    loaded = load(tmp_path, "recipient_delimiter = <delimiter\n")
    assert loaded.settings.lmtp.recipient_delimiter == "-"


def test_syntax_errors_propagate(tmp_path: Path) -> None:
    with pytest.raises(ConfigSyntaxError):
        load(tmp_path, "plugin {\n")


# --- warnings -----------------------------------------------------------------------


def test_unknown_settings_and_sections_produce_one_warning_naming_each(tmp_path: Path) -> None:
    loaded = load(
        tmp_path,
        """\
        mail_locaton = maildir:~/Maildir
        protocols = imap lmtp
        first_valid_uid = 1000
        protocol pop3 {
          mail_plugins = $mail_plugins sieve
        }
        service lmtp {
          user = vmail
          inet_listener lmtp {
            port = 24
          }
          unix_listener lmtp {
          }
        }
        plugin {
          anything_goes = yes
        }
        """,
    )
    conf = tmp_path / "mailpush.conf"
    assert len(loaded.warnings) == 1
    warning = loaded.warnings[0]
    for expected in (
        f"mail_locaton ({conf}:1)",
        f"first_valid_uid ({conf}:3)",
        f"protocol pop3 {{ }} ({conf}:4)",
        f"user ({conf}:8)",
        f"unix_listener lmtp {{ }} ({conf}:12)",
    ):
        assert expected in warning
    assert "anything_goes" not in warning
    assert "protocols" not in warning.replace("protocol lmtp", "")
